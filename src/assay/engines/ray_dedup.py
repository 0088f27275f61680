"""Global stages across a Ray cluster: the merge step of dedup-minhash as distributed LSH.

The shard pass (`index_shard`: shingles, MinHash signatures, band hashes) already runs as Ray
tasks. Here the merge spreads the band grouping over the cluster, the standard distributed LSH
layout:

1. the partials are streamed, in shard order, into one columnar spill on the run directory
   (shared storage), as the local merge does: a record's global position is the same;
2. map: blocks of rows read their band hashes from the spill and send each (band, hash,
   position) to one of R reducers, chosen by the hash, so equal buckets meet in one place;
3. reduce: each reducer sorts its rows by (band, hash, position) and emits, for every bucket,
   the edges from its first position to the others (what the local `group_pairs` emits);
4. the driver unions the candidate edges, verifies them against the signatures (estimated
   Jaccard) and joins clusters with connected components (`resolve`, the stage's own code).

The candidate set is exactly the local one, so the kept and dropped records, survivors and
reasons are identical to the local engine's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def bucket_partition(band: np.ndarray, hashes: np.ndarray, reducers: int) -> np.ndarray:
    """The reducer of each (band, hash) bucket: equal buckets always go to the same one."""
    from assay.dedup.shingles import mix64

    with np.errstate(over="ignore"):
        return (mix64(hashes ^ (band.astype(np.uint64) * _GOLDEN)) % np.uint64(reducers)).astype(np.int64)


def map_band_block(spill: str, lo: int, hi: int, reducers: int) -> list[np.ndarray]:
    """Rows [lo, hi) of the spill as (band, hash, position) triples, split by reducer."""
    from assay.dedup.spill import Parts

    parts = Parts([Path(spill)])
    (_, bands), = parts.part_views("bands")
    (_, nonempty), = parts.part_views("nonempty")
    rows = lo + np.flatnonzero(np.asarray(nonempty[lo:hi]))
    block = np.asarray(bands[rows]) if len(rows) else np.empty((0, bands.shape[1]), dtype=np.uint64)
    nb = block.shape[1]
    band = np.tile(np.arange(nb, dtype=np.uint64), len(rows))
    hashes = block.reshape(-1)
    pos = np.repeat(rows.astype(np.uint64), nb)
    triples = np.stack([band, hashes, pos], axis=1) if len(pos) else np.empty((0, 3), dtype=np.uint64)
    target = bucket_partition(band, hashes, reducers)
    order = np.argsort(target, kind="stable")
    cuts = np.searchsorted(target[order], np.arange(reducers + 1))
    return [triples[order[cuts[r]:cuts[r + 1]]] for r in range(reducers)]


def reduce_band_buckets(n: int, *blocks: np.ndarray) -> np.ndarray:
    """Candidate edges of the buckets of one reducer, as codes min(a, b) * n + max(a, b)."""
    rows = np.concatenate([b for b in blocks if len(b)]) if any(len(b) for b in blocks) else np.empty((0, 3),
                                                                                                    np.uint64)
    if len(rows) < 2:
        return np.empty(0, dtype=np.int64)
    band, hashes, pos = rows[:, 0], rows[:, 1], rows[:, 2].astype(np.int64)
    order = np.lexsort((pos, hashes, band))
    band, hashes, pos = band[order], hashes[order], pos[order]
    same = (band[1:] == band[:-1]) & (hashes[1:] == hashes[:-1])
    if not same.any():
        return np.empty(0, dtype=np.int64)
    start = np.ones(len(pos), dtype=bool)
    start[1:] = ~same
    head = pos[np.flatnonzero(start)][np.cumsum(start) - 1]  # the first position of each bucket
    a, b = head[~start], pos[~start]
    return np.unique(np.minimum(a, b) * n + np.maximum(a, b))


def minhash_candidates(spill: Path, n: int, workers: int, *, rows_per_block: int = 50_000) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """Candidate pairs (a < b) of every band bucket, grouped across the cluster."""
    import ray

    if n < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    blocks = max(1, min(4 * workers, -(-n // rows_per_block)))
    step = -(-n // blocks)
    reducers = max(1, min(2 * workers, blocks * 2))
    mapper = ray.remote(map_band_block).options(num_returns=reducers, max_retries=3)
    maps = [mapper.remote(str(spill), lo, min(n, lo + step), reducers) for lo in range(0, n, step)]
    if reducers == 1:
        maps = [[m] for m in maps]
    reducer = ray.remote(reduce_band_buckets).options(max_retries=3)
    codes = ray.get([reducer.remote(n, *[m[r] for m in maps]) for r in range(reducers)])
    cand = np.unique(np.concatenate(codes)) if codes else np.empty(0, dtype=np.int64)
    return cand // n, cand % n


def distributed_minhash_merge(stage: Any, partials: Iterable[Any], workers: int) -> Any:
    """dedup-minhash's merge with the band grouping on the cluster; same state as `stage.merge`."""
    from assay.dedup.spill import Parts, Spill

    spill = Spill(stage._merge_dir())
    try:
        for part in partials:  # as ClusterDedup.merge: one spill, global positions in shard order
            spill.append_ids(part.ids)
            for name, arrays in part.columns.items():
                for array in arrays:
                    spill.append(name, array)
        parts = Parts([spill.close().path])
        if "bands" not in {name for meta in parts.meta for name in meta["columns"]}:
            a = b = np.empty(0, dtype=np.int64)
        else:
            a, b = minhash_candidates(spill.path, parts.n, workers)
        sim = stage.similarity(parts, a, b)
        keep = sim >= stage.threshold if stage.verify else np.ones(len(a), dtype=bool)
        return stage.resolve(parts, a[keep], b[keep], sim[keep])
    finally:
        spill.close()
        shutil.rmtree(spill.path, ignore_errors=True)
        if spill.path.name == "merged":  # a private temporary folder
            shutil.rmtree(spill.path.parent, ignore_errors=True)


def distributed_merge(stage: Any) -> Any:
    """The distributed merge for a global stage, or None to use the stage's own."""
    try:
        from assay.dedup.minhash import MinHashDedup
    except ImportError:  # the dedup extra is not installed
        return None
    if type(stage) is MinHashDedup:
        return distributed_minhash_merge
    return None
