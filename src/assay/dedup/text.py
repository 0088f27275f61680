"""Text normalisation shared by the dedup and decontamination stages.

Three views of a problem text:
- `exact_key`: a canonical token string for exact dedup. Unicode NFKC, case, whitespace,
  sentence punctuation, LaTeX spacing and delimiters (`\\frac{1}{2}` == `\\frac 1 2`,
  `\\left(` == `(`, `$x$` == `x`) and thousands separators (`1,000` == `1000`) do not count;
  math operators do (`x+1` != `x-1`).
- `words`: lower-case alphanumeric words (LaTeX commands become words: `\\frac` -> `frac`),
  for n-gram overlap.
- `plain`: LaTeX turned into plain text for an embedding model (`\\frac{a}{b}` -> `(a)/(b)`).
"""

from __future__ import annotations

import re
import string
import unicodedata

# LaTeX that only changes spacing, sizing or math delimiters.
_LATEX_NOISE = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg|displaystyle|textstyle"
    r"|scriptstyle|limits|nolimits|quad|qquad|,|;|:|!|\s)(?![a-zA-Z])"
    r"|\\[()\[\]]|\$|~"
)
_FRAC_VARIANTS = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_BINOM_VARIANTS = re.compile(r"\\[dt]binom(?![a-zA-Z])")
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


def words(text: str) -> list[str]:
    """Lower-case words and numbers (punctuation, LaTeX braces and backslashes dropped)."""
    return _WORD.findall(_canonical_latex(text).casefold())


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
