"""Streaming distributions with bounded memory: counts of categories, numeric summaries.

A run can hold millions of records, so nothing here keeps every value: categories are counted
up to a cap of distinct keys (the rest fold into OTHER), numbers keep exact count/min/max/mean
and a uniform reservoir sample for histograms and quantiles (exact while the data fit in it).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

OTHER = "(other)"


@dataclass
class Counts:
    """A Counter that stops growing at `limit` distinct keys."""

    limit: int = 2000
    counts: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def add(self, key: str, n: int = 1) -> None:
        self.total += n
        c = self.counts
        if key in c or len(c) < self.limit:
            c[key] += n
        else:
            c[OTHER] += n

    @property
    def capped(self) -> bool:
        return OTHER in self.counts

    def top(self, n: int) -> list[tuple[str, int]]:
        """The n most common keys (ties by name), the rest summed into OTHER."""
        items = sorted(((k, v) for k, v in self.counts.items() if k != OTHER), key=lambda kv: (-kv[1], kv[0]))
        head, rest = items[:n], sum(v for _, v in items[n:]) + self.counts.get(OTHER, 0)
        return head + ([(OTHER, rest)] if rest else [])

    def __len__(self) -> int:
        return len(self.counts)


@dataclass
class Numeric:
    """Exact count/sum/min/max plus a seeded reservoir of at most `keep` values."""

    keep: int = 20000
    count: int = 0
    total: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    sample: list[float] = field(default_factory=list)
    _rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def add(self, value: float) -> None:
        if not math.isfinite(value):
            return
        self.count += 1
        self.total += value
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        if len(self.sample) < self.keep:
            self.sample.append(value)
        else:
            j = self._rng.randrange(self.count)
            if j < self.keep:
                self.sample[j] = value

    @property
    def sampled(self) -> bool:
        return self.count > len(self.sample)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        if not self.sample:
            return None
        s = sorted(self.sample)
        return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]

    def counts(self, edges: list[float]) -> list[int]:
        """Values per bin [edges[i], edges[i+1]) (the last bin also takes everything above);
        scaled to the full count when the values are a sample."""
        bins = len(edges) - 1
        out = [0] * bins
        if bins <= 0:
            return out
        import bisect

        for v in self.sample:
            i = bisect.bisect_right(edges, v) - 1
            out[min(max(i, 0), bins - 1)] += 1
        if self.sampled and self.sample:
            scale = self.count / len(self.sample)
            out = [round(c * scale) for c in out]
        return out


def _nice_step(span: float, bins: int) -> float:
    raw = span / max(1, bins)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def bin_edges(dists: list[Numeric], bins: int = 24) -> tuple[list[float], bool]:
    """Shared bin edges for several distributions, and whether the last bin is open (outliers
    above the 99.5th percentile are folded into it so a few long texts do not flatten the rest).
    Integer data with a small range gets one bin per value."""
    live = [d for d in dists if d.count]
    if not live:
        return [], False
    lo = min(d.lo for d in live)
    hi = max(d.hi for d in live)
    values = [v for d in live for v in d.sample]
    integral = all(float(v).is_integer() for v in values)
    if integral and hi - lo <= 40:
        return [lo + i for i in range(int(hi - lo) + 2)], False
    top = hi
    open_end = False
    if len(values) >= 50:
        s = sorted(values)
        p = s[int(0.995 * (len(s) - 1))]
        if hi > p * 1.5 and p > lo:
            top, open_end = p, True
    if top == lo:
        return [lo, lo + 1], False
    step = _nice_step(top - lo, bins)
    if integral:
        step = max(1.0, math.ceil(step))
    start = math.floor(lo / step) * step
    edges = [start]
    while edges[-1] <= top and len(edges) < bins * 3:
        edges.append(edges[-1] + step)
    if open_end:
        edges.append(max(hi, edges[-1]) + step)
    return edges, open_end
