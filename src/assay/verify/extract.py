"""Find the final answer in a model response.

`split_reasoning` separates a reasoning block (`<think>...</think>`, `<thinking>`, Sky-T1's
`<|begin_of_thought|>...<|end_of_thought|>`) from the part shown to the user; `extract_answer`
looks for the answer only in that final part:

1. `<answer>...</answer>` (the last one; a `\\boxed{}` inside it wins);
2. whichever comes last of: the last `\\boxed{...}` / `\\fbox{...}` (nested braces, `\\boxed 5`;
   boxes right before it separated only by commas or "and" are joined: `2, 3`) and
   "The final answer is X" / "**Final Answer**" followed by X / "Final answer: X";
3. otherwise the last "the answer is X", "Answer: X", "Answer $X$", "the correct option is X",
   GSM8K's `#### X`, or a last line `A: X`;
4. otherwise a lone choice letter on the last line, or a final part that is nothing but an
   answer (`</think>\\n\\n42`, `$x = 2$`, "Paris").

In a phrase such as "The final answer: the largest n is 34." the answer is what follows the last
" is ". Everything here is linear in the text length (no backtracking regexes over the whole
response): responses can be 100k characters long and adversarial.
"""

from __future__ import annotations

import re

# Reasoning markers: (open, close). The first whose close (or open) appears decides the split.
REASONING_MARKERS = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
)
SOLUTION_OPEN, SOLUTION_CLOSE = "<|begin_of_solution|>", "<|end_of_solution|>"
# Chat-template tokens after which a response's text is not the model's answer any more
END_TOKENS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "</s>",
              "<｜end▁of▁sentence｜>")

MAX_BOX_CHARS = 5000  # a boxed answer longer than this is not an answer
MAX_ANSWER_CHARS = 1000
SHORT_FINAL_CHARS = 40

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|\\boxed[ \t]+(?=[^\s{])")
_ANSWER_TAG_RE = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE_RE = re.compile(r"</answer>", re.IGNORECASE)
_FINAL_ANSWER_RE = re.compile(r"final\s+answer(?:\s*\*\*)?(?:\s+is\b)?\s*(?:\*\*)?\s*[:：]?\s*(?:\*\*)?", re.IGNORECASE)
_ANSWER_RE = re.compile(
    r"\b(?:answer|option|choice|réponse|respuesta|resposta|antwort|risposta|ответ)(?:\s*\*\*)?\s*"
    r"(?:(?:is|ist|est|es|é|è)\b\s*[:：]?|[:：=])\s*(?:\*\*)?\s*[:：]?\s*(?:\*\*)?"
    r"|答案(?:是|为|：|:)\s*"
    r"|^[ \t]*(?:\*\*)?answer(?:\*\*)?[ \t]*(?=\$|\\\[|\\\()", re.IGNORECASE | re.MULTILINE)
_HASHES_RE = re.compile(r"####[ \t]*(\S[^\n]*)")
_LAST_LINE_A_RE = re.compile(r"^\s*A\s*:\s*(\S.*)$")
_CHOICE_RE = re.compile(r"^\(?([A-J])\)?[.:]?$")
_BOX_SEPARATOR_RE = re.compile(
    r"^(?:\s|\$|,|;|\\quad|\\qquad|\\,|\\[()\[\]]|\\text\{\s*(?:and|or|,)\s*\}|and|or|&)*$")
_MATH_SPANS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_INLINE = ("$", "\\(")  # inline math does not cross lines (as in Markdown and math-verify)
_SENTENCE_END_RE = re.compile(r"(?<!\d)\.(?=\s|$)|(?<=\d)\.(?=\s+[A-Z]|\s*$)|\n")
_IS_RE = re.compile(r"\s(?:is|are|equals|was|be)\s+(?:equal to\s+|exactly\s+|therefore\s+)?", re.IGNORECASE)
_PROSE_WORD_RE = re.compile(r"[A-Za-z]{3,}")


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning, final part). No markers: (None, text). An unclosed reasoning block (a response
    cut off while thinking) gives (reasoning, "") so nothing inside it is mistaken for an answer."""
    for open_, close in REASONING_MARKERS:
        end = text.rfind(close)
        if end >= 0:
            start = text.find(open_)
            begin = start + len(open_) if 0 <= start < end else 0
            return text[begin:end].strip(), final_part(text[end + len(close):])
        start = text.find(open_)
        if start >= 0:
            return text[start + len(open_):].strip(), ""
    return None, final_part(text)


def final_part(text: str) -> str:
    """The answer part: inside Sky-T1's solution markers, before any leaked chat-template token."""
    start = text.find(SOLUTION_OPEN)
    if start >= 0:
        end = text.find(SOLUTION_CLOSE, start)
        text = text[start + len(SOLUTION_OPEN): end if end >= 0 else len(text)]
    for token in END_TOKENS:
        cut = text.find(token)
        if cut >= 0:
            text = text[:cut]
    return text.strip()


