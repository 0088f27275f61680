"""What the three dedup stages share: index records shard by shard, find similar pairs, join
them into clusters (union-find), keep one survivor per cluster, and decide per record.

`index_shard` turns one shard's records into a `Partial` (per-record columns: ids, survivor
priorities and the stage's features: hashes, signatures or embeddings); the runner runs it in
worker processes and hands the partials to `merge` in shard order. `merge` streams them into
one on-disk spill (so memory holds one shard at a time), finds candidate pairs
(`find_pairs`), scores members against their survivor (`similarity`) and returns a state that
holds only the records that belong to a cluster, keyed by their position (shard, ordinal), so
records that share an id are still told apart.

Survivor policy, in order: has a reference answer or tests, most responses, longest reference
solution (or longest response), first seen.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import PrivateAttr

from assay.dedup.spill import Parts, Spill
from assay.record import Record, Verdict, checks_of, has_reference, prompt_text, reference
from assay.stage import GlobalStage

Position = tuple[int, int]
_UNIQUE = Verdict(True, None, "unique")


def _hash64(texts: Iterable[str]) -> np.ndarray:
    return np.fromiter((int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
                        for t in texts), dtype=np.uint64)


@dataclass
class Partial:
    """One shard's records as columns (what `index_shard` returns and the runner pickles)."""

    ids: list[str] = field(default_factory=list)
    columns: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, name: str, array: np.ndarray) -> None:
        self.columns.setdefault(name, []).append(array)

    def finish(self) -> Partial:
        for name, arrays in self.columns.items():
            self.columns[name] = [np.concatenate(arrays)] if len(arrays) > 1 else arrays
        return self


def solution_length(rec: Record) -> int:
    sol = reference(rec).get("solution")
    if sol:
        return len(sol)
    return max((len(r.get("text") or "") for r in rec.get("responses") or ()), default=0)


