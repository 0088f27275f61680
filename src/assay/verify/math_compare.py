"""Is a predicted answer equal to the reference? math-verify plus what it misses.

Two layers:
- `quick_judge(gold, pred, choices)`: pure Python, microseconds, safe in any process. Decides
  multiple choice (letters and option texts), plain numbers (thousands separators, currency,
  units, percentages, `x = 2`), and text answers ("Monday", "even"); returns None when the
  pair needs real symbolic work.
- `judge(gold, pred, choices)`: `quick_judge`, then math-verify's parse + verify. Call it in a
  worker process under a hard deadline (see `deadline.py`): it disables math-verify's own SIGALRM
  timeouts, which only work in the main thread.

Guards against math-verify's false positives: the gold is parsed strictly (the whole reference,
no fallback to a fragment of it), a gold that does not parse never passes, text answers never go
through sympy (where "no" == "on" as the product n*o), and a choice letter is never compared as a
variable.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from typing import Any

LETTERS = "ABCDEFGHIJ"
MAX_COMPARE_CHARS = 2000  # longer answers are not compared symbolically
MAX_UNANCHORED_CHARS = 3000  # an unmarked answer is looked for in this many final characters
FORM_CHARS = 200  # parsed forms are shown up to this length


@dataclass(slots=True)
class Judgement:
    passed: bool
    code: str  # correct | wrong_answer | no_answer | gold_unparseable | unparseable_answer | ...
    reason: str
    gold_parsed: str | None = None
    pred_parsed: str | None = None
    answer: str | None = None  # the answer math-verify read when the response marked none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Judgement:
        return cls(**d)


def _short(s: Any) -> str:
    text = str(s)
    return text if len(text) <= FORM_CHARS else text[: FORM_CHARS - 3] + "..."


# ---- normalisation ----------------------------------------------------------------------------

_UNICODE = str.maketrans({"−": "-", "–": "-", "×": "*", "÷": "/", "·": "*", "π": "\\pi ", "∞": "\\infty ",
                          "√": "\\sqrt", "≤": "\\le ", "≥": "\\ge ", "\u00a0": " ", "，": ",", "％": "%"})
_DROP = re.compile(r"\\left\b|\\right\b|\\displaystyle\b|\\[;:]|\\(?:q?quad)\b|\\(?=\s)|~")
_THIN_SPACE = re.compile(r"\\[!,]")
_TEXT_CMD = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|textnormal|operatorname)\s*\{([^{}]*)\}")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?|°|\\degree\b")
_SPACES = re.compile(r"\s+")


def normalize(s: str) -> str:
    """A loose canonical form for the fast paths (not for math-verify, which has its own)."""
    t = s.translate(_UNICODE).strip()
    t = t.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\%", "%").replace("\\$", "$")
    t = t.replace("{,}", ",").replace(",\\!", ",").replace(",\\,", ",")  # LaTeX thousands separators
    if t.count("$") > 1 or (t.count("$") == 1 and not t.lstrip("-+ ").startswith("$")):
        t = t.replace("$", " ")  # math delimiters; a lone leading "$" is a currency sign
    t = _THIN_SPACE.sub("", _DROP.sub(" ", t))
    for _ in range(3):
        unwrapped = _TEXT_CMD.sub(r"\1", t)
        if unwrapped == t:
            break
        t = unwrapped
    t = _DEGREES.sub("", t)
    t = _SPACES.sub(" ", t).strip()
    return t.rstrip(".").strip()


# ---- numbers ----------------------------------------------------------------------------------

_NUM = r"[-+]?(?:[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d{0,2}(?: \d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"
_UNIT_WORD = r"[a-zA-Zµ]+\.?(?:\^\{?[23]\}?|[²³])?(?:\s*/\s*[a-zA-Z]+(?:\^\{?[23]\}?|[²³])?)?"
_CURRENCY = r"(?:\$|€|£|¥|₹|usd\s*|rs\.?\s*)?\s*"
_NUMBER_RES = (  # tried in turn: each must be followed by nothing but percent / unit words
    re.compile(rf"{_CURRENCY}(?P<mneg>-)?(?P<mw>\d+)\s*\\frac\{{(?P<mn>\d+)\}}\{{(?P<md>\d+)\}}", re.IGNORECASE),
    re.compile(rf"{_CURRENCY}(?P<sn>[-+]?\d+)\s*/\s*(?P<sd>\d+)", re.IGNORECASE),
    re.compile(rf"{_CURRENCY}(?P<neg>-)?\s*\\frac\{{(?P<fn>\d+)\}}\{{(?P<fd>\d+)\}}", re.IGNORECASE),
    re.compile(rf"{_CURRENCY}(?P<num>{_NUM})", re.IGNORECASE),
    re.compile(rf"{_CURRENCY}(?P<dc>[-+]?\d+,\d+)", re.IGNORECASE),  # decimal comma: 2,74 / 0,111 / 1000,99
)
_TAIL_RE = re.compile(rf"\s*[€£¥₹$]?\s*(?P<pct>%|percent\b|per cent\b)?"
                      rf"\s*(?P<unit>{_UNIT_WORD}(?:\s+{_UNIT_WORD}){{0,3}})?\s*")
_NOT_UNITS = {"pi", "e", "i", "sqrt", "and", "or", "to", "times", "cdot", "mod", "pmod", "infty", "inf",
              "infinity", "root", "roots", "plus", "minus", "over", "divided", "x", "y", "z", "n", "k", "a", "b",
              "c", "d", "t", "r", "sin", "cos", "tan", "log", "ln", "exp", "frac", "squared", "cubed", "i.e",
              "thousand", "million", "billion", "trillion", "hundred", "dozen", "half", "halves", "third",
              "thirds", "quarter", "quarters", "percent"}
_SINGLE_LETTER_UNITS = set("mgsLlhKNJWV")
_PREFIX_RE = re.compile(r"^(?:approximately|approx\.?|about|around|roughly|\\approx|≈|=)\s*", re.IGNORECASE)
_ASSIGN_RE = re.compile(
    r"^(?P<lhs>\\?[A-Za-z][A-Za-z]{0,7}(?:_\{?[A-Za-z0-9]+\}?)?(?:\([a-z]\))?)\s*=\s*(?P<rhs>[^=]+)$")
_DECIMALS = Decimal(1).scaleb(-6)


@dataclass(frozen=True, slots=True)
class Num:
    value: Fraction
    percent: bool
    text: str


def strip_assignment(s: str) -> str:
    """`x = 2` -> `2`; `f(x) = ...` and chains are left alone."""
    m = _ASSIGN_RE.match(s)
    return m.group("rhs").strip() if m else s


def as_number(s: str, decimal_comma: bool = False) -> Num | None:
    """A plain number with optional currency, percent and unit words, else None.

    `$1,234.50`, `12 cm`, `10%`, `-\\frac{3}{4}`, `3/4`, `x = 2`, `1.5e6` are numbers; `2\\sqrt{3}`,
    `2 or 3`, `12 pi` are not."""
    t = _PREFIX_RE.sub("", strip_assignment(normalize(s)))
    for pattern in _NUMBER_RES if decimal_comma else _NUMBER_RES[:-1]:
        m = pattern.match(t)
        if m is None:
            continue
        tail = _TAIL_RE.fullmatch(t, m.end())
        if tail is None or (tail.group("unit") and not _plausible_unit(tail.group("unit"))):
            continue
        groups = m.groupdict()
        if groups.get("dc") is not None:
            whole, _, part = groups["dc"].lstrip("+-").partition(",")
            if len(part) == 3 and whole != "0" and len(whole) <= 3:
                continue  # 1,234 is a thousands separator, read by the pattern before
            groups["num"] = groups["dc"].replace(",", ".")
        try:
            if groups.get("mw") is not None:  # a mixed number: 12\frac{3}{5} is 12.6
                whole, num, den = int(groups["mw"]), int(groups["mn"]), int(groups["md"])
                if num >= den:
                    continue
                value = (whole + Fraction(num, den)) * (-1 if groups["mneg"] else 1)
            elif groups.get("num") is not None:
                value = Fraction(Decimal(groups["num"].replace(",", "").replace(" ", "")))
            elif groups.get("fn") is not None:
                value = Fraction(int(groups["fn"]), int(groups["fd"])) * (-1 if groups["neg"] else 1)
            else:
                value = Fraction(int(groups["sn"]), int(groups["sd"]))
        except (InvalidOperation, ZeroDivisionError, ValueError):
            return None
        return Num(value, tail.group("pct") is not None, t)
    return None


def _plausible_unit(unit: str) -> bool:
    words = re.findall(r"[a-zA-Zµ.]+", unit)
    for w in words:
        lw = w.lower().rstrip(".")
        if lw in _NOT_UNITS and not (len(w) == 1 and w in _SINGLE_LETTER_UNITS):
            return False
        if len(w.rstrip(".")) == 1 and w.rstrip(".") not in _SINGLE_LETTER_UNITS:
            return False
    return True


def numbers_equal(gold: Num, pred: Num) -> bool:
    """Exact, or equal after rounding to 6 decimals (as math-verify); a percentage may be given
    as its number or its fraction (`10%` matches `10` and `0.1`)."""
    candidates = [(gold.value, pred.value)]
    if pred.percent and not gold.percent:
        candidates.append((gold.value, pred.value / 100))
    if gold.percent and not pred.percent:
        candidates.append((gold.value / 100, pred.value))
    if any(_close(g, p) for g, p in candidates):
        return True
    places = decimal_places(pred.text)
    if places >= 2 and decimal_places(gold.text) == 0:  # 0.33 for 1/3: the pred rounded to the places it shows
        return any(_rounds_to(g, p, places) for g, p in candidates)
    return False


_DECIMAL_PART = re.compile(r"(?<=\d)\.(\d+)")


def decimal_places(text: str) -> int:
    """The most digits after a decimal point among the numbers written in `text`."""
    return max((len(m.group(1)) for m in _DECIMAL_PART.finditer(text)), default=0)


def _rounds_to(exact: Fraction, shown: Fraction, places: int) -> bool:
    from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP

    try:
        value = Decimal(exact.numerator) / Decimal(exact.denominator)
        q = Decimal(1).scaleb(-places)
        return Decimal(shown.numerator) / Decimal(shown.denominator) in (
            value.quantize(q, ROUND_HALF_UP), value.quantize(q, ROUND_HALF_EVEN))
    except InvalidOperation:
        return False


def _close(a: Fraction, b: Fraction) -> bool:
    if a == b:
        return True
    try:
        da = (Decimal(a.numerator) / Decimal(a.denominator)).quantize(_DECIMALS)
        db = (Decimal(b.numerator) / Decimal(b.denominator)).quantize(_DECIMALS)
    except InvalidOperation:
        return False
    return da == db


_PLAIN_NUMBER_RE = re.compile(r"(?<![\w.])(?:[$€£]\s?)?-?\d[\d,]*(?:\.\d+)?(?:\s*%)?")
_CALCULATOR_NOTE = re.compile(r"<<[^<>\n]{0,200}>>")  # GSM8K's "<<48/2=24>>"
_MATH_DOLLAR = re.compile(r"\$(?!\s?\d)")  # a "$" that is not a currency sign before a number
_OPERATOR_NEAR = re.compile(r"[-+*/×÷^]\s*$")


def last_plain_number(text: str) -> str | None:
    """The last number of a plain-text final part (no LaTeX), as math-verify would read it when
    the response marks no answer; None when that needs math-verify itself (LaTeX, or the number
    ends an arithmetic expression such as `2 + 3`)."""
    tail = _CALCULATOR_NOTE.sub("", text[-MAX_UNANCHORED_CHARS:])
    if "\\" in tail or _MATH_DOLLAR.search(tail):
        return None
    last = None
    for last in _PLAIN_NUMBER_RE.finditer(tail):  # noqa: B007 - we want the final match
        pass
    if last is None:
        return None
    after = tail[last.end(): last.end() + 3]
    if _OPERATOR_NEAR.search(tail[max(0, last.start() - 3): last.start()]) or re.match(r"\s*[-+*/×÷^=(]", after):
        return None
    number = last.group().rstrip(",")
    return number if as_number(number) is not None else None


# ---- text answers -----------------------------------------------------------------------------

_ANSWER_WORDS = {"yes", "no", "true", "false", "none", "odd", "even", "neither", "both", "all", "never", "always"}
_MATH_NAMES = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "max", "min", "gcd", "lcm", "det",
               "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sqrt", "pi", "infty", "lim", "mod"}
_WORDY_RE = re.compile(r"[A-Za-z][A-Za-z'\- ]*[A-Za-z]")
_ARTICLES = re.compile(r"\b(?:the|a|an)\b")
_PUNCT = re.compile(r"[^\w\s]")


def is_text_answer(s: str) -> bool:
    """A word answer ("Monday", "\\text{even}", "no solution"): decided by text, never by sympy."""
    raw = s.strip()
    t = normalize(raw)
    if not _WORDY_RE.fullmatch(t):
        return False
    words = t.lower().split()
    if any(w in _MATH_NAMES for w in words):
        return False
    if "\\text" in raw or "\\mathrm" in raw or len(words) > 1 or t.lower() in _ANSWER_WORDS:
        return True
    return len(t) >= 4  # a bare "xy" is a product of variables; "Monday" is a word


def text_key(s: str) -> str:
    t = normalize(s).lower()
    t = _PUNCT.sub(" ", t)
    t = _ARTICLES.sub(" ", t)
    return _SPACES.sub(" ", t).strip()


# ---- multiple choice --------------------------------------------------------------------------

_LETTER_RE = re.compile(r"^\(?([A-J])\)?$")
_LETTER_PREFIX_RE = re.compile(r"^\(?([A-J])[).:]\s+\S")
_CHOICE_WORD_RE = re.compile(r"^(?:option|choice|answer)\s*[:.]?\s*", re.IGNORECASE)


def choice_letter(s: str) -> str | None:
    t = _CHOICE_WORD_RE.sub("", normalize(s)).strip("*").strip()
    m = _LETTER_RE.match(t) or _LETTER_PREFIX_RE.match(t)
    return m.group(1) if m else None


def choice_index(answer: str, choices: list[str] | None, _nested: bool = False) -> int | None:
    """Which option an answer names: its letter, `(B) text`, or the option's text or value."""
    letter = choice_letter(answer)
    if letter is not None:
        idx = LETTERS.index(letter)
        return idx if choices is None or idx < len(choices) else None
    if not choices:
        return None
    key = text_key(answer)
    hits = [i for i, c in enumerate(choices) if key and text_key(str(c)) == key]
    if len(hits) == 1:
        return hits[0]
    num = as_number(answer)
    if num is not None:
        hits = [i for i, c in enumerate(choices) if (cn := as_number(str(c))) is not None and numbers_equal(cn, num)]
        if len(hits) == 1:
            return hits[0]
    if _nested:
        return None
    from assay.verify.extract import extract_answer  # "The answer is (C)" given as the answer itself

    inner = extract_answer(answer)
    return choice_index(inner, choices, _nested=True) if inner and inner != answer else None


