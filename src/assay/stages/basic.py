"""Small general-purpose stages: deterministic sampling, unique ids, field filters."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pydantic import Field

from assay.expr import compile_expr
from assay.record import Record, Verdict
from assay.stage import GlobalStage, RecordCheck, stage


def unit_hash(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by (seed, key): sampling that does not depend on order or workers."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@stage("sample")
class Sample(RecordCheck):
    """Keeps a deterministic fraction of records, chosen by a hash of the seed and the record id."""

    fraction: float = Field(1.0, ge=0.0, le=1.0, description="share of records to keep")

    def check_batch(self, records: list[Record]) -> list[Verdict]:
        seed = self.ctx.seed
        return [self._verdict(unit_hash(seed, r["id"])) for r in records]

    def check(self, record: Record) -> Verdict:
        return self._verdict(unit_hash(self.ctx.seed, record["id"]))

    def _verdict(self, u: float) -> Verdict:
        return Verdict(u < self.fraction, round(u, 6), f"hash {u:.3f} vs fraction {self.fraction}",
                       code="not sampled" if u >= self.fraction else None)


@stage("filter")
class Filter(RecordCheck):
    """Keeps records for which an expression is true, e.g. `labels.quality >= 3 and domain == "math"`."""

    expr: str = Field(description="expression over the record (see README: expressions)")

    def check(self, record: Record) -> Verdict:
        ok = bool(compile_expr(self.expr)(record))
        return Verdict(ok, 1.0 if ok else 0.0, "" if ok else f"not ({self.expr})", code=None if ok else "filtered")


@stage("unique-ids")
class UniqueIds(GlobalStage):
    """Drops records whose `id` was already seen (the first occurrence stays): ids key caches,
    seeds and dedup survivors, so they must be unique."""

    def index(self, records: Iterable[Record]) -> dict[str, tuple[int, int]]:
        first: dict[str, tuple[int, int]] = {}
        dupes: dict[str, tuple[int, int]] = {}
        for rec in records:
            rid = rec["id"]
            if rid in first:
                dupes.setdefault(rid, first[rid])
            else:
                first[rid] = self.position
        return dupes  # only duplicated ids, with where their first occurrence sits

    def decide(self, record: Record, state: dict[str, tuple[int, int]]) -> Verdict | None:
        where = state.get(record["id"])
        if where is None or where == self.position:
            return Verdict(True, 0.0, "unique" if where is None else "first of a duplicated id")
        return Verdict(False, 1.0, f"duplicate id {record['id']!r} (first at shard {where[0]})", code="duplicate id")