def extract_answer(text: str) -> str | None:
    """The final answer of a response, or None when it states none (see the module docstring)."""
    return find_answer(text)[0]


def find_answer(text: str) -> tuple[str | None, bool]:
    """(answer, marked): marked is True when the response marks an answer (a box, "answer is",
    `####`, ...) even if what it marks is empty or unreadable; then there is no answer to guess
    from elsewhere in the text."""
    if not text:
        return None, False
    _, final = split_reasoning(text)
    if not final:
        return None, False
    answer, marked = _from_final(final)
    if answer is None:
        return None, marked
    answer = clean_answer(answer)
    return (answer if answer and len(answer) <= MAX_ANSWER_CHARS else None), marked


def _from_final(final: str) -> tuple[str | None, bool]:
    tagged = _answer_tag(final)
    if tagged is not None:
        boxed = last_boxed(tagged)
        return (boxed if boxed is not None else tagged), True
    spans = boxes(final)
    final_phrase = _last_match(_FINAL_ANSWER_RE, final)
    if spans and (final_phrase is None or spans[-1][0] >= final_phrase.start()):
        return last_boxed(final, spans), True
    if final_phrase is not None:
        found = _answer_after(final_phrase, final)
        if found:
            return found, True
    weak = [m for m in (_last_match(_ANSWER_RE, final), _last_match(_HASHES_RE, final)) if m is not None]
    for m in sorted(weak, key=lambda m: -m.start()):
        found = m.group(1) if m.re is _HASHES_RE else _answer_after(m, final)
        if found:
            return found, True
    lines = [ln for ln in final.splitlines() if ln.strip()]
    if lines:
        a_line = _LAST_LINE_A_RE.match(lines[-1])
        if a_line:
            return a_line.group(1), True
        last = clean_answer(lines[-1])
        if _CHOICE_RE.match(last):
            return last, True
    if _looks_like_bare_answer(final):
        return final, True
    # a box that never closes (or is too long to be an answer) still marks where the answer was meant to be
    return None, final_phrase is not None or bool(weak) or _BOX_RE.search(final) is not None


def _looks_like_bare_answer(final: str) -> bool:
    """A final part that is only an answer: one math span (`$x = 2$`), or one short line that is
    a number / expression ("42", "x = 2") or a name ("Paris", "New York"), not a remark ("no idea")."""
    if _BOX_RE.search(final):
        return False
    if _whole_math_span(final):
        return len(final) <= MAX_ANSWER_CHARS
    if "\n" in final or len(final) > SHORT_FINAL_CHARS:
        return False
    words = final.split()
    if len(words) == 1 or (len(words) == 2 and all(w[:1].isupper() for w in words)):  # "Paris", "New York"
        return True
    return not _PROSE_WORD_RE.search(final)


def _whole_math_span(text: str) -> bool:
    for open_, close in _MATH_SPANS:
        if text.startswith(open_) and text.endswith(close) and len(text) > len(open_) + len(close):
            inner = text[len(open_):-len(close)]
            return close not in inner and open_ not in inner and not (open_ in _INLINE and "\n" in inner)
    return False


def _answer_tag(text: str) -> str | None:
    opens = list(_ANSWER_TAG_RE.finditer(text))
    if not opens:
        return None
    start = opens[-1].end()
    close = _ANSWER_CLOSE_RE.search(text, start)
    content = text[start: close.start() if close else len(text)].strip()
    return content or None


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - we want the final match
        pass
    return last


def _answer_after(m: re.Match[str], text: str) -> str | None:
    """The answer stated after an anchor ("final answer is", "Answer:")."""
    rest = text[m.end(): m.end() + 2 * MAX_ANSWER_CHARS]
    line_end = rest.find("\n")
    first_line = rest if line_end < 0 else rest[:line_end]
    if not first_line.strip().strip("*").strip():
        # "**Final Answer**" as a heading: the answer is the next non-empty paragraph
        paragraph = rest.lstrip()
        blank = paragraph.find("\n\n")
        return _answer_phrase(paragraph if blank < 0 else paragraph[:blank])
    return _answer_phrase(rest)