def _gold_choice(gold: str, choices: list[str] | None) -> int | None:
    if choices:
        if choice_letter(gold) is not None:
            return choice_index(gold, choices)
        idx = choice_index(gold, choices)
        if idx is not None:
            return idx
        if gold.strip().isdigit() and int(gold) < len(choices):  # an option index, as MMLU stores it
            return int(gold)
        return None
    return choice_index(gold, None)


# ---- judging ----------------------------------------------------------------------------------

def _ok(gold_form: str, pred_form: str, how: str) -> Judgement:
    return Judgement(True, "correct", f"{_short(pred_form)} == {_short(gold_form)} ({how})", _short(gold_form),
                     _short(pred_form))


def _wrong(gold_form: str, pred_form: str, how: str) -> Judgement:
    return Judgement(False, "wrong_answer", f"{_short(pred_form)} != {_short(gold_form)} ({how})", _short(gold_form),
                     _short(pred_form))


_JOINER = re.compile(r"\band\b|[,;]|\\text\{\s*and\s*\}")


def reference_answer(gold: str) -> str:
    """The answer inside a reference as people write it: `$\\frac12$`, `\\boxed{5}`, `The answer is 5`."""
    from assay.verify.extract import boxes, clean_answer

    spans = boxes(gold)
    if not spans:
        return clean_answer(gold)
    parts = [spans[-1]]
    for prev in reversed(spans[:-1]):  # "\\boxed{1} papers and \\boxed{2} bins": an answer in parts
        between = gold[prev[1]: parts[0][0]]
        words = re.findall(r"[A-Za-z]+", between)
        if words and (len(words) > 4 or not _JOINER.search(between)):
            break
        parts.insert(0, prev)
    return ", ".join(content for _, _, content in parts)


