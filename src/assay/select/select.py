"""Stage `select`: rules over labels and checks, quotas per group, and routing to branches."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, PrivateAttr, field_validator

from assay.expr import compile_expr
from assay.record import Record, Verdict, checks_of, has_reference
from assay.select.quota import Bounds, Candidate, Quota, Reasons, quota_bounds, survives, unit_rank
from assay.stage import Execution, GlobalStage, stage


def split_rules(source: str) -> list[str]:
    """`a >= 1, b == "x"` is two rules; anything else is one."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return [source]  # compile_expr reports it with its message
    if isinstance(tree.body, ast.Tuple):
        parts = [ast.get_source_segment(source.strip(), e) for e in tree.body.elts]
        return [p for p in parts if p]
    return [source]


def _compiled(source: str) -> str:
    try:
        compile_expr(source)
    except Exception as exc:  # ConfigError: re-raised as a parameter error with its location
        raise ValueError(str(exc)) from None
    return source


@dataclass
class Partial:
    """What one shard contributes to the index: the quota candidates (records that pass the rules)."""

    candidates: list[Candidate] = field(default_factory=list)


@dataclass
class SelectState:
    """What the decide pass needs: per quota and group, the last kept (rank, position), so its size
    is O(groups) whatever the number of records; rules are checked again on each record."""

    bounds: Bounds | None = None  # None: the streaming form (rules and routes only)
    reasons: Reasons = field(default_factory=list)
    quota_groups: list[dict[str, dict[str, int]]] = field(default_factory=list)
    failed_rule: str | None = None  # streaming form: the record at hand failed this rule


@stage("select")
class Select(GlobalStage):
    """Keeps the records that pass every rule and fit the quotas; routes records to branches.

    Rules are expressions over the record (`labels.difficulty >= 0.3 and labels.language ==
    "en"`, `checks.decontaminate.passed`); a missing label makes a comparison false, so a rule
    over a label that was never computed drops the record. Quotas then keep at most N, or a
    fraction, of each group (`labels.category`, difficulty buckets), applied one after another,
    choosing records by a hash of (seed, id) (or by `prefer` first), so a fixed seed always
    keeps the same records. Routing sets `record.route` (e.g. records without a reference
    answer or tests go to `judge-only`) for later stages' `when: route == "judge-only"`; routing
    never drops anything."""

    rules: Sequence[str] | str = Field(default_factory=list, description="expressions that must all be true "
                                       "to keep a record (a list, or one string; commas separate rules)")
    quotas: list[Quota] = Field(default_factory=list, description="per-group limits, applied in order to the "
                                "records that passed the rules: [{by: labels.category, max: 1000}, {by: "
                                "labels.difficulty, edges: [0.3], names: (easy, hard), groups: {easy: 0.2}}]")
    prefer: str | None = Field(None, description="quotas keep records with the highest value of this expression "
                               "first (e.g. labels.difficulty), then by the seeded hash; records without a value last")
    seed: int | None = Field(None, description="seed of the quota hash (default: the pipeline's seed, per stage)")
    unverifiable_route: str | None = Field(None, description="route for records without a reference answer or "
                                           "test case (e.g. judge-only)")
    routes: dict[str, str] = Field(default_factory=dict, description="route name -> expression; the first that "
                                   "matches sets `route` (after unverifiable_route)")
    default_route: str | None = Field(None, description="route for records that match no other route")

    _counts: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("rules", mode="after")
    @classmethod
    def _rules(cls, value: Sequence[str] | str) -> list[str]:
        items = [value] if isinstance(value, str) else list(value)
        out = [r for item in items for r in split_rules(item) if r.strip()]
        return [_compiled(r) for r in out]

    @field_validator("quotas", mode="before")
    @classmethod
    def _one_quota(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("prefer")
    @classmethod
    def _prefer(cls, value: str | None) -> str | None:
        return None if value is None else _compiled(value)

    @field_validator("routes")
    @classmethod
    def _routes(cls, value: dict[str, str]) -> dict[str, str]:
        for expr in value.values():
            _compiled(expr)
        return value

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        if not self.quotas:
            # Rules and routes look at one record at a time: stream through the worker processes
            # instead of waiting for the whole data set.
            execution: Execution = "pool"
            object.__setattr__(self, "execution", execution)

    def check_names(self) -> list[str]:
        return [self.key] if self.rules or self.quotas else []

    def process_batch(self, records: list[Record]) -> None:
        """The streaming form (no quotas): rules and routes only."""
        for rec in records:
            rule = self.failed_rule(rec)
            verdict = self.decide(rec, SelectState(failed_rule=rule))
            if verdict is not None:
                checks_of(rec)[self.key] = verdict.to_dict()

    # ---- index ------------------------------------------------------------------------------
    def _seed(self) -> int:
        return self.seed if self.seed is not None else self.ctx.seed

    def _rank(self, record: Record, seed: int) -> tuple[Any, ...]:
        h = unit_rank(seed, str(record.get("id")))
        if self.prefer is None:
            return (h,)
        v = compile_expr(self.prefer)(record)
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, (int, float)) or math.isnan(v):
            return (1, 0.0, h)
        return (0, -float(v), h)

    def failed_rule(self, record: Record) -> str | None:
        for rule in self.rules:
            if not compile_expr(rule)(record):
                return rule
        return None

    def index_shard(self, records: Iterable[Record]) -> Partial:
        part = Partial()
        if not self.quotas:
            return part  # rules and routes are decided record by record
        seed = self._seed()
        for rec in records:
            if self.failed_rule(rec) is None:
                part.candidates.append((self._rank(rec, seed), self.position, [q.key(rec) for q in self.quotas]))
        return part

    def merge(self, partials: list[Partial]) -> SelectState:
        candidates: list[Candidate] = []
        for part in partials:
            candidates.extend(part.candidates)
        bounds, reasons, groups = quota_bounds(self.quotas, candidates)
        return SelectState(bounds=bounds, reasons=reasons, quota_groups=groups)

    # ---- decide -----------------------------------------------------------------------------
    def route(self, record: Record) -> str | None:
        if self.unverifiable_route is not None and not has_reference(record):
            return self.unverifiable_route
        for name, expr in self.routes.items():
            if compile_expr(expr)(record):
                return name
        return self.default_route

    def decide(self, record: Record, state: SelectState) -> Verdict | None:
        branch = self.route(record)
        if branch is not None:
            record["route"] = branch
            routes = self._counts.setdefault("routes", {})
            routes[branch] = routes.get(branch, 0) + 1
        if not self.check_names():
            return None
        rule = state.failed_rule if state.bounds is None else self.failed_rule(record)
        hit: tuple[str, str] | None = ("rule", f"rule failed: {rule}") if rule else None
        if hit is None and state.bounds:  # the same candidate the index pass saw, against the bounds
            cand = (self._rank(record, self._seed()), self.position, [q.key(record) for q in self.quotas])
            q = survives(cand, state.bounds)
            hit = state.reasons[q][cand[2][q]] if q is not None else None
        if hit is None:
            self._count("kept")
            return Verdict(True, 1.0, "selected")
        code, reason = hit
        self._count("dropped_by_rule" if code == "rule" else "dropped_by_quota")
        return Verdict(False, 0.0, reason, code=code)

    def _count(self, key: str) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1

    def stats(self) -> dict[str, Any]:
        out, self._counts = self._counts, {}
        return out
