"""Counters of an LLM stage, in a shape that adds up across shards.

The runner sums numbers and merges dicts of each shard's `stats()` into stats.json, so latencies
are kept as a histogram (bucket -> count) from which `percentiles` reads p50/p90/p99.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Upper bounds of the latency buckets, in seconds (the last bucket is open).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000)


def bucket_label(seconds: float) -> str:
    i = bisect.bisect_left(BUCKETS, seconds)
    return f"le_{BUCKETS[i]:g}" if i < len(BUCKETS) else "gt_1000"


def _bound(label: str) -> float:
    return float("inf") if label.startswith("gt_") else float(label[3:])


def percentiles(hist: dict[str, int], qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, float | None]:
    """Upper bucket bounds of the given quantiles of a latency histogram."""
    items = sorted(((_bound(k), n) for k, n in hist.items() if n), key=lambda kv: kv[0])
    total = sum(n for _, n in items)
    out: dict[str, float | None] = {}
    for q in qs:
        name = f"p{round(q * 100):d}"
        if not total:
            out[name] = None
            continue
        seen = 0
        for bound, n in items:
            seen += n
            if seen >= q * total:
                out[name] = bound
                break
    return out


@dataclass
class ClientStats:
    requests: int = 0  # logical requests asked of the client
    sent: int = 0  # HTTP attempts, retries included
    answered: int = 0  # answered by the server (now in the cache)
    cached: int = 0  # answered from the cache, not sent
    failed: int = 0  # gave up: recorded in the record, retried on the next run
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s_sum: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    latency: Counter[str] = field(default_factory=Counter)

    def observe_latency(self, seconds: float) -> None:
        self.latency_s_sum += seconds
        self.latency[bucket_label(seconds)] += 1

    def take(self) -> dict[str, Any]:
        """The counters since the last call, then reset (the runner stores one per shard)."""
        out = {
            "requests": self.requests, "sent": self.sent, "answered": self.answered, "cached": self.cached,
            "failed": self.failed, "retries": self.retries, "tokens_in": self.prompt_tokens,
            "tokens_out": self.completion_tokens, "cost_usd": round(self.cost_usd, 6),
            "latency_s_sum": round(self.latency_s_sum, 4), "errors": dict(self.errors),
            "latency_s": dict(self.latency),
        }
        self.__init__()  # type: ignore[misc]
        return out