def quick_judge(gold: str, pred: str, choices: list[str] | None = None) -> Judgement | None:
    """Decide the pairs that need no symbolic maths; None sends the pair to `judge`."""
    gold = reference_answer(gold)
    if choices:
        g = _gold_choice(gold, choices)
        if g is None:
            return Judgement(False, "gold_unparseable", f"reference {_short(gold)!r} is not one of the {len(choices)} "
                             "choices", None, None)
        p = choice_index(pred, choices)
        gl = f"{LETTERS[g]}) {_short(choices[g])}"
        if p is None:
            return Judgement(False, "wrong_answer", f"{_short(pred)!r} names none of the choices", gl, None)
        pl = f"{LETTERS[p]}) {_short(choices[p])}"
        return _ok(gl, pl, "choice") if p == g else _wrong(gl, pl, "choice")
    gold_letter = choice_letter(gold)
    if gold_letter is not None and _LETTER_RE.match(normalize(gold).strip("()")):
        pred_letter = choice_letter(pred)
        if pred_letter is not None:
            return (_ok if pred_letter == gold_letter else _wrong)(gold_letter, pred_letter, "choice")
    g_assign, p_assign = _ASSIGN_RE.match(normalize(gold)), _ASSIGN_RE.match(normalize(pred))
    if g_assign and p_assign and g_assign.group("lhs").replace(" ", "") != p_assign.group("lhs").replace(" ", ""):
        return None  # x = 2 against y = 2: math-verify keeps the variables apart
    gn, pn = as_number(gold), as_number(pred)
    if gn is not None and pn is not None:
        return (_ok if numbers_equal(gn, pn) else _wrong)(_num_form(gn), _num_form(pn), "number")
    gn, pn = gn or as_number(gold, decimal_comma=True), pn or as_number(pred, decimal_comma=True)
    if gn is not None and pn is not None:  # "2,74" read as 2.74; if that does not match, "1,2" may be a list
        return _ok(_num_form(gn), _num_form(pn), "number, decimal comma") if numbers_equal(gn, pn) else None
    if gn is not None:
        return None
    if is_text_answer(gold):
        gk, pk = text_key(gold), text_key(strip_assignment(normalize(pred)))
        return (_ok if gk == pk else _wrong)(gk, pk, "text")
    return None


