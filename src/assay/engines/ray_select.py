"""`select` quotas across a Ray cluster: two passes, count then sample, per quota.

The local merge gathers every candidate (rank, position, groups) in the driver and sorts them.
Here each shard's partial goes to the object store once and, for each quota in order:

1. count: every shard counts its surviving candidates per group; the driver adds the counts and
   derives how many each group keeps (`limit.keep(n)`);
2. sample: for the groups that must shrink, every shard sends its k best (rank, position) per
   group; the driver keeps the k best overall, and the k-th is the group's bound;

a candidate survives a quota when its (rank, position) is within its group's bound. The driver
holds counts, bounds and at most k keys per group and shard, never the whole candidate list; the
state (bounds, reasons and the groups' counts) is exactly the local one.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from typing import Any

from assay.select.quota import DROP_ALL, Bounds, Reasons, drop_reason, survives


def count_groups(partial: Any, q: int, bounds: Bounds) -> Counter[str]:
    return Counter(c[2][q] for c in partial.candidates if survives(c, bounds) is None)


def best_of_groups(partial: Any, q: int, bounds: Bounds, keep: dict[str, int]) -> dict[str, list[Any]]:
    by_group: dict[str, list[Any]] = {}
    for c in partial.candidates:
        g = c[2][q]
        if g in keep and survives(c, bounds) is None:
            by_group.setdefault(g, []).append((c[0], c[1]))
    return {g: heapq.nsmallest(keep[g], keys) for g, keys in by_group.items()}


def distributed_select_merge(stage: Any, partials: Iterable[Any]) -> Any:
    """Select's merge with quotas as count-then-sample passes on the cluster; same state."""
    import ray

    from assay.select.select import SelectState

    refs = [ray.put(part) for part in partials]  # one partial in the driver at a time
    count = ray.remote(count_groups).options(max_retries=3)
    best = ray.remote(best_of_groups).options(max_retries=3)
    state = SelectState(bounds=[])
    bounds: Bounds = state.bounds  # type: ignore[assignment]
    reasons: Reasons = state.reasons
    for q, quota in enumerate(stage.quotas):
        counts: Counter[str] = Counter()
        for c in ray.get([count.remote(ref, q, bounds) for ref in refs]):
            counts.update(c)
        keep = {g: quota.limit(g).keep(n) for g, n in counts.items()}
        shrink = {g: k for g, k in keep.items() if 0 < k < counts[g]}
        kth: dict[str, Any] = {}
        if shrink:
            merged: dict[str, list[Any]] = {}
            for found in ray.get([best.remote(ref, q, bounds, shrink) for ref in refs]):
                for g, keys in found.items():
                    merged.setdefault(g, []).extend(keys)
            kth = {g: heapq.nsmallest(shrink[g], keys)[-1] for g, keys in merged.items()}
        bounds.append({g: DROP_ALL if k == 0 else kth[g] for g, k in keep.items() if k < counts[g]})
        reasons.append({g: drop_reason(quota, g, k, counts[g]) for g, k in keep.items() if k < counts[g]})
        state.quota_groups.append(dict(sorted({g: {"in": n, "kept": keep[g]} for g, n in counts.items()}.items())))
    return state
