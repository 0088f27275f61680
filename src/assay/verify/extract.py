"""Find the final answer in a model response.

`split_reasoning` separates a reasoning block (`<think>...</think>`, `<thinking>`, Sky-T1's
`<|begin_of_thought|>...<|end_of_thought|>`) from the part shown to the user; `extract_answer`
looks for the answer only in that final part, in this order:

1. `<answer>...</answer>` (the last one; a `\\boxed{}` inside it wins);
2. the last `\\boxed{...}` / `\\fbox{...}` (nested braces; `\\boxed 5`), joined with boxes right
   before it when they are only separated by commas or "and" (`\\boxed{2}, \\boxed{3}` -> `2, 3`);
3. "The final answer is X", "**Final Answer**" followed by X, "Final answer: X";
4. "the answer is X", "Answer: X", "the correct option is X";
5. GSM8K `#### X`, or a last line `A: X`;
6. a final part that is itself short (one line, e.g. `</think>\\n\\n42`), or a lone choice letter.

Everything here is linear in the text length (no backtracking regexes over the whole response):
responses can be 100k characters and adversarial.
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

MAX_BOX_CHARS = 5000  # a boxed answer longer than this is not an answer
MAX_ANSWER_CHARS = 1000
SHORT_FINAL_CHARS = 60

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|\\boxed[ \t]+(?=[^\s{])")
_ANSWER_TAG_RE = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE_RE = re.compile(r"</answer>", re.IGNORECASE)
_FINAL_ANSWER_RE = re.compile(r"final\s+answer(?:\s*\*\*)?(?:\s+is\b)?\s*(?:\*\*)?\s*[:：]?\s*(?:\*\*)?", re.IGNORECASE)
_ANSWER_RE = re.compile(
    r"\b(?:answer|option|choice)(?:\s*\*\*)?\s*(?:is\b|[:：=])\s*(?:\*\*)?\s*[:：]?\s*(?:\*\*)?", re.IGNORECASE)
_HASHES_RE = re.compile(r"####[ \t]*(\S[^\n]*)")
_LAST_LINE_A_RE = re.compile(r"^\s*A\s*:\s*(\S.*)$")
_CHOICE_RE = re.compile(r"^\(?([A-J])\)?[.:]?$")
_BOX_SEPARATOR_RE = re.compile(r"^(?:\s|\$|,|;|\\quad|\\qquad|\\,|\\text\{\s*(?:and|or|,)\s*\}|and|or|&)*$")
_MATH_SPANS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_SENTENCE_END_RE = re.compile(r"(?<!\d)\.(?=\s|$)|(?<=\d)\.(?=\s+[A-Z]|\s*$)|\n")


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning, final part). No markers: (None, text). An unclosed reasoning block (a response
    cut off while thinking) gives (reasoning, "") so nothing inside it is mistaken for an answer."""
    for open_, close in REASONING_MARKERS:
        end = text.rfind(close)
        if end >= 0:
            start = text.find(open_)
            begin = start + len(open_) if 0 <= start < end else 0
            return text[begin:end].strip(), _unwrap_solution(text[end + len(close):]).strip()
        start = text.find(open_)
        if start >= 0:
            return text[start + len(open_):].strip(), ""
    return None, _unwrap_solution(text).strip()


def _unwrap_solution(text: str) -> str:
    start = text.find(SOLUTION_OPEN)
    if start < 0:
        return text
    end = text.find(SOLUTION_CLOSE, start)
    return text[start + len(SOLUTION_OPEN): end if end >= 0 else len(text)]


def extract_answer(text: str) -> str | None:
    """The final answer of a response, or None when it states none (see the module docstring)."""
    if not text:
        return None
    _, final = split_reasoning(text)
    if not final:
        return None
    answer = _from_final(final)
    if answer is None:
        return None
    answer = clean_answer(answer)
    return answer if answer and len(answer) <= MAX_ANSWER_CHARS else None


def _from_final(final: str) -> str | None:
    tagged = _answer_tag(final)
    if tagged is not None:
        boxed = last_boxed(tagged)
        return boxed if boxed is not None else tagged
    boxed = last_boxed(final)
    if boxed is not None:
        return boxed
    for pattern in (_FINAL_ANSWER_RE, _ANSWER_RE):
        found = _after_last(pattern, final)
        if found:
            return found
    hashes = _last_match(_HASHES_RE, final)
    if hashes is not None:
        return hashes.group(1)
    lines = [ln for ln in final.splitlines() if ln.strip()]
    if lines:
        a_line = _LAST_LINE_A_RE.match(lines[-1])
        if a_line:
            return a_line.group(1)
        last = clean_answer(lines[-1])
        if _CHOICE_RE.match(last):
            return last
    if len(lines) == 1 and _looks_like_bare_answer(final):
        return final
    return None


def _looks_like_bare_answer(final: str) -> bool:
    """A short one-line final part that is an answer ("42", "$x=2$", "Paris"), not a remark."""
    if len(final) > SHORT_FINAL_CHARS or _BOX_RE.search(final):
        return False
    return any(c.isdigit() or c in "$\\^=/" for c in final) or len(final.split()) <= 2


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


def _after_last(pattern: re.Pattern[str], text: str) -> str | None:
    """The answer stated after the last match of an anchor ("final answer is", "Answer:")."""
    m = _last_match(pattern, text)
    if m is None:
        return None
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
    """The answer at the start of `rest`: a leading math span, else text up to the sentence end."""
    rest = rest.lstrip()
    boxed = last_boxed(rest.split("\n\n", 1)[0])
    if boxed is not None:
        return boxed
    for open_, close in _MATH_SPANS:
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            if end > len(open_):
                return rest[len(open_):end]
    end = _SENTENCE_END_RE.search(rest)
    phrase = rest[: end.start()] if end else rest
    return phrase.strip() or None


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}`, with directly preceding boxes
    (separated only by commas / "and") joined in: `\\boxed{1} and \\boxed{2}` -> `1, 2`."""
    spans = _boxes(text)
    if not spans:
        return None
    parts = [spans[-1]]
    for prev in reversed(spans[:-1]):
        between = text[prev[1]: parts[0][0]]
        if not _BOX_SEPARATOR_RE.match(between):
            break
        parts.insert(0, prev)
    return ", ".join(content for _, _, content in parts)


def _boxes(text: str) -> list[tuple[int, int, str]]:
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
        if s.startswith(("\\boxed", "\\fbox")):
            spans = _boxes(s)
            if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(s):
                s = spans[0][2]
        if s == before:
            break
    choice = _CHOICE_RE.match(s)
    if choice:
        return choice.group(1)
    return s
