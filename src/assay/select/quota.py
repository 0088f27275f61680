"""Quotas: keep at most N (or a fraction) of the records of each group, deterministically.

A quota groups records by an expression (`labels.category`, `source`), optionally cut into
buckets (`labels.difficulty` with edges [0.3, 0.7] -> easy / medium / hard), and keeps the
best-ranked records of each group. The rank is fixed by (seed, record id), or by a preference
expression first (hardest first), so the same seed selects the same records whatever the
sharding or worker count, and another seed selects others.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assay.expr import compile_expr
from assay.record import Record


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: int | None = Field(None, ge=0, description="keep at most this many records of the group")
    fraction: float | None = Field(None, ge=0.0, le=1.0, description="keep at most this share of the group "
                                   "(rounded down)")

    def keep(self, n: int) -> int:
        k = n
        if self.fraction is not None:
            k = min(k, math.floor(n * self.fraction + 1e-9))
        if self.max is not None:
            k = min(k, self.max)
        return k

    def describe(self) -> str:
        parts = ([f"max {self.max}"] if self.max is not None else []) + (
            [f"fraction {self.fraction:g}"] if self.fraction is not None else [])
        return ", ".join(parts) or "no limit"


def group_key(value: Any) -> str:
    """How a group value is named in configs and reasons: `null`, `true`, `3`, `algebra`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


class Quota(BaseModel):
    """One quota: `by` names the group of a record; limits say how many of each group stay."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(description="expression whose value names the group, e.g. labels.category, source")
    edges: list[float] | None = Field(None, description="cut a numeric `by` into buckets at these values, "
                                      "e.g. [0.3, 0.7]: below 0.3, 0.3 up to 0.7, 0.7 and above")
    names: list[str] | None = Field(None, description="bucket names (one more than edges), e.g. easy, medium, hard; "
                                    "default '<0.3', '0.3-0.7', '>=0.7'")
    max: int | None = Field(None, ge=0, description="keep at most this many records of every group")
    fraction: float | None = Field(None, ge=0.0, le=1.0, description="keep at most this share of every group "
                                   "(rounded down)")
    groups: dict[str, Limit] = Field(default_factory=dict, description="limits for named groups, overriding max / "
                                     "fraction: {easy: {fraction: 0.2}, geometry: {max: 500}}; a bare number is "
                                     "max (integer) or fraction (0.0-1.0 with a decimal point)")

    @field_validator("groups", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for k, v in value.items():
            if isinstance(v, bool):
                raise ValueError(f"group {group_key(k)!r}: expected a number or {{max: N}} / {{fraction: F}}")
            if isinstance(v, int):
                v = {"max": v}
            elif isinstance(v, float):
                v = {"fraction": v}
            out[group_key(k)] = v
        return out

    @field_validator("by")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compile_expr(value)
        except Exception as exc:  # ConfigError: re-raised as a parameter error with its location
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Quota:
        if self.max is None and self.fraction is None and not self.groups:
            raise ValueError(f"quota by {self.by!r} needs max, fraction or groups")
        if self.edges is not None:
            if sorted(self.edges) != self.edges or len(set(self.edges)) != len(self.edges):
                raise ValueError(f"quota by {self.by!r}: edges must increase, got {self.edges}")
            if self.names is not None and len(self.names) != len(self.edges) + 1:
                raise ValueError(f"quota by {self.by!r}: {len(self.edges)} edges make {len(self.edges) + 1} "
                                 f"buckets, got {len(self.names)} names")
        elif self.names is not None:
            raise ValueError(f"quota by {self.by!r}: names need edges")
        return self

    def bucket_names(self) -> list[str]:
        if self.names is not None:
            return self.names
        e = [f"{x:g}" for x in self.edges or ()]
        if not e:
            return []
        return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in itertools.pairwise(e)] + [f">={e[-1]}"]

    def key(self, record: Record) -> str:
        value = compile_expr(self.by)(record)
        if self.edges is None:
            return group_key(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return "null"
        return self.bucket_names()[bisect.bisect_right(self.edges, value)]

    def limit(self, group: str) -> Limit:
        return self.groups.get(group) or Limit(max=self.max, fraction=self.fraction)


def unit_rank(seed: int, key: str) -> int:
    """A 64-bit number fixed by (seed, key): the order in which a quota keeps records."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest(), "big")


Candidate = tuple[tuple[Any, ...], Any, list[str]]  # (rank, position, group key per quota)


KEEP_ALL = None  # a group that keeps every candidate (groups not named in a quota's bounds)
DROP_ALL = False  # a group that keeps none (k = 0)
Bounds = list[dict[str, Any]]  # per quota: group -> DROP_ALL, or the last kept (rank, position)
Reasons = list[dict[str, tuple[str, str]]]  # per quota: group -> (code, reason) of what it drops


def survives(cand: Candidate, bounds: Bounds) -> int | None:
    """None when a candidate passes every quota, else the index of the first that drops it: in
    each group the candidates with the smallest (rank, position) are kept, up to the bound."""
    rank, pos, groups = cand
    for q, per_group in enumerate(bounds):
        bound = per_group.get(groups[q], KEEP_ALL)
        if bound is KEEP_ALL:
            continue
        if bound is DROP_ALL or (rank, pos) > bound:
            return q
    return None


def drop_reason(quota: Quota, group: str, kept: int, of: int) -> tuple[str, str]:
    return (f"quota {quota.by}", f"quota by {quota.by}: group {group!r} keeps {kept} of {of} "
                                 f"({quota.limit(group).describe()})")


def apply_quotas(quotas: list[Quota], candidates: list[Candidate]) -> tuple[dict[Any, tuple[str, str]],
                                                                             list[dict[str, dict[str, int]]]]:
    """Apply quotas in order, each to the survivors of the previous ones.

    Returns (dropped position -> (code, reason), per quota {group: {"in": n, "kept": k}})."""
    bounds, reasons, summary = quota_bounds(quotas, candidates)
    dropped: dict[Any, tuple[str, str]] = {}
    for cand in candidates:
        q = survives(cand, bounds)
        if q is not None:
            dropped[cand[1]] = reasons[q][cand[2][q]]
    return dropped, summary


def quota_bounds(quotas: list[Quota], candidates: list[Candidate]) -> tuple[Bounds, Reasons,
                                                                            list[dict[str, dict[str, int]]]]:
    """What the quotas keep, as bounds per group (O(groups), whatever the number of records):
    (bounds, reasons, per quota {group: {"in": n, "kept": k}})."""
    bounds: Bounds = []
    reasons: Reasons = []
    summary: list[dict[str, dict[str, int]]] = []
    alive = sorted(candidates, key=lambda c: (c[0], c[1]))
    for qi, quota in enumerate(quotas):
        groups: dict[str, list[Candidate]] = defaultdict(list)
        for cand in alive:
            groups[cand[2][qi]].append(cand)  # stays in (rank, position) order
        counts: dict[str, dict[str, int]] = {}
        per_group: dict[str, Any] = {}
        why: dict[str, tuple[str, str]] = {}
        for name, members in groups.items():
            k = quota.limit(name).keep(len(members))
            counts[name] = {"in": len(members), "kept": k}
            if k < len(members):
                per_group[name] = DROP_ALL if k == 0 else (members[k - 1][0], members[k - 1][1])
                why[name] = drop_reason(quota, name, k, len(members))
        bounds.append(per_group)
        reasons.append(why)
        summary.append(dict(sorted(counts.items())))
        alive = [c for c in alive if survives(c, bounds) is None]
    return bounds, reasons, summary