def _num_form(n: Num) -> str:
    v = n.value
    s = str(v.numerator) if v.denominator == 1 else str(v)
    return s + ("%" if n.percent else "")


# ---- math-verify (worker processes) -----------------------------------------------------------

_MV: dict[str, Any] = {}


def _mv() -> dict[str, Any]:
    if not _MV:
        import logging

        import math_verify
        from math_verify import ExprExtractionConfig, LatexExtractionConfig

        logging.getLogger("math_verify").setLevel(logging.ERROR)
        _MV.update(parse=math_verify.parse, verify=math_verify.verify,
                   latex=[LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)],
                   expr=[ExprExtractionConfig()], default=[LatexExtractionConfig(), ExprExtractionConfig()])
    return _MV


_SCI_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")
_THOUSANDS_RE = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+)(?![\d,]|\.\d*,)")
_UPRIGHT_CONSTANT = re.compile(r"\\(?:mathrm|text|operatorname|mathit)\s*\{\s*([ei])\s*\}")


_MIXED_NUMBER = re.compile(r"(?<![\d.}^_])(\d+)\s*\\[dt]?frac\s*\{(\d+)\}\s*\{(\d+)\}")


def _mixed(m: re.Match[str]) -> str:
    whole, num, den = m.groups()
    return f"({whole}+\\frac{{{num}}}{{{den}}})" if int(num) < int(den) else m.group()


