"""Collection rules: what a usable record must have, per domain."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from assay.record import DOMAINS, Record, Verdict, has_reference, prompt_text
from assay.stage import RecordCheck, stage

_UNSET = object()


class DomainRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    require: list[str] | None = Field(None, description="dotted fields that must be present and non-empty, "
                                      "e.g. reference.answer, reference.tests, responses")
    min_prompt_chars: int | None = Field(None, ge=0)
    max_prompt_chars: int | None = Field(None, ge=1)


def _lookup(rec: Record, path: str) -> Any:
    node: Any = rec
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _UNSET
        node = node[part]
    return node


def _empty(value: Any) -> bool:
    return value is _UNSET or value is None or (isinstance(value, (str, list, dict)) and not value) or (
        isinstance(value, str) and not value.strip())


@stage("collect")
class Collect(RecordCheck):
    """Collection rules: allowed domains and sources, required fields and prompt length bounds per
    domain. Marks every record with `labels.verifiable` (a reference answer, or tests for code) so
    later stages can route records a verifier cannot judge; a missing reference is a state, not
    an error, unless a rule requires it."""

    domains: list[str] = Field(list(DOMAINS), description="domains to keep")
    sources: list[str] | None = Field(None, description="sources to keep (default: any)")
    exclude_sources: list[str] = Field(default_factory=list, description="sources to reject")
    default: DomainRule = Field(default_factory=lambda: DomainRule(require=[], min_prompt_chars=1,
                                                                   max_prompt_chars=None),
                                description="rule for every domain")
    per_domain: dict[str, DomainRule] = Field(
        default_factory=dict, description="overrides by domain, e.g. {code: {require: [reference.tests]}}")

    _rules: dict[str, DomainRule] = PrivateAttr(default_factory=dict)

    def rule_for(self, domain: str) -> DomainRule:
        rules = self.__pydantic_private__["_rules"]  # type: ignore[index]
        rule = rules.get(domain)
        if rule is None:
            rule = self.default.model_copy()
            override = self.per_domain.get(domain)
            if override is not None:
                rule = rule.model_copy(update=override.model_dump(exclude_none=True))
            rules[domain] = rule
        return rule

    def check(self, record: Record) -> Verdict:
        labels = record.get("labels")
        if labels is None:
            labels = record["labels"] = {}
        labels["verifiable"] = has_reference(record)
        domain, src = record.get("domain"), record.get("source")
        if domain not in self.domains:
            return Verdict(False, 0.0, f"domain {domain!r} not in {self.domains}", code="domain not allowed")
        if (self.sources is not None and src not in self.sources) or src in self.exclude_sources:
            return Verdict(False, 0.0, f"source {src!r} not allowed", code="source not allowed")
        rule = self.rule_for(domain)
        for path in rule.require or ():
            if _empty(_lookup(record, path)):
                return Verdict(False, 0.0, f"required field '{path}' is missing or empty",
                               code=f"missing {path}")
        n = len(prompt_text(record))
        if rule.min_prompt_chars is not None and n < rule.min_prompt_chars:
            return Verdict(False, n, f"prompt has {n} chars < {rule.min_prompt_chars}", code="prompt too short")
        if rule.max_prompt_chars is not None and n > rule.max_prompt_chars:
            return Verdict(False, n, f"prompt has {n:,} chars > {rule.max_prompt_chars:,}", code="prompt too long")
        return Verdict(True, n, "ok")
