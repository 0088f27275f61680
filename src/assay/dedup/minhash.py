"""Stage `dedup-minhash`: near-duplicates by MinHash LSH (rensa signatures), streaming.

Signatures and band hashes are written to disk batch by batch; candidate pairs come from
sorting one band at a time (memory: two 8-byte numbers per record), are verified against the
estimated Jaccard similarity, and joined into clusters.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from itertools import chain
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from assay.dedup.clusters import ClusterDedup
from assay.dedup.exact import group_pairs
from assay.dedup.shingles import mix64, shingle_hashes
from assay.dedup.spill import Parts
from assay.errors import ConfigError
from assay.record import Record
from assay.stage import stage

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_VERIFY_CHUNK = 100_000


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive and false negative areas of the LSH
    S-curve around `threshold` (the same criterion as datasketch)."""
    best, best_err = (1, num_perm), float("inf")
    lo = np.linspace(0.0, threshold, 201)
    hi = np.linspace(threshold, 1.0, 201)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(1 - (1 - lo**r) ** b, lo)
            fn = np.trapezoid((1 - hi**r) ** b, hi)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


_SPLIT_AT = 1024  # texts per batch from which signatures are computed by two threads


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="assay-minhash")


def signatures(texts: list[str], shingle: str, ngram: int, num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(MinHash signatures as an (n, num_perm) uint32 matrix, whether each text had shingles).

    A large batch is split in two halves computed by two threads: the numpy shingle hashing
    releases the GIL, so one half hashes while the other converts rensa's digests to an array
    (which holds it); about 1.3x on two cores, same result."""
    if len(texts) < _SPLIT_AT or (os.cpu_count() or 1) < 2:
        return _signatures(texts, shingle, ngram, num_perm, seed)
    mid = len(texts) // 2
    halves = _pool().map(lambda part: _signatures(part, shingle, ngram, num_perm, seed), (texts[:mid], texts[mid:]))
    (s1, e1), (s2, e2) = halves
    return np.concatenate((s1, s2)), np.concatenate((e1, e2))


def _signatures(texts: list[str], shingle: str, ngram: int, num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from rensa import RMinHash

    hashes, off = shingle_hashes(texts, shingle, ngram)
    matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, off.astype(np.uint64), num_perm, seed)
    n = len(texts)
    sig = np.fromiter(chain.from_iterable(matrix.to_rows()), dtype=np.uint32, count=n * num_perm)
    return sig.reshape(n, num_perm), np.diff(off) > 0


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 per band and record: a hash of that band's `rows` signature values."""
    n = len(sig)
    view = sig[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    h = np.zeros((n, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows):
            h = h * _GOLDEN + view[:, :, j]
    return mix64(h)


@stage("dedup-minhash")
class MinHashDedup(ClusterDedup):
    """Near-duplicates by MinHash LSH: word or character n-gram shingles, `num_perm` permutations,
    bands chosen for the Jaccard `threshold` (or given), candidates verified against the estimated
    Jaccard similarity; clusters are connected components. Signatures and band buckets live on
    disk while indexing, so corpora larger than memory work. One record per cluster survives
    (reference answer or tests first, then most responses, longest solution, first seen)."""

    metric: ClassVar[str] = "jaccard"
    what: ClassVar[str] = "near-duplicate"

    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard similarity of shingle sets at "
                             "which two records are duplicates")
    shingle: Literal["word", "char"] = Field("word", description="shingles: word or character n-grams "
                                             "(of the lower-cased text without punctuation)")
    ngram: int = Field(5, ge=1, le=64, description="shingle length in words or characters")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations (signature length)")
    bands: int | None = Field(None, ge=1, description="LSH bands (default: chosen for the threshold, "
                              "favouring recall when verify is on); rows per band = num_perm // bands")
    seed: int = Field(1, description="seed of the MinHash permutations")
    verify: bool = Field(True, description="keep only candidate pairs whose estimated Jaccard similarity "
                         "reaches the threshold (false: every band collision is a duplicate)")
    verify_margin: float = Field(0.04, ge=0, lt=1, description="verification accepts an estimated similarity "
                                 "this far below the threshold: the estimate from num_perm permutations is noisy "
                                 "(std ~0.035 at 0.8 with 128), and without a margin about 3% of true pairs just "
                                 "above the threshold are lost")

    @model_validator(mode="after")
    def _check_bands(self) -> MinHashDedup:
        if self.bands is not None and self.bands > self.num_perm:
            raise ConfigError(f"dedup-minhash: bands ({self.bands}) cannot exceed num_perm ({self.num_perm})")
        return self

    @property
    def band_rows(self) -> tuple[int, int]:
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        # Verified candidates cost only a comparison, so favour recall; unverified ones are final.
        fp_weight = 0.05 if self.verify else 0.5
        return optimal_bands(round(self.threshold, 4), self.num_perm, fp_weight, 1 - fp_weight)

    def features(self, batch: list[Record], texts: list[str]) -> dict[str, np.ndarray]:
        sig, nonempty = signatures(texts, self.shingle, self.ngram, self.num_perm, self.seed)
        bands, rows = self.band_rows
        return {"sig": sig, "bands": band_hashes(sig, bands, rows), "nonempty": nonempty.astype(np.uint8)}

    def find_pairs(self, parts: Parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bands, _ = self.band_rows
        nonempty = np.flatnonzero(parts.column("nonempty"))
        found: list[np.ndarray] = []
        for k in range(bands):
            col = np.concatenate([np.asarray(view[:, k]) for _, view in parts.part_views("bands")])
            a, b = group_pairs(col[nonempty])
            a, b = nonempty[a], nonempty[b]
            found.append(np.minimum(a, b) * parts.n + np.maximum(a, b))
        cand = np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)
        a, b = cand // max(parts.n, 1), cand % max(parts.n, 1)
        sim = self.similarity(parts, a, b)
        keep = self.accept(sim)
        return a[keep], b[keep], sim[keep]

    def accept(self, sim: np.ndarray) -> np.ndarray:
        """Which candidate pairs (by estimated similarity) are duplicates."""
        return sim >= self.threshold - self.verify_margin if self.verify else np.ones(len(sim), dtype=bool)

    def similarity(self, parts: Parts, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty(len(a))
        for s in range(0, len(a), _VERIFY_CHUNK):
            sa = parts.rows("sig", a[s : s + _VERIFY_CHUNK])
            sb = parts.rows("sig", b[s : s + _VERIFY_CHUNK])
            out[s : s + _VERIFY_CHUNK] = (sa == sb).mean(axis=1)
        return out
