"""One rule = one small class: parameters as pydantic fields, `evaluate(trace) -> Verdict`.

    @rule("ngram")
    class NgramRepetition(Rule):
        '''Fails degenerate loops.'''
        n: int = 20
        def evaluate(self, trace: Trace) -> Verdict: ...

A registered rule becomes a parameter group of the `rules` stage (`--set ngram.n=10`,
`ngram: {enabled: false}` in YAML) and writes `checks["rules_ngram"]`. As in Data-Juicer, a rule
computes its statistics (the score and the `details`) and decides from its thresholds; the
statistics stay in the check so thresholds can be re-tuned later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from assay.record import Verdict
from assay.rules.trace import Trace

R = TypeVar("R", bound=type["Rule"])
RULES: dict[str, type[Rule]] = {}


class Rule(BaseModel):
    """Base of the rules. `name` is set by @rule; the check key is `<stage key>_<name>`."""

    model_config = ConfigDict(extra="forbid")

    name: ClassVar[str] = ""

    enabled: bool = Field(True, description="run this rule")
    domains: list[str] | None = Field(None, description="only responses of records in these domains (default: all)")

    def applies(self, trace: Trace) -> bool:
        return self.enabled and (self.domains is None or trace.domain in self.domains)

    def evaluate(self, trace: Trace) -> Verdict:
        raise NotImplementedError

    def setup(self) -> None:
        """Load what the rule needs once per worker process (a tokenizer, a language model)."""


def rule(name: str) -> Callable[[R], R]:
    """Class decorator: register a rule under `name` (its parameter group in the `rules` stage)."""

    def register(cls: R) -> R:
        if name in RULES and RULES[name].__qualname__ != cls.__qualname__:
            raise ValueError(f"rule {name!r} registered twice ({RULES[name].__module__}, {cls.__module__})")
        cls.name = name
        RULES[name] = cls
        return cls

    return register


def summary(cls: type[Rule]) -> str:
    return (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