def components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the graph with edges (a[i], b[i]): union-find with hooking to the
    smallest root and pointer jumping, vectorised. Returns (nodes, root of each node); the root
    is the smallest node of its component."""
    nodes = np.unique(np.concatenate([a, b]))
    ia = np.searchsorted(nodes, a)
    ib = np.searchsorted(nodes, b)
    parent = np.arange(len(nodes))
    while True:
        ra, rb = parent[ia], parent[ib]
        if np.array_equal(ra, rb):
            break
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        np.minimum.at(parent, hi, lo)
        while True:  # path compression: every node points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return nodes, nodes[parent]


@dataclass
class DedupState:
    """What `decide` needs: the removed records and the survivors, by position (shard, ordinal)."""

    metric: str
    removed: dict[Position, tuple[str, float, int, str, float]] = field(default_factory=dict)
    kept: dict[Position, int] = field(default_factory=dict)


class ClusterDedup(GlobalStage):
    """Base of the dedup stages (not registered itself)."""

    metric: ClassVar[str] = "similarity"
    what: ClassVar[str] = "near-duplicate"
    index_batch: ClassVar[int] = 4096

    _counts: dict[str, int] = PrivateAttr(default_factory=dict)

    def text_of(self, rec: Record) -> str:
        return prompt_text(rec)

    # ---- hooks for subclasses -------------------------------------------------------------
    def features(self, batch: list[Record], texts: list[str]) -> dict[str, np.ndarray]:
        """Per-record feature columns of a batch (hashes, signatures, embeddings)."""
        raise NotImplementedError

    def find_pairs(self, parts: Parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Similar pairs as (positions a, positions b, similarity)."""
        raise NotImplementedError

    def similarity(self, parts: Parts, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ---- indexing -------------------------------------------------------------------------
    def index_shard(self, records: Iterable[Record]) -> Partial:
        """Columns of one shard's records; `self.position` is read as the runner sets it."""
        partial = Partial()
        batch: list[Record] = []
        shards: list[int] = []
        ordinals: list[int] = []
        private = self.__pydantic_private__ or {}  # `self.position`, without pydantic's per-access cost
        for rec in records:
            shard, ordinal = private.get("_position", (0, 0))
            shards.append(shard)
            ordinals.append(ordinal)
            batch.append(rec)
            if len(batch) >= self.index_batch:
                self._add_batch(partial, batch)
                batch = []
        if batch:
            self._add_batch(partial, batch)
        partial.add("shard", np.asarray(shards, dtype=np.int64))
        partial.add("ordinal", np.asarray(ordinals, dtype=np.int64))
        return partial.finish()

    def _add_batch(self, partial: Partial, batch: list[Record]) -> None:
        n = len(batch)
        partial.ids.extend(str(r["id"]) for r in batch)
        partial.add("has_ref", np.fromiter((has_reference(r) for r in batch), dtype=np.uint8, count=n))
        partial.add("n_resp", np.fromiter((len(r.get("responses") or ()) for r in batch), dtype=np.uint32, count=n))
        partial.add("sol_len", np.fromiter((solution_length(r) for r in batch), dtype=np.uint32, count=n))
        for name, array in self.features(batch, [self.text_of(r) for r in batch]).items():
            partial.add(name, array)

    def _merge_dir(self) -> Path:
        base = self._ctx.stage_dir if self._ctx is not None and self._ctx.stage_dir else None
        if base is None:
            return Path(tempfile.mkdtemp(prefix="assay-dedup-")) / "merged"
        for stale in Path(base).glob("merge-*"):  # left by a run that was killed while merging
            shutil.rmtree(stale, ignore_errors=True)
        return Path(base) / f"merge-{uuid.uuid4().hex[:8]}"

    def merge(self, partials: Iterable[Partial]) -> DedupState:
        """Stream the partials (in shard order) into one spill on disk, then cluster."""
        spill = Spill(self._merge_dir())
        try:
            for part in partials:
                spill.append_ids(part.ids)
                for name, arrays in part.columns.items():
                    for array in arrays:
                        spill.append(name, array)
            parts = Parts([spill.close().path])
            if parts.n < 2:
                return DedupState(metric=self.metric)
            a, b, sim = self.find_pairs(parts)
            return self.resolve(parts, a, b, sim)
        finally:
            spill.close()
            shutil.rmtree(spill.path, ignore_errors=True)
            if spill.path.name == "merged":  # a private temporary folder
                shutil.rmtree(spill.path.parent, ignore_errors=True)

    # ---- clusters -> state ----------------------------------------------------------------
    def resolve(self, parts: Parts, a: np.ndarray, b: np.ndarray, sim: np.ndarray) -> DedupState:
        state = DedupState(metric=self.metric)
        if not len(a):
            return state
        nodes, roots = components(a, b)
        has_ref = parts.column("has_ref")[nodes].astype(np.int64)
        n_resp = parts.column("n_resp")[nodes].astype(np.int64)
        sol_len = parts.column("sol_len")[nodes].astype(np.int64)
        shard_all, ordinal_all = parts.column("shard"), parts.column("ordinal")
        # first seen = smallest (shard, ordinal), whatever order the partials came in
        order = np.lexsort((ordinal_all[nodes], shard_all[nodes], -sol_len, -n_resp, -has_ref, roots))
        members = nodes[order]
        sorted_roots = roots[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_roots[1:] != sorted_roots[:-1]
        group = np.cumsum(first) - 1
        survivor_of = members[first][group]
        sizes = np.bincount(group)[group]
        removed = ~first
        sim_to_survivor = np.ones(len(members))
        if removed.any():
            sim_to_survivor[removed] = self.similarity(parts, members[removed], survivor_of[removed])
        partner, partner_sim = _best_edges(members, a, b, sim)
        shard, ordinal = shard_all[members], ordinal_all[members]
        named = np.unique(np.concatenate([members, partner]))
        id_of = dict(zip(named.tolist(), parts.ids(named), strict=True))
        for k in range(len(members)):
            pos = (int(shard[k]), int(ordinal[k]))
            if first[k]:
                state.kept[pos] = int(sizes[k])
            else:
                state.removed[pos] = (id_of[int(survivor_of[k])], round(float(sim_to_survivor[k]), 4), int(sizes[k]),
                                      id_of[int(partner[k])], round(float(partner_sim[k]), 4))
        return state

    # ---- decide ---------------------------------------------------------------------------
    def decide_batch(self, records: list[Record], state: DedupState, start: Position = (0, 0)) -> None:
        shard, base = start
        key = self.key
        for k, rec in enumerate(records):
            checks_of(rec)[key] = self.decide_at((shard, base + k), state).to_dict()

    def decide(self, record: Record, state: DedupState) -> Verdict:
        return self.decide_at(self.position, state)

    def decide_at(self, pos: Position, state: DedupState) -> Verdict:
        hit = state.removed.get(pos)
        if hit is not None:
            self._count("duplicates")
            return self._removed_verdict(*hit)
        size = state.kept.get(pos)
        if size is None:
            return _UNIQUE
        self._count("clusters")
        return Verdict(True, None, f"kept: best of a cluster of {size}", details={"cluster_size": size})

    def _removed_verdict(self, survivor: str, sim: float, size: int, partner: str, partner_sim: float) -> Verdict:
        measure = "" if self.metric == "exact" else f": {self.metric} {sim:.3f}"
        reason = f"{self.what} of {survivor!r}{measure} (cluster of {size})"
        details: dict[str, Any] = {"survivor": survivor, "similarity": sim, "cluster_size": size}
        if partner != survivor and self.metric != "exact":
            reason += f"; linked via {partner!r} ({self.metric} {partner_sim:.3f})"
            details.update(matched=partner, matched_similarity=partner_sim)
        return Verdict(False, sim, reason, code="duplicate", details=details)

    # ---- counters -------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        self._counts[name] = self._counts.get(name, 0) + 1

    def stats(self) -> dict[str, Any]:
        out = dict(self._counts)
        self._counts.clear()  # each shard reports its own counts; the runner adds them up
        return out


def _best_edges(members: np.ndarray, a: np.ndarray, b: np.ndarray,
                sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each member: the partner of its most similar edge, and that similarity."""
    node = np.concatenate([a, b])
    other = np.concatenate([b, a])
    s = np.concatenate([sim, sim]).astype(np.float64)
    order = np.lexsort((-s, node))
    node, other, s = node[order], other[order], s[order]
    first = np.ones(len(node), dtype=bool)
    first[1:] = node[1:] != node[:-1]
    node, other, s = node[first], other[first], s[first]
    at = np.searchsorted(node, members)
    return other[at], s[at]
