"""Global stages across a Ray cluster: dedup-minhash's merge as distributed LSH, and
dedup-semantic's as k-means partitions searched one by one (SemDeDup).

The shard pass (`index_shard`: shingles, MinHash signatures, band hashes) already runs as Ray
tasks. Here the merge spreads the band grouping over the cluster, the standard distributed LSH
layout:

1. the partials are streamed, in shard order, into one columnar spill in the driver's stage folder,
   as the local merge does: a record's global position is the same (a run directory on an object
   store: the spill is uploaded, and each node that runs a task downloads it once);
2. map: blocks of rows read their band hashes from the spill and send each (band, hash,
   position) to one of R reducers, chosen by the hash, so equal buckets meet in one place;
3. reduce: each reducer sorts its rows by (band, hash, position) and emits, for every bucket,
   the edges from its first position to the others (what the local `group_pairs` emits);
4. the driver unions the candidate edges, verifies them against the signatures (estimated
   Jaccard) and joins clusters with connected components (`resolve`, the stage's own code).

The candidate set is exactly the local one, so the kept and dropped records, survivors and
reasons are identical to the local engine's.

Semantic dedup above `semantic_min` records (smaller sets use the stage's own exact merge):
k-means centroids are trained on a sample of the embeddings; map tasks give each record its
`probes` nearest centroids; each partition (a few thousand to tens of thousands of records) is
searched exactly within itself in a Ray task, reading only its own rows of the spill, so no
node holds the whole index. Pairs that straddle partitions are found when both records share one
of their nearest centroids, so recall is high but not exact: the result is close to, not
identical to, the local engine's (measured in the tests).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# A merge spill as tasks receive it: its path, or (path, store) when the run directory is on an
# object store, where a node that lacks the folder downloads it once (`node_spill`).
SpillRef = str | Path | tuple[str, Any]


def node_spill(ref: SpillRef) -> Path:
    """The spill folder on this node."""
    if not isinstance(ref, tuple):
        return Path(ref)
    store = ref[1]
    path = store.here(ref[0])  # the driver's path, in this node's copy of the run
    if (path / "columns.json").exists():
        return path
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a+") as lock:  # one download per node
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "columns.json").exists():
            names = store.names(path)
            # columns.json last: its presence says the folder is whole
            for name in sorted(names, key=lambda n: n == "columns.json"):
                store.get(path / name)
    return path


def bucket_partition(band: np.ndarray, hashes: np.ndarray, reducers: int) -> np.ndarray:
    """The reducer of each (band, hash) bucket: equal buckets always go to the same one."""
    from assay.dedup.shingles import mix64

    with np.errstate(over="ignore"):
        return (mix64(hashes ^ (band.astype(np.uint64) * _GOLDEN)) % np.uint64(reducers)).astype(np.int64)


def map_band_block(spill: SpillRef, lo: int, hi: int, reducers: int) -> list[np.ndarray]:
    """Rows [lo, hi) of the spill as (band, hash, position) triples, split by reducer."""
    from assay.dedup.spill import Parts

    parts = Parts([node_spill(spill)])
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


def minhash_candidates(spill: SpillRef, n: int, workers: int, *, rows_per_block: int = 50_000) -> tuple[np.ndarray,
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
    maps = [mapper.remote(spill, lo, min(n, lo + step), reducers) for lo in range(0, n, step)]
    if reducers == 1:
        maps = [[m] for m in maps]
    reducer = ray.remote(reduce_band_buckets).options(max_retries=3)
    codes = ray.get([reducer.remote(n, *[m[r] for m in maps]) for r in range(reducers)])
    cand = np.unique(np.concatenate(codes)) if codes else np.empty(0, dtype=np.int64)
    return cand // n, cand % n


def distributed_minhash_merge(stage: Any, partials: Iterable[Any], workers: int) -> Any:
    """dedup-minhash's merge with the band grouping on the cluster; same state as `stage.merge`."""

    def pairs(path: SpillRef, parts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if "bands" not in {name for meta in parts.meta for name in meta["columns"]}:
            a = b = np.empty(0, dtype=np.int64)
        else:
            a, b = minhash_candidates(path, parts.n, workers)
        sim = stage.similarity(parts, a, b)
        keep = stage.accept(sim)
        return a[keep], b[keep], sim[keep]

    return _spilled_merge(stage, partials, pairs)


# ---- semantic dedup: k-means partitions -------------------------------------------------------

CLUSTER_SIZE = 20_000  # records per k-means partition (searched exactly within)
PROBES = 2  # partitions each record joins: its nearest centroids


def _emb_rows(spill: SpillRef, rows: np.ndarray) -> np.ndarray:
    from assay.dedup.spill import Parts

    return Parts([node_spill(spill)]).rows("emb", rows).astype(np.float32)


def assign_block(spill: SpillRef, lo: int, hi: int, centroids: np.ndarray, probes: int) -> np.ndarray:
    """(partition, position) of rows [lo, hi): each row joins its `probes` nearest centroids."""
    import faiss

    from assay.dedup.spill import Parts

    faiss.omp_set_num_threads(1)
    (_, emb), = Parts([node_spill(spill)]).part_views("emb")
    vecs = np.ascontiguousarray(np.asarray(emb[lo:hi], dtype=np.float32))
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    _, labels = index.search(vecs, min(probes, len(centroids)))
    pos = np.repeat(np.arange(lo, hi, dtype=np.int64), labels.shape[1])
    return np.stack([labels.reshape(-1).astype(np.int64), pos])


def search_partitions(spill: SpillRef, partitions: list[np.ndarray], threshold: float, neighbors: int,
                      index_args: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similar pairs inside each partition (exact kNN + threshold), as global positions."""
    from assay.dedup.knn import similar_pairs

    found_a, found_b, found_s = [], [], []
    for pos in partitions:
        if len(pos) < 2:
            continue
        a, b, sim = similar_pairs(_emb_rows(spill, pos), threshold, neighbors, threads=1, **index_args)
        found_a.append(pos[a])
        found_b.append(pos[b])
        found_s.append(sim)
    if not found_a:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    return np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_s)


def _balanced(groups: list[np.ndarray], bins: int) -> list[list[np.ndarray]]:
    """Partitions packed into `bins` tasks of similar total size (largest first)."""
    out: list[list[np.ndarray]] = [[] for _ in range(max(1, bins))]
    load = [0] * len(out)
    for g in sorted(groups, key=len, reverse=True):
        k = load.index(min(load))
        out[k].append(g)
        load[k] += len(g) ** 2  # the search costs about the square of a partition's size
    return [b for b in out if b]


def semantic_candidates(spill: SpillRef, n: int, stage: Any, workers: int, *, cluster_size: int = CLUSTER_SIZE,
                        probes: int = PROBES, rows_per_block: int = 50_000) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    import faiss
    import ray

    k = max(2, -(-n // cluster_size))
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, size=min(n, k * 64), replace=False))
    kmeans = faiss.Kmeans(int(_emb_rows(spill, sample[:1]).shape[1]), k, niter=20, seed=1, spherical=True)
    kmeans.train(_emb_rows(spill, sample))
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    step = max(1, min(rows_per_block, -(-n // (4 * workers))))
    assign = ray.remote(assign_block).options(max_retries=3)
    labels = np.concatenate(ray.get([assign.remote(spill, lo, min(n, lo + step), centroids, probes)
                                     for lo in range(0, n, step)]), axis=1)
    order = np.lexsort((labels[1], labels[0]))
    part, pos = labels[0][order], labels[1][order]
    cuts = np.flatnonzero(np.diff(part)) + 1
    groups = [g for g in np.split(pos, cuts) if len(g) > 1]
    index_args = {"kind": stage.faiss_index, "flat_max": stage.flat_max, "hnsw_m": stage.hnsw_m,
                  "ef_search": stage.ef_search, "nprobe": stage.nprobe}
    search = ray.remote(search_partitions).options(max_retries=3)
    results = ray.get([search.remote(spill, batch, stage.search_threshold, stage.neighbors, index_args)
                       for batch in _balanced(groups, 4 * workers)])
    a = np.concatenate([r[0] for r in results]) if results else np.empty(0, dtype=np.int64)
    b = np.concatenate([r[1] for r in results]) if results else np.empty(0, dtype=np.int64)
    sim = np.concatenate([r[2] for r in results]) if results else np.empty(0)
    if not len(a):
        return a, b, sim
    _, first = np.unique(a * n + b, return_index=True)  # a pair found in two partitions counts once
    return a[first], b[first], sim[first]


# ---- the merge of any distributed stage -----------------------------------------------------------


def _spilled_merge(stage: Any, partials: Iterable[Any], pairs: Any) -> Any:
    """As ClusterDedup.merge: one spill of the partials in shard order (global positions), then
    `pairs(spill_path, parts) -> (a, b, sim)`, then the stage's own clustering (`resolve`)."""
    from assay.dedup.spill import Parts, Spill

    spill = Spill(stage._merge_dir())
    store = getattr(stage._ctx, "store", None)
    try:
        for part in partials:
            spill.append_ids(part.ids)
            for name, arrays in part.columns.items():
                for array in arrays:
                    spill.append(name, array)
        parts = Parts([spill.close().path])
        if store is not None:  # workers on other nodes read the spill from the store
            store.put_tree(spill.path)
        a, b, sim = pairs((str(spill.path), store) if store is not None else str(spill.path), parts)
        return stage.resolve(parts, a, b, sim)
    finally:
        spill.close()
        if store is not None:
            store.rm(spill.path, recursive=True)
        shutil.rmtree(spill.path, ignore_errors=True)
        if spill.path.name == "merged":  # a private temporary folder
            shutil.rmtree(spill.path.parent, ignore_errors=True)


def distributed_semantic_merge(stage: Any, partials: Iterable[Any], workers: int, semantic_min: int) -> Any:
    def pairs(path: SpillRef, parts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if parts.n < max(2, semantic_min):
            return stage.find_pairs(parts)  # small enough for the exact search in one place
        return stage.accept(parts, *semantic_candidates(path, parts.n, stage, workers))

    return _spilled_merge(stage, partials, pairs)


def distributed_merge(stage: Any, workers: int, semantic_min: int) -> Any:
    """A function(stage, partials) -> state that merges across the cluster, or None to use the
    stage's own merge."""
    from assay.select.select import Select

    if type(stage) is Select and stage.quotas:
        from assay.engines.ray_select import distributed_select_merge

        return distributed_select_merge
    try:
        from assay.dedup.minhash import MinHashDedup
        from assay.dedup.semantic import SemanticDedup
    except ImportError:  # the dedup extra is not installed
        return None
    if type(stage) is MinHashDedup:
        return lambda st, partials: distributed_minhash_merge(st, partials, workers)
    if type(stage) is SemanticDedup:
        return lambda st, partials: distributed_semantic_merge(st, partials, workers, semantic_min)
    return None
