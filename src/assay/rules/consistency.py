"""Answer consistency: the last answer the reasoning arrives at is the final answer it gives.

A trace that concludes "so the answer is 12" and then answers \\boxed{15} is incoherent whichever
is right. The reasoning's conclusion is its last `\\boxed{}` or answer statement ("the answer is",
"the answer should be", "final answer:") within its last `tail_chars` characters; the final answer
is the response's `answer` field, else what assay.verify.extract finds after the reasoning. They
are compared as normalised text, then with assay.verify's quick judgement (numbers, units,
percentages, choices), then (optionally) with math-verify.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from pydantic import Field

from assay.record import Verdict
from assay.rules.base import Rule, rule
from assay.rules.trace import Trace

_CONCLUSION = re.compile(
    r"\b(?:final\s+answer|answer|result)\s*(?:\*\*)?\s*(?:is|should\s+be|must\s+be|would\s+be|will\s+be|=|:)"
    r"\s*(?:\*\*)?\s*:?\s*", re.IGNORECASE)
_MATH_SPANS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n|[,;](?=\s+(?:which|so|since|because|and|but)\b)|(?<=\w)\?")
_DROP = re.compile(r"\\left|\\right|\\[!,;: ]|~|\\displaystyle|\^\{?\\circ\}?|°|\\%|%|\\\$|\s+")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|operatorname)\{([^{}]*)\}")
_VAR_PREFIX = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?=(?!=)")
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$")
_SLASH = re.compile(r"^(-?\d+)/(\d+)$")
# "27 miles from city A", "$50 dollars", "12 cm^2": a number followed by words (units, a description)
_NUMBER_THEN_WORDS = re.compile(
    r"^\s*\\?\$?\s*(-?\d[\d,]*(?:\.\d+)?)\s*(?:\\?%|\\text\{[^}]*\}|[A-Za-z][\w .,^'-]*)?\s*$")


def _phrase_after(text: str, start: int) -> str | None:
    """The answer stated right after an anchor: a math span, a box, or words up to the sentence end."""
    from assay.verify.extract import last_boxed

    rest = text[start:start + 600].lstrip()
    if rest.startswith(("\\boxed", "\\fbox")):
        return last_boxed(rest.split("\n", 1)[0])
    for open_, close in _MATH_SPANS:
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            return rest[len(open_):end] if end > len(open_) else None
    end = _SENTENCE_END.search(rest)
    phrase = (rest[:end.start()] if end else rest).strip()
    return phrase if 0 < len(phrase) <= 80 else None


# "the answer is correct", "the result is consistent with ...": a judgement, not an answer
_JUDGEMENT = re.compile(
    r"^(?:indeed\s+|still\s+|also\s+|then\s+|now\s+)?(?:correct|incorrect|right|wrong|consistent|inconsistent|valid|"
    r"invalid|confirmed|verified|the\s+same|same|unchanged|clear|obvious|straightforward|likely|probably|not|that|this|"
    r"as\s+follows|given\s+by|below|above|different|reasonable|plausible|satisfied|fine|good|ok|okay|off|"
    r"impossible|undefined|something|what|how|why|a\s+bit|in\s+)\b", re.IGNORECASE)
_MATHY = re.compile(r"[\d\\^=/+*<>()\[\]{}$]")


def _stated_answer(phrase: str) -> bool:
    """Whether a phrase after 'the answer is' states an answer: math or a few words, not a judgement."""
    if _JUDGEMENT.match(phrase):
        return False
    words = len(phrase.split())
    return words <= 5 or (words <= 10 and bool(_MATHY.search(phrase)))


def reasoning_conclusion(reasoning: str, tail_chars: int = 2000) -> str | None:
    """The last answer stated near the end of the reasoning (a box or an answer phrase), or None."""
    from assay.verify.extract import clean_answer, last_boxed

    tail = reasoning[-tail_chars:]
    box_at = max(tail.rfind("\\boxed"), tail.rfind("\\fbox"))
    phrase_at, phrase = -1, None
    for m in _CONCLUSION.finditer(tail):
        found = _phrase_after(tail, m.end())
        if found and _stated_answer(found):
            phrase_at, phrase = m.start(), found
    if box_at > phrase_at:
        boxed = last_boxed(tail[box_at:])
        if boxed:
            return clean_answer(boxed)
    return clean_answer(phrase) if phrase else None


def normalise(answer: str) -> str:
    s = _TEXT_WRAP.sub(r"\1", answer)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _DROP.sub("", s).strip("$.").lower()
    s = _VAR_PREFIX.sub("", s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return s


def as_number(s: str) -> Fraction | None:
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        pass
    m = _FRAC.match(s) or _SLASH.match(s)
    if m is None:
        return None
    groups = m.groups()
    sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
    num, den = int(groups[-2]), int(groups[-1])
    return sign * Fraction(num, den) if den else None


def math_equal(a: str, b: str) -> bool | None:
    """math-verify's opinion, None when it cannot decide (not installed, unparseable, timeout)."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    try:
        try:
            return bool(verify(parse(f"${a}$"), parse(f"${b}$")))
        except ValueError:  # its signal-based timeouts only work in a main thread
            return bool(verify(parse(f"${a}$", parsing_timeout=None), parse(f"${b}$", parsing_timeout=None),
                               timeout_seconds=None))
    except Exception:  # math-verify raises many kinds on odd input; undecided is the honest answer
        return None