def prepare_for_math_verify(s: str) -> str:
    """Spell out what math-verify misreads: `1.5e6` (e is Euler's number to it), `1,234` in sums,
    `\\mathrm{e}` (it cannot parse), mixed numbers (`12\\frac{3}{5}` is 12 + 3/5, not 12 * 3/5)."""
    t = s.strip().translate(_UNICODE)
    t = _MIXED_NUMBER.sub(_mixed, t)
    t = _SCI_RE.sub(r"\1\\times 10^{\2}", t)
    t = _UPRIGHT_CONSTANT.sub(r"\1", t).replace("\\$", " ")
    if "," in t and not any(c in t for c in "()[]\\{}"):
        t = _THOUSANDS_RE.sub(lambda m: m.group(1).replace(",", ""), t)
    return t


def _parse_whole(text: str) -> list[Any]:
    mv = _mv()
    parsed = mv["parse"]("\\boxed{" + text + "}", mv["latex"], fallback_mode="no_fallback", parsing_timeout=None)
    return [p for p in parsed if not isinstance(p, str)]


def _parse_with_pm(text: str) -> list[Any]:
    """`_parse_whole`, reading `a \\pm b` (which the parser does not know) as the set {a + b, a - b}."""
    parsed = _parse_whole(text)
    if parsed or ("\\pm" not in text and "\\mp" not in text):
        return parsed
    plus = _parse_whole(text.replace("\\pm", "+").replace("\\mp", "-"))
    minus = _parse_whole(text.replace("\\pm", "-").replace("\\mp", "+"))
    if not plus or not minus:
        return []
    from latex2sympy2_extended.sets import FiniteSet

    return [FiniteSet(plus[0], minus[0])]


