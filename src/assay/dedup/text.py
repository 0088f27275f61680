"""Text normalisation shared by the dedup and decontamination stages.

Three views of a problem text:
- `exact_key`: a canonical token string for exact dedup. Unicode NFKC, case, whitespace,
  sentence punctuation, LaTeX spacing and delimiters (`\\frac{1}{2}` == `\\frac 1 2`,
  `\\left(` == `(`, `$x$` == `x`) and thousands separators (`1,000` == `1000`) do not count;
  math operators do (`x+1` != `x-1`).
- `words`: lower-case alphanumeric words (LaTeX commands become words: `\\frac` -> `frac`,
  single letters become `x` so renamed variables still match), for n-gram overlap.
- `embedding_view`: what an embedding model reads: Asymptote diagrams dropped, single-letter
  variables renamed to `x`, LaTeX turned into plain text (`\\frac{a}{b}` -> `a/b`).
"""

from __future__ import annotations

import re
import string
import unicodedata

# LaTeX that only changes spacing, sizing or math delimiters.
_LATEX_NOISE = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg|displaystyle|textstyle"
    r"|scriptstyle|limits|nolimits|quad|qquad|,|;|:|!|\s)(?![a-zA-Z])"
    r"|\\[()\[\]]|\$|~",
    re.IGNORECASE,
)
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![a-zA-Z])", re.IGNORECASE)
_BINOM_VARIANTS = re.compile(r"\\[dt]binom(?![a-zA-Z])", re.IGNORECASE)
# `\frac12` is `\frac{1}{2}`: single-character arguments written without braces.
_BARE_ARGS = re.compile(r"\\(frac|binom)\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])(?![0-9a-zA-Z])")
_TEXT_CMDS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|mbox|operatorname)\s*(?=\{)")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3})((?:,\d{3})+)(?![\d])")
_TOKEN = re.compile(r"\\[a-zA-Z]+|\d+(?:\.\d+)?|\w+|[^\w\s]", re.UNICODE)
# Tokens that carry no meaning for "is this the same problem": grouping and sentence punctuation.
_DROP = frozenset("{}.,;:!?\"'`“”‘’«»") | {"\\"}


def _canonical_latex(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\\$", " ").replace("\\%", "%")
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _BINOM_VARIANTS.sub(r"\\binom", text)
    text = _BARE_ARGS.sub(r"\\\1{\2}{\3}", text)
    text = _TEXT_CMDS.sub("", text)
    text = _LATEX_NOISE.sub(" ", text)
    text = text.replace("{,}", ",")
    return _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)


def exact_tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(_canonical_latex(text).casefold()) if t not in _DROP]


def exact_key(text: str) -> str:
    """The canonical form two texts share when they differ only in formatting."""
    return " ".join(exact_tokens(text))


_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# LaTeX commands that only typeset (a plain-text copy has no word for them).
_FORMAT_CMDS = re.compile(r"\\(?:frac|binom|cdot|times|div|cdots|ldots|dots|text\w*|math\w*|operatorname|overline"
                          r"|underline|hat|bar|vec|begin|end|array|le|leq|ge|geq|ne|neq|pm|circ)(?![a-zA-Z])")
_DIAGRAM = re.compile(r"\[asy\].*?(?:\[/asy\]|$)", re.S | re.I)


def strip_diagrams(text: str) -> str:
    """Drop Asymptote code (`[asy]...[/asy]`): drawing commands say little about the problem."""
    return _DIAGRAM.sub(" ", text) if "[asy]" in text.lower() else text


def words(text: str) -> list[str]:
    """Lower-case words and numbers (punctuation, LaTeX braces and backslashes and diagrams
    dropped; single letters read as `x`, so `p(x)` and `q(t)` match)."""
    text = rename_variables(strip_diagrams(strip_instructions(text)))
    text = _FORMAT_CMDS.sub(" ", _canonical_latex(text)).casefold()
    return ["x" if len(w) == 1 and w.isalpha() else w for w in _WORD.findall(text)]


# Fast normalisation for MinHash shingles: every ASCII punctuation mark becomes a space.
_PUNCT_TO_SPACE = str.maketrans({c: " " for c in string.punctuation + "\x00"})


def shingle_text(text: str) -> str:
    """Lower-case text with punctuation turned into spaces (the MinHash view; cheap)."""
    return unicodedata.normalize("NFKC", text).lower().translate(_PUNCT_TO_SPACE)


_PLAIN_FRAC = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_SIMPLE = re.compile(r"\s*\\?[\w.]+\s*")


def _group(arg: str) -> str:
    return arg.strip() if _SIMPLE.fullmatch(arg) else f"({arg.strip()})"