def _quick(a: str, b: str) -> tuple[bool, str] | None:
    """assay.verify's pure-Python judgement (numbers, units, percentages, choices, text), tried
    both ways round since it reads its first argument strictly as the reference."""
    from assay.verify.math_compare import quick_judge

    for gold, pred in ((b, a), (a, b)):
        try:
            j = quick_judge(gold, pred)
        except Exception:  # an odd string must not fail the whole batch
            j = None
        if j is not None:
            return j.passed, j.reason.rsplit("(", 1)[-1].rstrip(")") or "quick"
    return None


def _number_with_words(a: str, b: str) -> tuple[bool, str] | None:
    """'27 miles from city A' vs '27': a number against the same number followed by words."""
    xa, xb = as_number(normalise(a)), as_number(normalise(b))
    if (xa is None) == (xb is None):
        return None
    number, other = (xa, b) if xa is not None else (xb, a)
    m = _NUMBER_THEN_WORDS.match(other)
    lead = as_number(m.group(1).replace(",", "")) if m else None
    return (lead == number, "number with units") if lead is not None else None


def _choices(a: str, b: str) -> tuple[bool, str] | None:
    """'(B) 42' vs 'B': a bare choice letter against an option that starts with one."""
    from assay.verify.math_compare import choice_letter

    la, lb = choice_letter(a), choice_letter(b)
    if la is None or lb is None or min(len(a.strip()), len(b.strip())) > 3:
        return None
    return la == lb, "choice"


def answers_agree(a: str, b: str, use_math_verify: bool = True) -> tuple[bool, str]:
    """(agree, how): equal text, assay.verify's quick judgement, numbers with units, choice
    letters, then math-verify."""
    if normalise(a) == normalise(b):
        return True, "same text"
    for decide in (_quick, _number_with_words, _choices):
        found = decide(a, b)
        if found is not None:
            return found
    if use_math_verify and len(a) < 300 and len(b) < 300:
        same = math_equal(a, b)
        if same is not None:
            return same, "math-verify"
    return False, "different text"


@rule("answer_consistency")
class AnswerConsistency(Rule):
    """Fails responses whose reasoning concludes one answer and whose final answer states another."""

    domains: list[str] | None = Field(default_factory=lambda: ["math", "science"],
                                      description="only responses of records in these domains")
    tail_chars: int = Field(2000, ge=100, description="look for the reasoning's conclusion in its last N characters")
    use_math_verify: bool = Field(True, description="when text and numbers differ, ask math-verify "
                                  "(\\frac{1}{2} vs 0.5)")
    require_conclusion: bool = Field(False, description="fail when the reasoning states no answer near its end")

    def evaluate(self, trace: Trace) -> Verdict:
        from assay.verify.extract import extract_answer

        reasoning = trace.reasoning
        if not reasoning or not trace.structure.reasoning_closed:
            return Verdict(True, None, "no finished reasoning to compare", "not_applicable")
        given = trace.response.get("answer")
        final = str(given) if given not in (None, "") else extract_answer(trace.answer) if trace.answer else None
        if not final:
            return Verdict(True, None, "no final answer to compare", "not_applicable")
        concluded = reasoning_conclusion(reasoning, self.tail_chars)
        details: dict[str, Any] = {"final_answer": final[:200], "reasoning_answer": (concluded or "")[:200]}
        if not concluded:
            if self.require_conclusion:
                return Verdict(False, 0.0, "the reasoning states no answer near its end", "no_conclusion", details)
            return Verdict(True, None, "the reasoning states no answer near its end", "no_conclusion", details)
        agree, how = answers_agree(concluded, final, self.use_math_verify)
        if agree:
            return Verdict(True, 1.0, f"reasoning and answer agree ({how}): {final[:60]}", None, details)
        return Verdict(False, 0.0, f"reasoning concludes '{concluded[:60]}' but the answer is '{final[:60]}'",
                       "inconsistent", details)