@lru_cache(maxsize=4096)
def _parse_strict_cached(answer: str) -> tuple[Any, ...]:
    return tuple(_parse_strict(answer))


def parse_strict(answer: str) -> list[Any]:
    """math-verify's parse of the whole answer (never of a fragment), as sympy objects; [] if it
    does not parse. Cached: references repeat across responses."""
    return list(_parse_strict_cached(answer))


def _parse_strict(answer: str) -> list[Any]:
    """math-verify's parse of the whole answer (never of a fragment), as sympy objects; [] if it
    does not parse. A list that only parses part by part (`x = 1/2, x = -3`) becomes the set of
    its parts. No SIGALRM: call it under an external deadline."""
    mv = _mv()
    text = prepare_for_math_verify(answer)
    parsed = _parse_with_pm(text)
    if parsed:
        return parsed
    parts = split_top_level(text)
    if len(parts) > 1:
        each = [_parse_with_pm(part) for part in parts]
        if all(each):
            from latex2sympy2_extended.sets import FiniteSet

            elements = []
            for p in each:
                elements.extend(p[0].args if isinstance(p[0], FiniteSet) else [p[0]])
            return [FiniteSet(*elements)]
    if "\\" not in text:  # plain-text maths such as "sqrt(2)/2": sympy's expression parser, whole string only
        found = mv["parse"](text, mv["expr"], fallback_mode="first_match", parsing_timeout=None)
        if len(found) == 2 and isinstance(found[1], str) and found[1].strip() == text.strip():
            return [found[0]]
    return []


