"""What the checks of a run say, discovered from the data: verdict codes, scores, details.

Nothing here knows a stage: any check `{passed, score, reason, code, ...}` is counted by its
code (or passed / failed), every numeric field (also one level down, e.g. a reward stage's
`scores.helpfulness`) gets a distribution, and low-cardinality string details (a safety
category, a decontamination benchmark) are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assay.report.dist import Counts, Numeric

MAX_CHECKS = 64
MAX_FIELDS = 24
# Fields that name one item (an id, an answer, a text) say nothing as a distribution.
SKIP_STRINGS = frozenset({"reason", "code", "survivor", "matched", "answer", "gold", "pred", "gold_parsed",
                          "pred_parsed", "rationale", "judge", "error", "match", "text", "excerpt"})
BENCHMARK_KEYS = ("benchmark", "benchmarks")


@dataclass
class ScoreDist:
    """A numeric field of a check, split by the check's verdict."""

    passed: Numeric = field(default_factory=Numeric)
    failed: Numeric = field(default_factory=Numeric)

    def add(self, value: float, ok: bool) -> None:
        (self.passed if ok else self.failed).add(value)

    @property
    def count(self) -> int:
        return self.passed.count + self.failed.count


@dataclass
class CheckSummary:
    name: str
    level: str  # "record" or "response"
    passed: int = 0
    failed: int = 0
    codes: Counts = field(default_factory=lambda: Counts(limit=200))
    numbers: dict[str, ScoreDist] = field(default_factory=dict)
    strings: dict[str, Counts] = field(default_factory=dict)
    cluster_sizes: Counts = field(default_factory=lambda: Counts(limit=500))  # dedup: one per kept survivor
    benchmarks: Counts = field(default_factory=lambda: Counts(limit=500))  # failed checks naming a benchmark

    @property
    def total(self) -> int:
        return self.passed + self.failed

    def add(self, check: dict[str, Any]) -> None:
        ok = bool(check.get("passed"))
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        code = check.get("code")
        self.codes.add(str(code) if code not in (None, "") else ("passed" if ok else "failed"))
        for key, value in check.items():
            if key in ("passed", "code"):
                continue
            if isinstance(value, dict):
                for sub, v in value.items():
                    if _is_number(v):
                        self._number(f"{key}.{sub}", float(v), ok)
            elif _is_number(value):
                self._number(key, float(value), ok)
            elif isinstance(value, str) and key not in SKIP_STRINGS and len(value) <= 80:
                self._string(key, value)
        size = check.get("cluster_size")
        if ok and _is_number(size):
            self.cluster_sizes.add(str(int(size)))
        if not ok:
            for key in BENCHMARK_KEYS:
                named = check.get(key)
                for b in (named if isinstance(named, list) else [named]):
                    if isinstance(b, str) and b:
                        self.benchmarks.add(b)

    def _number(self, key: str, value: float, ok: bool) -> None:
        dist = self.numbers.get(key)
        if dist is None:
            if len(self.numbers) >= MAX_FIELDS:
                return
            dist = self.numbers[key] = ScoreDist()
        dist.add(value, ok)

    def _string(self, key: str, value: str) -> None:
        counts = self.strings.get(key)
        if counts is None:
            if len(self.strings) >= MAX_FIELDS:
                return
            counts = self.strings[key] = Counts(limit=200)
        counts.add(value)

    def telling_strings(self) -> dict[str, Counts]:
        """String fields worth a chart: a few distinct values, each shared by several checks."""
        return {k: c for k, c in self.strings.items() if 1 < len(c) <= 40 and not c.capped and len(c) * 2 <= c.total}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class CheckTable:
    """All checks of a run, by (level, name)."""

    checks: dict[tuple[str, str], CheckSummary] = field(default_factory=dict)
    items: int = 0

    def add_record(self, rec: dict[str, Any], *, with_responses: bool = True) -> None:
        self._add("record", rec.get("checks"))
        if with_responses:
            for resp in rec.get("responses") or ():
                if isinstance(resp, dict):
                    self.add_response(resp)

    def add_response(self, resp: dict[str, Any]) -> None:
        self._add("response", resp.get("checks"))

    def _add(self, level: str, checks: Any) -> None:
        if not isinstance(checks, dict):
            return
        self.items += 1
        for name, check in checks.items():
            if not isinstance(check, dict):
                continue
            summary = self.checks.get((level, name))
            if summary is None:
                if len(self.checks) >= MAX_CHECKS:
                    continue
                summary = self.checks[(level, name)] = CheckSummary(name, level)
            summary.add(check)

    def ordered(self, order: list[str]) -> list[CheckSummary]:
        """Checks in pipeline order (by the check key of each stage), then the rest by name."""
        rank = {k: i for i, k in enumerate(order)}
        return sorted(self.checks.values(), key=lambda c: (rank.get(c.name, len(rank)), c.name, c.level))
