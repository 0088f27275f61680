"""Repetition: n-gram loops, Gopher-style repeated-text shares, and a compression-ratio signal.

Words are whitespace tokens; each becomes a 64-bit hash and each window of n words a polynomial
hash of those (numpy, wrapping uint64 arithmetic), so counting n-grams is one sort of integers
instead of building millions of tuples. Everything is linear apart from that O(m log m) sort.
"""

from __future__ import annotations

import zlib
from typing import Any

from pydantic import Field

from assay.record import Verdict
from assay.rules.base import Rule, rule
from assay.rules.trace import Trace

_MULT = 0x9E3779B97F4A7C15  # odd 64-bit multiplier (golden ratio): mixes window positions


def word_hashes(words: list[str]) -> Any:
    import numpy as np

    return np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)


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


def compression_ratio(text: str, level: int = 6) -> float:
    raw = text.encode("utf-8", "surrogatepass")
    return len(zlib.compress(raw, level)) / len(raw) if raw else 1.0


@rule("ngram")
class NgramRepetition(Rule):
    """Fails degenerate repetition: an n-gram repeated too often (the AM team's n=20, K=20), too
    much text in the most frequent short n-grams or in repeated long n-grams (Gopher), or text
    that compresses too well (zlib; loops compress to almost nothing)."""

    n: int = Field(20, ge=1, description="n-gram length in words for the repeat count")
    max_repeats: int = Field(20, ge=1, description="fail when one n-gram occurs more than this many times")
    top_ngram_max_fraction: dict[int, float] = Field(
        default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16},
        description="n -> the largest share of characters the most frequent n-gram may cover (Gopher)")
    duplicate_ngram_max_fraction: dict[int, float] = Field(
        default_factory=lambda: {10: 0.6},
        description="n -> the largest share of characters inside repeated n-grams (Gopher uses 5..10 "
                    "with 0.15..0.10 for web text; reasoning restates itself far more)")
    min_compression_ratio: float = Field(0.12, ge=0, le=1, description="fail when zlib compresses the response "
                                         "below this ratio (compressed / raw bytes)")
    compression_min_chars: int = Field(2000, ge=0, description="check the compression ratio only on responses "
                                       "at least this long (short texts compress poorly anyway)")
    compression_level: int = Field(6, ge=1, le=9, description="zlib level (the ratio depends on it)")
    min_words: int = Field(50, ge=0, description="responses with fewer words skip the share checks "
                           "(a short answer's few words make the shares meaningless)")

    def evaluate(self, trace: Trace) -> Verdict:
        import numpy as np

        words = trace.words
        ids = word_hashes(words)
        details: dict[str, Any] = {"words": len(words)}
        fails: list[tuple[str, str]] = []

        hashes = window_hashes(ids, self.n)
        count, pos = top_run(hashes)
        details["top_repeats"] = count
        if count > 1:
            details["top_ngram"] = " ".join(words[pos:pos + self.n])[:120]
        if count > self.max_repeats:
            fails.append(("ngram_loop", f"a {self.n}-gram occurs {count}x (max {self.max_repeats}): "
                                        f"'{details['top_ngram'][:60]}'"))

        if len(words) >= self.min_words and (self.top_ngram_max_fraction or self.duplicate_ngram_max_fraction):
            lens = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
            total = int(lens.sum()) or 1
            for n, limit in sorted(self.top_ngram_max_fraction.items()):
                c, p = top_run(window_hashes(ids, n))
                frac = min(1.0, c * int(lens[p:p + n].sum()) / total) if c > 1 else 0.0
                details[f"top_{n}gram_fraction"] = round(frac, 4)
                if frac > limit:
                    fails.append(("top_ngram", f"the most frequent {n}-gram '{' '.join(words[p:p + n])[:40]}' "
                                               f"covers {frac:.0%} of the text (max {limit:.0%})"))
            for n, limit in sorted(self.duplicate_ngram_max_fraction.items()):
                frac = duplicate_char_fraction(window_hashes(ids, n), n, lens)
                details[f"duplicate_{n}gram_fraction"] = round(frac, 4)
                if frac > limit:
                    fails.append(("duplicate_ngrams", f"{frac:.0%} of the text is inside repeated {n}-grams "
                                                      f"(max {limit:.0%})"))

        text = trace.full_text
        if len(text) >= self.compression_min_chars:
            ratio = compression_ratio(text, self.compression_level)
            details["compression_ratio"] = round(ratio, 4)
            if ratio < self.min_compression_ratio:
                fails.append(("low_compression", f"compresses to {ratio:.1%} of its size "
                                                 f"(min {self.min_compression_ratio:.0%}): a loop"))
        if fails:
            return Verdict(False, float(count), "; ".join(r for _, r in fails), fails[0][0], details)
        return Verdict(True, float(count), f"top {self.n}-gram occurs {count}x", None, details)