def _answer_phrase(rest: str) -> str | None:
    """The answer at the start of `rest`: a leading math span, else text up to the sentence end;
    in a sentence ("the largest $n$ is 34"), what follows the last " is "."""
    rest = rest.lstrip()
    rest = (rest[2:] if rest.startswith('\\"') else rest.lstrip('"“')).lstrip()
    boxed = last_boxed(rest.split("\n\n", 1)[0])
    if boxed is not None:
        return boxed
    spans = _leading_math_spans(rest)
    if spans:
        return ", ".join(spans)
    end = _SENTENCE_END_RE.search(rest)
    phrase = (rest[: end.start()] if end else rest).strip()
    if len(_PROSE_WORD_RE.findall(phrase)) >= 2:
        copula = _last_match(_IS_RE, phrase)
        if copula is not None and phrase[copula.end():].strip():
            return _answer_phrase(phrase[copula.end():])
    return phrase or None


_SPAN_JOINER_RE = re.compile(r"\s*(?:,|and|or|,\s*and)\s*")


def _leading_math_spans(text: str) -> list[str]:
    """Contents of the math spans at the start of `text`, following each other with "and" / ","
    between them (`$12$ and $13$`)."""
    out: list[str] = []
    pos = 0
    while True:
        for open_, close in _MATH_SPANS:
            if text.startswith(open_, pos):
                end = _find_unescaped(text, close, pos + len(open_))
                inner = text[pos + len(open_):end] if end > pos + len(open_) else ""
                if inner.strip() and not (open_ in _INLINE and "\n" in inner):
                    out.append(text[pos + len(open_):end].strip())
                    pos = end + len(close)
                    break
        else:
            return out
        joiner = _SPAN_JOINER_RE.match(text, pos)
        if joiner is None or not out:
            return out
        pos = joiner.end()


def _find_unescaped(text: str, needle: str, start: int) -> int:
    i = text.find(needle, start)
    while i > 0 and text[i - 1] == "\\":
        i = text.find(needle, i + 1)
    return i


def last_boxed(text: str, spans: list[tuple[int, int, str]] | None = None) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}`, with directly preceding boxes
    (separated only by commas / "and") joined in: `\\boxed{1} and \\boxed{2}` -> `1, 2`."""
    spans = boxes(text) if spans is None else spans
    if not spans:
        return None
    parts = [spans[-1]]
    for prev in reversed(spans[:-1]):
        between = text[prev[1]: parts[0][0]]
        if not _BOX_SEPARATOR_RE.match(between):
            break
        parts.insert(0, prev)
    return ", ".join(content for _, _, content in parts)


def all_boxed(text: str) -> list[str]:
    """Contents of every complete box in `text`, in order."""
    return [content for _, _, content in boxes(text)]


def boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of each complete box, outermost only, in order."""
    out: list[tuple[int, int, str]] = []
    closing: dict[int, int] | None = None
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if m is None:
            return out
        if m.group().endswith("{"):
            if closing is None:
                closing = _closing_braces(text, m.end() - 1)
            close = closing.get(m.end() - 1)
            if close is None or close - m.end() > MAX_BOX_CHARS:
                pos = m.end()
                continue
            out.append((m.start(), close + 1, text[m.end():close].strip()))
            pos = close + 1
        else:  # "\boxed 5": up to whitespace or a math delimiter
            end = m.end()
            while end < len(text) and not text[end].isspace() and text[end] != "$":
                end += 1
            out.append((m.start(), end, text[m.end():end]))
            pos = end


_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)


def _closing_braces(text: str, start: int) -> dict[int, int]:
    """Map each `{` at or after `start` to its matching `}` in one pass (escaped `\\{` skipped)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for tok in _BRACE_TOKEN_RE.finditer(text, start):
        c = tok.group()
        if c == "{":
            stack.append(tok.start())
        elif c == "}" and stack:
            pairs[stack.pop()] = tok.start()
    return pairs


_WRAPPERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"), ("**", "**"), ("`", "`"))


def clean_answer(answer: str) -> str:
    """Strip what surrounds an answer but is not part of it: math delimiters, bold, a final
    period, a whole-answer `\\boxed{}`, parentheses around a lone choice letter."""
    s = answer.strip()
    for _ in range(4):
        before = s
        for open_, close in _WRAPPERS:
            if len(s) > len(open_) + len(close) and s.startswith(open_) and s.endswith(close):
                s = s[len(open_): -len(close)].strip()
        s = s.rstrip(" \t.,;:。").strip().strip("*").strip()
        if len(s) > 2 and s[0] in "\"“" and s[-1] in "\"”":
            s = s[1:-1].strip()
        if s.startswith('\\"') and s.endswith('\\"'):
            s = s[2:-2].strip()
        if s.startswith(("\\boxed", "\\fbox")):
            spans = boxes(s)
            if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(s):
                s = spans[0][2]
        if s == before:
            break
    choice = _CHOICE_RE.match(s)
    if choice:
        return choice.group(1)
    if not s.strip("$\\()[]{} \t\n"):
        return ""  # delimiters around nothing readable
    return s