def split_top_level(text: str) -> list[str]:
    """Split at commas / semicolons outside any brackets: `x = 1, y = (2, 3)` -> 2 parts."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and text[i + 1: i + 2] in ("{", "}"):
            depth += 1 if text[i + 1] == "{" else -1
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c in ",;" and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def parse_unanchored(final_text: str) -> tuple[list[Any], str | None]:
    """math-verify's own extraction (the last LaTeX expression or number) from a final part that
    marks no answer; (sympy objects, the text it read)."""
    mv = _mv()
    tail = final_text[-MAX_UNANCHORED_CHARS:]
    found = mv["parse"](tail, mv["default"], fallback_mode="first_match", parsing_timeout=None)
    objects = [f for f in found if not isinstance(f, str)]
    text = next((f for f in found if isinstance(f, str)), None)
    return objects, text if text is not None else (_short(objects[0]) if objects else None)


_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_LONG_WORD = re.compile(r"[A-Za-z]{3,}")


def is_prose(answer: str) -> bool:
    """A sentence rather than an answer ("Jane started growing Sphere 3 hours ago")."""
    return len(_LONG_WORD.findall(_LATEX_CMD.sub(" ", answer))) >= 3


def judge(gold: str, pred: str | None, choices: list[str] | None = None, final_text: str | None = None,
          alternates: tuple[str, ...] = ()) -> Judgement:
    """The full comparison; run it under a hard deadline (math-verify can hang on some inputs).

    pred: the extracted answer; None when the response marks none, then math-verify's own
    extraction reads `final_text` (the response after its reasoning). alternates: other readings
    of the answer worth trying (all boxes of a multi-part answer); any match passes."""
    candidates = [c for c in ([pred] if pred is not None else []) + list(alternates) if c]
    first_quick = None
    for cand in candidates:
        quick = quick_judge(gold, cand, choices)
        if quick is not None and (quick.passed or cand is candidates[-1]):
            return quick
        first_quick = first_quick or quick
    gold = reference_answer(gold)
    if choices or (pred is None and (is_text_answer(gold) or _LETTER_RE.match(normalize(gold)))):
        # choices and words are never read from unmarked text: "A" or "no" occur in any sentence
        return first_quick or Judgement(False, "no_answer", "no final answer found in the response")
    if len(gold) > MAX_COMPARE_CHARS:
        return Judgement(False, "gold_unparseable", f"reference is {len(gold)} characters long")
    gold_parsed = parse_strict(gold)
    if not gold_parsed:
        return Judgement(False, "gold_unparseable", f"reference {_short(gold)!r} does not parse")
    gold_form = _short(gold_parsed[0])
    mv = _mv()
    if pred is None:
        pred_parsed, read = parse_unanchored(final_text or "")
        if not pred_parsed:
            return Judgement(False, "no_answer", "no final answer found in the response", gold_form)
        verdict = (_ok if mv["verify"](gold_parsed, pred_parsed, timeout_seconds=None) else _wrong)(
            gold_form, _short(pred_parsed[0]), "math-verify, unmarked answer")
        verdict.answer = read
        return verdict
    gold_key = normalize(gold)
    pred_form = None
    for cand in candidates:
        if len(cand) > MAX_COMPARE_CHARS:
            continue
        if normalize(cand) == gold_key:
            return _ok(gold_form, _short(cand), "same text")
        assignment = _ASSIGN_RE.match(cand.strip())
        for variant in [cand] + ([assignment.group("rhs").strip()] if assignment and "=" not in gold else []):
            pred_parsed = parse_unanchored(variant)[0] if is_prose(variant) else parse_strict(variant)
            if not pred_parsed:
                continue
            pred_form = pred_form or _short(pred_parsed[0])
            if mv["verify"](gold_parsed, pred_parsed, timeout_seconds=None):
                return _ok(gold_form, _short(pred_parsed[0]), "math-verify")
            places = decimal_places(variant)
            if places >= 2 and decimal_places(gold) == 0 and mv["verify"](
                    gold_parsed, pred_parsed, float_rounding=places, timeout_seconds=None):
                return _ok(gold_form, _short(pred_parsed[0]), f"math-verify, rounded to {places} places")
    if pred_form is None:
        return Judgement(False, "unparseable_answer", f"answer {_short(pred)!r} does not parse", gold_form)
    return _wrong(gold_form, pred_form, "math-verify")


def judge_task(task: tuple[Any, ...]) -> dict[str, Any]:
    """Worker entry point for `DeadlinePool`: (gold, pred, choices, final_text, alternates) -> dict."""
    return judge(*task).to_dict()
