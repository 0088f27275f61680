"""What the three dedup stages share: spill records to disk, find similar pairs, join them into
clusters (union-find), keep one survivor per cluster, and decide per record.

A subclass writes its features for a batch (`spill_batch`), finds candidate pairs over all parts
(`find_pairs`) and scores a member against its survivor (`similarity`). The state that reaches
the workers holds only the records that belong to a cluster.

Survivor policy, in order: has a reference answer or tests, most responses, longest reference
solution (or longest response), first seen.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import PrivateAttr

from assay.dedup.spill import Parts, Spill
from assay.record import Record, Verdict, has_reference, prompt_text, reference
from assay.stage import GlobalStage

_SEP = "\x1f"


def _content_digest(rec: Record) -> bytes:
    ref = reference(rec)
    parts = (prompt_text(rec), str(ref.get("answer")), str(rec.get("source")), str(len(rec.get("responses") or ())))
    return hashlib.blake2b(_SEP.join(parts).encode("utf-8"), digest_size=8).digest()


def content_hash(rec: Record) -> str:
    """A short fingerprint of what makes a record itself, to tell apart records sharing an id."""
    return _content_digest(rec).hex()


def _hash64(texts: Iterable[str]) -> np.ndarray:
    return np.fromiter((int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
                        for t in texts), dtype=np.uint64)


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
    """What `decide` needs: the removed records and the survivors, by record key."""

    metric: str
    removed: dict[str, tuple[str, float, int, str, float]] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    dup_ids: frozenset[str] = frozenset()  # ids carried by more than one record
    copies: frozenset[str] = frozenset()  # keys of records identical in id and content

    def key(self, rec: Record) -> str:
        rid = str(rec.get("id"))
        return f"{rid}{_SEP}{content_hash(rec)}" if rid in self.dup_ids else rid


class ClusterDedup(GlobalStage):
    """Base of the dedup stages (not registered itself)."""

    metric: ClassVar[str] = "similarity"
    what: ClassVar[str] = "near-duplicate"
    index_batch: ClassVar[int] = 4096

    _copies_seen: set[str] = PrivateAttr(default_factory=set)
    _counts: dict[str, int] = PrivateAttr(default_factory=dict)

    def text_of(self, rec: Record) -> str:
        return prompt_text(rec)

    # ---- hooks for subclasses -------------------------------------------------------------
    def spill_batch(self, spill: Spill, batch: list[Record], texts: list[str]) -> None:
        raise NotImplementedError

    def find_pairs(self, parts: Parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Similar pairs as (positions a, positions b, similarity)."""
        raise NotImplementedError

    def similarity(self, parts: Parts, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ---- indexing -------------------------------------------------------------------------
    def _index_dir(self) -> Path:
        base = self._ctx.stage_dir if self._ctx is not None and self._ctx.stage_dir else None
        root = Path(base) / "index" if base else Path(tempfile.mkdtemp(prefix="assay-dedup-"))
        return root / f"part-{uuid.uuid4().hex[:12]}"

    def index_shard(self, records: Iterable[Record]) -> str:
        from assay.expr import compile_expr

        when = compile_expr(self.when) if self.when else None
        spill = Spill(self._index_dir())
        batch: list[Record] = []
        for rec in records:
            if when is not None and not when(rec):
                continue
            batch.append(rec)
            if len(batch) >= self.index_batch:
                self._spill(spill, batch)
                batch = []
        if batch:
            self._spill(spill, batch)
        return str(spill.close().path)

    def _spill(self, spill: Spill, batch: list[Record]) -> None:
        spill.append_ids(str(r["id"]) for r in batch)
        spill.append("id_hash", _hash64(str(r["id"]) for r in batch))
        spill.append("content", np.fromiter((int.from_bytes(_content_digest(r), "little") for r in batch),
                                             dtype=np.uint64, count=len(batch)))
        spill.append("has_ref", np.fromiter((has_reference(r) for r in batch), dtype=np.uint8, count=len(batch)))
        spill.append("n_resp", np.fromiter((len(r.get("responses") or ()) for r in batch), dtype=np.uint32,
                                           count=len(batch)))
        spill.append("sol_len", np.fromiter((solution_length(r) for r in batch), dtype=np.uint32, count=len(batch)))
        self.spill_batch(spill, batch, [self.text_of(r) for r in batch])

    def merge(self, partials: list[Any]) -> DedupState:
        parts = Parts([Path(p) for p in partials])
        try:
            a, b, sim = self.find_pairs(parts)
            return self.resolve(parts, a, b, sim)
        finally:
            parts.remove()

    # ---- clusters -> state ----------------------------------------------------------------
    def resolve(self, parts: Parts, a: np.ndarray, b: np.ndarray, sim: np.ndarray) -> DedupState:
        state = DedupState(metric=self.metric)
        extra_keys = self._keys(parts, state)
        if not len(a):
            return state
        nodes, roots = components(a, b)
        has_ref = parts.column("has_ref")[nodes].astype(np.int64)
        n_resp = parts.column("n_resp")[nodes].astype(np.int64)
        sol_len = parts.column("sol_len")[nodes].astype(np.int64)
        order = np.lexsort((nodes, -sol_len, -n_resp, -has_ref, roots))
        sorted_roots = roots[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_roots[1:] != sorted_roots[:-1]
        group = np.cumsum(first) - 1
        survivor_of = nodes[order][first][group]  # survivor of each node, in `order`
        sizes = np.bincount(group)[group]
        members = nodes[order]
        is_removed = ~first
        sim_to_survivor = np.ones(len(members))
        if is_removed.any():
            sim_to_survivor[is_removed] = self.similarity(parts, members[is_removed], survivor_of[is_removed])
        best_partner, best_sim = _best_edges(members, a, b, sim)
        ids = parts.ids(members)
        keys = [extra_keys.get(p, rid) for p, rid in zip(members.tolist(), ids, strict=True)]
        id_of = dict(zip(members.tolist(), ids, strict=True))
        for k in np.flatnonzero(first).tolist():
            state.kept[keys[k]] = int(sizes[k])
        for k in np.flatnonzero(is_removed).tolist():
            key = keys[k]
            if key in state.kept:  # an identical copy of its survivor: `decide` keeps the first it sees
                continue
            surv = int(survivor_of[k])
            partner = int(best_partner[k])
            state.removed[key] = (id_of[surv], round(float(sim_to_survivor[k]), 4), int(sizes[k]),
                                  id_of.get(partner) or parts.ids([partner])[0], round(float(best_sim[k]), 4))
        return state

    def _keys(self, parts: Parts, state: DedupState) -> dict[int, str]:
        """Set the state's duplicate-id bookkeeping; return the keys of records whose id is shared
        (id + content hash), by position."""
        id_hash = parts.column("id_hash")
        _, inverse, counts = np.unique(id_hash, return_inverse=True, return_counts=True)
        shared = np.flatnonzero(counts[inverse] > 1)
        extra: dict[int, str] = {}
        if len(shared):
            ids = parts.ids(shared)
            seen: dict[str, int] = {}
            for rid in ids:
                seen[rid] = seen.get(rid, 0) + 1
            state.dup_ids = frozenset(r for r, c in seen.items() if c > 1)
            if state.dup_ids:
                hashes = self._content_hashes(parts, shared, ids, state.dup_ids)
                extra.update(hashes)
                counted: dict[str, int] = {}
                for key in hashes.values():
                    counted[key] = counted.get(key, 0) + 1
                state.copies = frozenset(k for k, c in counted.items() if c > 1)
        return extra

    def _content_hashes(self, parts: Parts, pos: np.ndarray, ids: list[str],
                        dup_ids: frozenset[str]) -> dict[int, str]:
        content = parts.column("content")[pos]
        return {int(p): f"{rid}{_SEP}{int(h).to_bytes(8, 'little').hex()}"
                for p, rid, h in zip(pos.tolist(), ids, content.tolist(), strict=True) if rid in dup_ids}

    # ---- decide ---------------------------------------------------------------------------
    def decide(self, record: Record, state: DedupState) -> Verdict:
        key = state.key(record)
        hit = state.removed.get(key)
        if hit is not None:
            survivor, sim, size, partner, partner_sim = hit
            self._count("duplicates")
            return self._removed_verdict(survivor, sim, size, partner, partner_sim)
        size = state.kept.get(key)
        if size is None:
            return Verdict(True, None, "unique")
        if key in state.copies:  # byte-identical records: the first one this process sees stays
            seen = self._seen_copies
            if key in seen:
                self._count("duplicates")
                return self._removed_verdict(str(record.get("id")), 1.0, size, str(record.get("id")), 1.0)
            seen.add(key)
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
    @property
    def _seen_copies(self) -> set[str]:
        return self._copies_seen

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
