"""Split text into natural-language segments for language identification.

Math and code say nothing about the language a text is written in, and they confuse a
character n-gram model (`def f(x): return x` reads as Spanish). So code fences, inline code,
LaTeX, URLs, numbers and symbol-laden tokens are removed first; what is left is split into
sentences, and sentences too short to identify are merged with neighbours of the same script.
Each segment carries a weight: letters, with CJK / kana / hangul characters counting more,
since one of them carries about as much text as a short Latin word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

CJK_WEIGHT = 3

_FENCE = re.compile(r"(```|~~~)[^\n]*\n.*?(?:\1|\Z)|\[asy\].*?(?:\[/asy\]|\Z)", re.S | re.I)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LATEX_ENV = re.compile(r"\\begin\{([^}]*)\}.*?(?:\\end\{\1\}|\Z)", re.S)
_DISPLAY_MATH = re.compile(r"\$\$.*?(?:\$\$|\Z)|\\\[.*?(?:\\\]|\Z)", re.S)
_INLINE_MATH = re.compile(r"\$[^$]{1,600}?\$|\\\(.*?(?:\\\)|\Z)", re.S)
_ESCAPED_DOLLAR = re.compile(r"\\\$")
_TAGS = re.compile(r"</?[A-Za-z_][\w-]*(?:\s[^<>]*)?/?>|<\|[^|>]*\|>")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
_LATEX_CMD = re.compile(r"\\[A-Za-z]+\*?")
# An ASCII run holding a digit or a code/math symbol is a formula, identifier or number, not a
# word: `x^2`, `dp[i]`, `O(n)`, `3.14`, `a_1`, `i++`. Hyphens and apostrophes stay (well-known, don't).
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3})(?=\S)([^*_\n]+?)(?<=\S)\1")
_CALL = re.compile(r"\b[A-Za-z_]\w*\([^\s()]*\)")
_CODE_TOKEN = re.compile(r"[!-~]*[0-9=+*/^_\\{}\[\]<>|#@$%&~][!-~]*")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|(?<=[。！？；：…])|\n+")


@dataclass(slots=True)
class Segment:
    text: str
    script: str
    weight: int


def _looks_like_code(line: str) -> bool:
    """An unfenced line of code: ends like a statement, or is dense with symbols."""
    s = line.strip()
    if not s:
        return False
    if s[-1] in ";{}" or s.startswith(("#include", "import ", "from ", "def ", "class ", "return ", "//")):
        return True
    symbols = sum(ch in "=+*/^_\\{}[]()<>|#@$%&~;" for ch in s)
    return len(s) >= 8 and symbols > 0.15 * len(s)


def strip_non_language(text: str) -> str:
    """Remove code, math, markup, URLs and numbers, keeping sentence boundaries."""
    text = _FENCE.sub("\n", text)
    text = _ESCAPED_DOLLAR.sub(" ", text)
    text = _DISPLAY_MATH.sub("\n", text)
    text = _INLINE_MATH.sub(" ", text)
    text = _LATEX_ENV.sub("\n", text)
    text = _INLINE_CODE.sub(" ", text)
    text = "\n".join(line for line in text.split("\n") if not _looks_like_code(line))
    text = _TAGS.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _LATEX_CMD.sub(" ", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _CALL.sub(" ", text)
    return _CODE_TOKEN.sub(" ", text)


def script_of(ch: str) -> str:
    """A coarse script class of one letter: enough to keep different writing systems apart."""
    o = ord(ch)
    if o < 0x250:
        return "latin"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF:
        return "kana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F:
        return "han"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if 0x400 <= o <= 0x52F:
        return "cyrillic"
    if 0x370 <= o <= 0x3FF:
        return "greek"
    if 0x590 <= o <= 0x5FF:
        return "hebrew"
    if 0x600 <= o <= 0x6FF or 0x750 <= o <= 0x77F:
        return "arabic"
    if 0x900 <= o <= 0xDFF:
        return "indic"
    if 0xE00 <= o <= 0xEFF:
        return "thai"
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0].lower() if name else "other"


def _measure(text: str) -> tuple[str, int]:
    """(dominant script, weight) of a piece of text; weight 0 when it holds no letters."""
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            s = script_of(ch)
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return "", 0
    script = max(counts, key=counts.__getitem__)
    weight = sum(n * (CJK_WEIGHT if s in ("han", "kana", "hangul") else 1) for s, n in counts.items())
    # Japanese mixes kanji with kana: text with any kana is Japanese script, not Chinese.
    if script == "han" and counts.get("kana", 0) * 5 >= counts["han"]:
        script = "kana"
    return script, weight


def segments(text: str, min_weight: int = 24) -> list[Segment]:
    """Natural-language segments of `text`; a sentence lighter than `min_weight` is merged with
    its same-script neighbour (a lone "Wait," is not identifiable on its own)."""
    out: list[Segment] = []
    for piece in _SENTENCE_END.split(strip_non_language(text)):
        piece = " ".join(piece.split())
        script, weight = _measure(piece)
        if not weight:
            continue
        last = out[-1] if out else None
        if last is not None and last.script == script and (last.weight < min_weight or weight < min_weight):
            last.text += " " + piece
            last.weight += weight
        else:
            out.append(Segment(piece, script, weight))
    return out
