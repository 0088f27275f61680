"""Nearest neighbours over unit vectors with FAISS (inner product = cosine).

Exact (Flat) search up to `flat_max` vectors, an approximate index above (HNSW by default, or
IVF). Always kNN plus a similarity threshold: `IndexHNSWFlat.range_search` aborts the process on
large query batches in faiss-cpu 1.15.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

_QUERY_BATCH = 8192


def build_index(vectors: np.ndarray, *, kind: str = "auto", flat_max: int = 100_000, hnsw_m: int = 32,
                ef_construction: int = 80, ef_search: int = 128, nlist: int | None = None,
                nprobe: int = 16, threads: int | None = None) -> Any:
    """A FAISS inner-product index holding `vectors` (float32, unit length)."""
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    n, dim = vectors.shape
    if kind == "auto":
        kind = "flat" if n <= flat_max else "hnsw"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        lists = nlist or max(1, min(65536, int(4 * np.sqrt(n))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(n, size=min(n, lists * 64), replace=False)] if n > lists * 64 else vectors
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.nprobe = nprobe
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    for s in range(0, n, 65536):
        index.add(np.ascontiguousarray(vectors[s : s + 65536], dtype=np.float32))
    return index


def search(index: Any, queries: np.ndarray, k: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first query position, similarities, neighbour positions) per batch of queries."""
    k = max(1, min(k, index.ntotal))
    for s in range(0, len(queries), _QUERY_BATCH):
        sims, nbrs = index.search(np.ascontiguousarray(queries[s : s + _QUERY_BATCH], dtype=np.float32), k)
        yield s, sims, nbrs


def similar_pairs(vectors: np.ndarray, threshold: float, k: int,
                  **index_args: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (a < b) of vectors with cosine >= threshold among each one's k nearest neighbours."""
    if len(vectors) < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    index = build_index(vectors, **index_args)
    found_a, found_b, found_s = [], [], []
    for start, sims, nbrs in search(index, vectors, k + 1):  # +1: a vector finds itself
        q = np.arange(start, start + len(sims))[:, None].repeat(sims.shape[1], axis=1)
        hit = (nbrs >= 0) & (nbrs != q) & (sims >= threshold)
        a, b = q[hit], nbrs[hit]
        found_a.append(np.minimum(a, b))
        found_b.append(np.maximum(a, b))
        found_s.append(sims[hit])
    a = np.concatenate(found_a).astype(np.int64)
    b = np.concatenate(found_b).astype(np.int64)
    s = np.concatenate(found_s).astype(np.float64)
    if not len(a):
        return a, b, s
    key = a * len(vectors) + b
    _, first = np.unique(key, return_index=True)
    return a[first], b[first], s[first]
