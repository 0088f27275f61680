"""Repetition: n-gram loops, Gopher-style repeated-text shares, and a compression-ratio signal.

Words are whitespace tokens; each becomes a 64-bit hash (computed on the UTF-8 bytes with numpy,
no Python string per word) and each window of n words a polynomial hash of those (wrapping uint64
arithmetic), so counting n-grams is one sort of integers instead of building millions of tuples.
Character shares are measured in bytes. Everything is linear apart from the O(m log m) sorts.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from assay.record import Verdict
from assay.rules.base import Rule, rule
from assay.rules.trace import Trace

_MULT = 0x9E3779B97F4A7C15  # odd 64-bit multiplier (golden ratio): mixes window positions
_BYTE_MULT = 0x100000001B3  # odd: the FNV prime, for hashing the bytes of a word
_SPACE: Any = None
_POWERS: list[Any] = []  # cached (R^i, R^-i) for i < len, grown on demand


@dataclass(slots=True)
class Words:
    """The whitespace-separated words of a text as numpy arrays: a 64-bit hash and the byte
    length of each, and where each starts and ends (to quote an n-gram back)."""

    raw: bytes
    hashes: Any
    lens: Any
    starts: Any
    ends: Any

    def __len__(self) -> int:
        return len(self.hashes)

    def quote(self, first: int, n: int, limit: int = 120) -> str:
        last = min(first + n, len(self.hashes)) - 1
        if first < 0 or last < first:
            return ""
        return self.raw[self.starts[first]:self.ends[last]].decode("utf-8", "replace")[:limit]


def _powers(n: int) -> tuple[Any, Any]:
    import numpy as np

    if not _POWERS or len(_POWERS[0]) < n:
        size = max(n, 1 << 16, 2 * len(_POWERS[0]) if _POWERS else 0)
        inverse = pow(_BYTE_MULT, -1, 1 << 64)
        up = np.full(size, _BYTE_MULT, dtype=np.uint64)
        down = np.full(size, inverse, dtype=np.uint64)
        up[0] = down[0] = 1
        _POWERS[:] = [np.cumprod(up), np.cumprod(down)]  # integer overflow wraps: arithmetic mod 2^64
    return _POWERS[0], _POWERS[1]


def split_words(text: str) -> Words:
    """Words of `text` (split on ASCII whitespace), hashed from their UTF-8 bytes with numpy:
    a word's hash is sum(byte_k * R^k) mod 2^64, read off one prefix sum over the whole text."""
    import numpy as np

    global _SPACE
    if _SPACE is None:
        _SPACE = np.zeros(256, dtype=bool)
        _SPACE[list(b" \t\n\r\x0b\x0c")] = True
    raw = text.encode("utf-8", "surrogatepass")
    b = np.frombuffer(raw, dtype=np.uint8)
    empty = np.empty(0, dtype=np.int64)
    if not len(b):
        return Words(raw, empty.view(np.uint64), empty, empty, empty)
    word = ~np.take(_SPACE, b)
    change = np.flatnonzero(word[1:] != word[:-1]) + 1
    bounds = np.concatenate(([0], change, [len(b)]))
    first = 0 if word[0] else 1
    starts, ends = bounds[:-1][first::2], bounds[1:][first::2]
    up, down = _powers(len(b) + 1)
    prefix = np.empty(len(b) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(b.astype(np.uint64) * up[:len(b)], out=prefix[1:])
    hashes = (prefix[ends] - prefix[starts]) * down[starts]
    return Words(raw, hashes, ends - starts, starts, ends)


def window_hashes(ids: Any, n: int) -> Any:
    """Hash of each window of `n` consecutive ids (len(ids) - n + 1 values; empty if too short)."""
    import numpy as np

    w = len(ids) - n + 1
    if w <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = ids[:w].copy()
    mult = np.uint64(_MULT)
    for j in range(1, n):
        np.multiply(acc, mult, out=acc)
        np.add(acc, ids[j:j + w], out=acc)
    return acc


def top_run(hashes: Any) -> tuple[int, int]:
    """(count, position of one occurrence) of the most frequent value; (0, -1) when empty."""
    import numpy as np

    if len(hashes) == 0:
        return 0, -1
    s = np.sort(hashes)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    lengths = np.diff(np.append(starts, len(s)))
    best = int(np.argmax(lengths))
    return int(lengths[best]), int(np.argmax(hashes == s[starts[best]]))


def duplicate_char_fraction(hashes: Any, n: int, lens: Any) -> float:
    """Share of word characters covered by a repeated occurrence of an n-gram (Gopher's
    `duplicate n-gram character fraction`: the first occurrence of each n-gram does not count)."""
    import numpy as np

    m = len(lens)
    total = int(lens.sum())
    if len(hashes) < 2 or not total:
        return 0.0
    order = np.argsort(hashes)
    s = hashes[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    lengths = np.diff(np.append(starts, len(s)))
    if lengths.max() < 2:
        return 0.0
    in_repeated = np.repeat(lengths > 1, lengths)
    repeat = np.zeros(len(hashes), dtype=np.int32)
    repeat[order[in_repeated]] = 1
    firsts = np.minimum.reduceat(order, starts)[lengths > 1]
    repeat[firsts] = 0  # the first occurrence of a repeated n-gram is not a repeat
    csum = np.concatenate(([0], np.cumsum(repeat)))
    t = np.arange(m)
    hi = np.minimum(t, len(hashes) - 1) + 1
    lo = np.maximum(t - n + 1, 0)
    covered = (csum[hi] - csum[lo]) > 0
    return float(lens[covered].sum()) / total


def compression_ratio(text: str | bytes, level: int = 1) -> float:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return len(zlib.compress(raw, level)) / len(raw) if raw else 1.0


@rule("ngram")
class NgramRepetition(Rule):
    """Fails degenerate repetition: an n-gram repeated too often (the AM team's n=20, K=20), too
    much text in the most frequent short n-grams or in repeated long n-grams (Gopher), or text
    that compresses too well (zlib; loops compress to almost nothing)."""

    n: int = Field(20, ge=1, description="n-gram length in words for the repeat count")
    max_repeats: int = Field(20, ge=1, description="fail when one n-gram occurs more than this many times")
    top_ngram_max_fraction: dict[int, float] = Field(
        default_factory=lambda: {2: 0.3, 3: 0.28, 4: 0.25},
        description="n -> the largest share of characters the most frequent n-gram may cover (Gopher's "
                    "idea; its web-text limits 0.2/0.18/0.16 reject case-by-case enumerations in reasoning, "
                    "while finished Sky-T1 traces stay under 0.1 and loops are caught by the other signals)")
    duplicate_ngram_max_fraction: dict[int, float] = Field(
        default_factory=lambda: {10: 0.6},
        description="n -> the largest share of characters inside repeated n-grams (Gopher uses 5..10 "
                    "with 0.15..0.10 for web text; reasoning restates itself far more)")
    min_compression_ratio: float = Field(0.15, ge=0, le=1, description="fail when zlib compresses the response "
                                         "below this ratio (compressed / raw bytes)")
    compression_min_chars: int = Field(2000, ge=0, description="check the compression ratio only on responses "
                                       "at least this long (short texts compress poorly anyway)")
    compression_level: int = Field(1, ge=1, le=9, description="zlib level (the ratio depends on it; 1 is fastest)")
    min_words: int = Field(50, ge=0, description="responses with fewer words skip the share checks "
                           "(a short answer's few words make the shares meaningless)")

    def evaluate(self, trace: Trace) -> Verdict:
        words: Words = trace.cached("word_hashes", lambda: split_words(trace.full_text))
        ids = words.hashes
        details: dict[str, Any] = {"words": len(words)}
        fails: list[tuple[str, str]] = []

        hashes = window_hashes(ids, self.n)
        count, pos = top_run(hashes)
        details["top_repeats"] = count
        if count > 1:
            details["top_ngram"] = words.quote(pos, self.n)
        if count > self.max_repeats:
            fails.append(("ngram_loop", f"a {self.n}-gram occurs {count}x (max {self.max_repeats}): "
                                        f"'{details['top_ngram'][:60]}'"))

        if len(words) >= self.min_words and (self.top_ngram_max_fraction or self.duplicate_ngram_max_fraction):
            lens = words.lens
            total = int(lens.sum()) or 1
            for n, limit in sorted(self.top_ngram_max_fraction.items()):
                c, p = top_run(window_hashes(ids, n))
                frac = min(1.0, c * int(lens[p:p + n].sum()) / total) if c > 1 else 0.0
                details[f"top_{n}gram_fraction"] = round(frac, 4)
                if frac > limit:
                    fails.append(("top_ngram", f"the most frequent {n}-gram '{words.quote(p, n, 40)}' "
                                               f"covers {frac:.0%} of the text (max {limit:.0%})"))
            for n, limit in sorted(self.duplicate_ngram_max_fraction.items()):
                frac = duplicate_char_fraction(window_hashes(ids, n), n, lens)
                details[f"duplicate_{n}gram_fraction"] = round(frac, 4)
                if frac > limit:
                    fails.append(("duplicate_ngrams", f"{frac:.0%} of the text is inside repeated {n}-grams "
                                                      f"(max {limit:.0%})"))

        if len(words.raw) >= self.compression_min_chars:
            ratio = compression_ratio(words.raw, self.compression_level)
            details["compression_ratio"] = round(ratio, 4)
            if ratio < self.min_compression_ratio:
                fails.append(("low_compression", f"compresses to {ratio:.1%} of its size "
                                                 f"(min {self.min_compression_ratio:.0%}): a loop"))
        if fails:
            return Verdict(False, float(count), "; ".join(r for _, r in fails), fails[0][0], details)
        return Verdict(True, float(count), f"top {self.n}-gram occurs {count}x", None, details)
