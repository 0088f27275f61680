"""The `rules` stage: every registered rule over every response, one check per rule.

The stage's parameters are built from the rule registry: each rule is a parameter group named
after it (`ngram`, `length`, `format`, `truncation`, `language`, `answer_consistency`, and any
rule a module of this package registers), so adding a rule means writing one class.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections import Counter
from typing import Any

from pydantic import Field, PrivateAttr, create_model, field_validator

import assay.rules as _package
from assay.record import Record, checks_of
from assay.rules.base import RULES, Rule, summary
from assay.rules.trace import REASONING_MARKERS, SOLUTION_MARKERS, Pair, Trace
from assay.stage import ResponseCheck, StageContext, stage

# Check order: the first failing rule names a rejected response in the stats, so the plainest
# causes come first (a trace cut off at max_tokens is counted as truncated, not as too long).
ORDER = ("truncation", "format", "ngram", "length", "language", "answer_consistency")

for _mod in pkgutil.iter_modules(_package.__path__, _package.__name__ + "."):
    if _mod.name != __name__:
        importlib.import_module(_mod.name)


class RulesBase(ResponseCheck):
    """Cheap rule-based rejection of reasoning responses: n-gram loops, length, format,
    truncation, language mixing and reasoning/answer disagreement; one check per rule
    (`checks.rules_<rule>`), each rule a parameter group (`--set ngram.max_repeats=10`,
    `--set language.enabled=false`)."""

    version = "1"
    batch_size = 64

    reasoning_markers: list[Pair] = Field(default_factory=lambda: list(REASONING_MARKERS),
                                          description="(open, close) pairs that delimit a reasoning block")
    solution_markers: list[Pair] = Field(default_factory=lambda: list(SOLUTION_MARKERS),
                                         description="(open, close) pairs that may wrap the answer (Sky-T1)")
    record_sampled: bool = Field(True, description="write meta.sampled = the number of responses a record "
                                 "arrives with, when not set yet (select-responses reads it for the pass rate)")

    _counts: Counter[str] = PrivateAttr(default_factory=Counter)
    _seconds: Counter[str] = PrivateAttr(default_factory=Counter)

    @field_validator("reasoning_markers", "solution_markers")
    @classmethod
    def _non_empty_markers(cls, pairs: list[Pair]) -> list[Pair]:
        for open_, close in pairs:
            if not open_ or not close:
                raise ValueError("markers must be non-empty strings")
        return pairs

    def rules(self) -> list[Rule]:
        """The enabled rules, in check order."""
        names = [n for n in ORDER if n in RULES] + sorted(set(RULES) - set(ORDER))
        return [r for r in (getattr(self, n) for n in names) if r.enabled]

    def check_names(self) -> list[str]:
        return [f"{self.key}_{r.name}" for r in self.rules()]

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        for r in self.rules():
            r.setup()

    def process_batch(self, records: list[Record]) -> None:
        active = [(r, f"{self.key}_{r.name}") for r in self.rules()]
        counts, seconds = self._counts, self._seconds
        clock = time.perf_counter
        for rec in records:
            responses = rec.get("responses") or []
            if self.record_sampled and responses:
                meta = rec.get("meta")
                if not isinstance(meta, dict):
                    meta = rec["meta"] = {}
                meta.setdefault("sampled", len(responses))
            shared: dict[str, Any] = {}
            for resp in responses:
                trace = Trace(rec, resp, self.reasoning_markers, self.solution_markers, shared)
                checks = checks_of(resp)
                for r, key in active:
                    if not r.applies(trace):
                        continue
                    t0 = clock()
                    verdict = r.evaluate(trace)
                    seconds[r.name] += clock() - t0
                    counts[f"{r.name}_checked"] += 1
                    if not verdict.passed:
                        counts[f"{r.name}_failed"] += 1
                    checks[key] = verdict.to_dict()

    def stats(self) -> dict[str, Any]:
        """Per rule: responses checked and failed, seconds spent (since the last call)."""
        out: dict[str, Any] = {k: v for k, v in self._counts.items()}
        out.update({f"{k}_seconds": round(v, 4) for k, v in self._seconds.items()})
        self._counts.clear()
        self._seconds.clear()
        return out


def _build() -> type[RulesBase]:
    fields: dict[str, Any] = {name: (cls, Field(default_factory=cls, description=summary(cls)))
                              for name, cls in RULES.items()}
    cls = create_model("Rules", __base__=RulesBase, __module__=__name__, __doc__=RulesBase.__doc__, **fields)
    return stage("rules")(cls)


Rules = _build()
