"""Labels read from the metadata that public data sets ship (sources keep it in `meta`).

Difficulty is a float in [0, 1] so one rule works across sources:
- MATH `level` 1-5 (also "Level 3"): the centre of its fifth of the range, 0.1 ... 0.9;
- Codeforces `rating` 800-3500: linear, 800 -> 0.0, 3500 -> 1.0;
- named difficulties: APPS introductory / interview / competition, LeetCode Easy / Medium / Hard,
  TACO EASY ... VERY_HARD (table below, extendable in the config);
- CodeContests' `difficulty` enum, as its integer or its name (EASY ... HARDEST, or the Codeforces
  problem index A-V); a numeric difficulty of a math record is read on a 1-10 scale (Omni-MATH).
"""

from __future__ import annotations

import math
import re
from typing import Any

NAMED_DIFFICULTY: dict[str, float] = {
    "very_easy": 0.1, "easy": 0.2, "introductory": 0.2, "simple": 0.2,
    "medium": 0.5, "interview": 0.5, "moderate": 0.5, "normal": 0.5,
    "medium_hard": 0.65, "hard": 0.8, "competition": 0.8, "difficult": 0.8,
    "harder": 0.9, "very_hard": 0.95, "hardest": 0.95, "expert": 0.95,
}
# CodeContests (deepmind/code_contests) Problem.Difficulty enum values.
CODECONTESTS_NAMED = {1: 0.2, 2: 0.5, 3: 0.8, 4: 0.9, 5: 0.95}
CODEFORCES_INDEX = [0.15, 0.3, 0.45, 0.6, 0.75, 0.85, 0.9]  # A, B, C, ... (later letters: the last)

_LEVEL = re.compile(r"^\s*(?:level\s*)?(\d+(?:\.\d+)?)\s*$", re.I)
_NON_WORD = re.compile(r"[^0-9a-z]+")


def slug(value: Any) -> str:
    """`Intermediate Algebra` -> `intermediate_algebra`: category and difficulty names compare this way."""
    return _NON_WORD.sub("_", str(value).strip().lower()).strip("_")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        m = _LEVEL.match(value)
        return float(m.group(1)) if m else None
    return None


def _clip(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 4)


def level_difficulty(level: Any, scale: int = 5) -> float | None:
    """MATH-style level 1..scale -> the centre of its bin in [0, 1]."""
    n = _number(level)
    if n is None or not 1 <= n <= scale:
        return None
    return _clip((n - 0.5) / scale)


def rating_difficulty(rating: Any, low: float = 800, high: float = 3500) -> float | None:
    n = _number(rating)
    if n is None or n <= 0:
        return None
    return _clip((n - low) / (high - low))


def named_difficulty(value: Any, names: dict[str, float], domain: str | None,
                     numeric_scale: float = 10) -> float | None:
    """A named difficulty (Easy, interview, MEDIUM_HARD) or a number: CodeContests' enum for code,
    else a 1..numeric_scale rating (Omni-MATH uses 1-10)."""
    if isinstance(value, str) and _number(value) is None:
        name = slug(value)
        if name in names:
            return names[name]
        if domain == "code" and len(name) == 1 and name.isalpha():  # CodeContests names the Codeforces index
            return CODEFORCES_INDEX[min(ord(name) - ord("a"), len(CODEFORCES_INDEX) - 1)]
        return None
    if isinstance(value, str) and value.strip().lower().startswith("level"):
        return level_difficulty(value)
    n = _number(value)
    if n is None:
        return None
    if domain == "code" and float(n).is_integer():
        k = int(n)
        if k in CODECONTESTS_NAMED:
            return CODECONTESTS_NAMED[k]
        if k >= 7:
            return CODEFORCES_INDEX[min(k - 7, len(CODEFORCES_INDEX) - 1)]
        return None  # 0 UNKNOWN_DIFFICULTY, 6 EXTERNAL
    if 1 <= n <= numeric_scale:
        return _clip((n - 0.5) / numeric_scale)
    return None


def first_present(meta: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for k in keys:
        v = meta.get(k)
        if v not in (None, "", [], {}):
            return k, v
    return None


# Phrases that point at a picture the text does not carry (common in scraped math problems).
_FIGURE = re.compile(
    r"\b(?:as\s+shown\s+(?:in|below|above)|shown\s+in\s+the\s+(?:figure|diagram|picture|image|graph)|"
    r"(?:see|in)\s+the\s+(?:figure|diagram|picture|image)\s+(?:below|above)|"
    r"(?:the|this)\s+(?:figure|diagram|picture|image)\s+(?:below|above|shows)|\[(?:figure|image)\])|"
    r"如图|见图", re.I)
_HAS_FIGURE = re.compile(r"\[asy\]|!\[[^\]]*\]\(|<img\b|\\includegraphics|\\begin\{tikzpicture\}", re.I)


def quality_flags(prompt: str) -> list[str]:
    """Defects visible in the prompt text itself."""
    flags = []
    letters = sum(ch.isalpha() for ch in prompt)
    if len(prompt.strip()) < 12:
        flags.append("too_short")
    if _FIGURE.search(prompt) and not _HAS_FIGURE.search(prompt):
        flags.append("missing_figure")
    if "\ufffd" in prompt or sum(ord(c) < 32 and c not in "\n\t\r" for c in prompt) > 0:
        flags.append("garbled")
    if letters and sum(ch.isupper() for ch in prompt) > 0.6 * letters and letters > 40:
        flags.append("shouting")
    if len(prompt) >= 200 and _repetitive(prompt):
        flags.append("repetitive")
    if len(prompt) > TOO_LONG_CHARS:
        flags.append("too_long")
    return flags


TOO_LONG_CHARS = 50_000  # long statements with inputs run to ~10k characters; past this it is a dump
FLAG_PENALTY = {"too_short": 2, "missing_figure": 2, "garbled": 2, "shouting": 1, "repetitive": 3, "too_long": 1}


def _repetitive(prompt: str) -> bool:
    """A prompt that is mostly one thing repeated ("xxxx...", a pasted line 50 times): it compresses
    to under a tenth of its size, which real statements, even long ones with data, do not."""
    import zlib

    raw = prompt[:100_000].encode("utf-8", errors="replace")
    return len(zlib.compress(raw, 6)) < 0.1 * len(raw)


def heuristic_quality(flags: list[str]) -> int:
    """5 minus the penalties of the flags, at least 1."""
    return max(1, 5 - sum(FLAG_PENALTY.get(f, 1) for f in flags))