_PLAIN_SQRT = re.compile(r"\\sqrt\s*\{([^{}]*)\}")
_PLAIN_OPS = {"\\cdot": "*", "\\times": "*", "\\div": "/", "\\le": "<=", "\\leq": "<=", "\\ge": ">=",
              "\\geq": ">=", "\\ne": "!=", "\\neq": "!=", "\\pm": "+-", "\\infty": "infinity",
              "\\circ": " degrees"}
_PLAIN_CMD = re.compile(r"\\([a-zA-Z]+)")
_SPACES = re.compile(r"\s+")


def plain(text: str) -> str:
    """LaTeX as plain text, so `$\\frac{1}{2}$` and `1/2` read alike to an embedding model."""
    text = _canonical_latex(text)
    for _ in range(3):  # nested fractions, innermost first
        new = _PLAIN_SQRT.sub(r"sqrt(\1)", _PLAIN_FRAC.sub(lambda m: f"{_group(m[1])}/{_group(m[2])}", text))
        if new == text:
            break
        text = new
    for cmd, rep in _PLAIN_OPS.items():
        text = re.sub(re.escape(cmd) + r"(?![a-zA-Z])", rep, text)
    text = _PLAIN_CMD.sub(r"\1", text).replace("{", "").replace("}", "")
    return _SPACES.sub(" ", text).strip()


_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", re.S)
_MATH_LETTER = re.compile(r"(\\[a-zA-Z]+)|[a-zA-Z]")
_TEXT_ARG = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
# Outside math mode: a lone letter touching an operator, digit or bracket (`f(x)`, `3x`, `x-2`) or
# spaced from an operator (`x - 2`, `= b`); not an article before a number (`a 9-km walk`) and
# not a plural after a number (`0s`, `1990s`).
_PLAIN_LETTER = re.compile(r"(?<![A-Za-z\\])[a-zA-Z](?=[()+\-*/^=<>0-9]|\s+[+\-*/^=<>](?![a-zA-Z]))"
                           r"|(?<=[()+\-*/^=<>0-9])(?!s\b)[a-zA-Z](?![A-Za-z])"
                           r"|(?<=[+\-*/^=<>] )[a-zA-Z](?![A-Za-z])")


def rename_variables(text: str) -> str:
    """Every single-letter variable becomes `x`, so renamed copies of a problem read alike.

    Inside math mode every letter that is not a command is a variable (`ax^2` is a times x^2);
    `\\text{...}` keeps its words. Outside math mode only letters next to an operator or digit.
    """
    def in_math(m: re.Match[str]) -> str:
        body = next(g for g in m.groups() if g is not None)
        kept: list[str] = []
        body = _TEXT_ARG.sub(lambda t: kept.append(t.group(0)) or f"\x00{len(kept) - 1}\x00", body)
        body = _MATH_LETTER.sub(lambda t: t.group(1) or "x", body)
        body = re.sub("\x00(\\d+)\x00", lambda t: kept[int(t.group(1))], body)
        return f" {body} "

    return _PLAIN_LETTER.sub("x", _MATH_SPAN.sub(in_math, text))


# Answer-format instructions that prompt templates append to any problem (DeepSeek-R1, OpenR1, ...).
_INSTRUCTIONS = re.compile(
    r"(?:please\s+)?reason\s+step\s+by\s+step,?\s*(?:and\s+)?put\s+your\s+final\s+answer\s+within\s+\\boxed\{\}\.?"
    r"|return\s+your\s+final\s+response\s+within\s+\\boxed\{\}\.?"
    r"|put\s+(?:your|the)\s+final\s+answer\s+(?:with)?in\s+\\boxed\{\}\.?"
    r"|let'?s\s+think\s+step\s+by\s+step\.?",
    re.IGNORECASE,
)


def strip_instructions(text: str) -> str:
    """Drop stock answer-format instructions, which say nothing about the problem itself."""
    return _INSTRUCTIONS.sub(" ", text) if "boxed" in text or "step by step" in text.lower() else text


def embedding_view(text: str) -> str:
    """The text an embedding model should compare: no diagrams or stock instructions, variables
    renamed, plain LaTeX."""
    return plain(rename_variables(strip_diagrams(strip_instructions(text))))


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def numbers(text: str) -> frozenset[str]:
    """The numbers written in a text (digits only: '0.50' and '0.5' alike), as a set. A rewording of
    a problem keeps them, which dedup-semantic and decontaminate use."""
    out = set()
    for m in _NUMBER.findall(text):
        if "." in m:
            m = m.rstrip("0").rstrip(".") or "0"
        out.add(m.lstrip("0") or "0")
    return frozenset(out)


def distinctive(nums: frozenset[str]) -> bool:
    """Enough digits that two unrelated problems rarely share exactly these numbers."""
    return sum(len(n.replace(".", "")) for n in nums) >= 3

