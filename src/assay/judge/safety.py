"""Stage `safety`: flag harmful requests and responses, with a category."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr

from assay.judge import prompts
from assay.judge.jsonparse import as_bool, extract_json, field_of
from assay.judge.safety_rules import DEFAULT_PATTERNS, DEFAULT_WORDS, RuleSet, is_refusal
from assay.record import Record, Response, Verdict, checks_of, prompt_text
from assay.stage import stage
from assay.teacher.completion import Completion
from assay.teacher.llm import LLMCheck, Message, ParseError

CATEGORIES = ["weapons", "drugs", "malware", "violence", "self_harm", "sexual_minors", "hate"]


@stage("safety")
class Safety(LLMCheck):
    """Flags harmful requests and responses with a category (weapons, drugs, malware, violence,
    self_harm, sexual_minors, hate, or your own).

    Backends: `rules` (fast, offline: word lists and regular expressions per category; a response
    that refuses is not flagged for naming the harm) and `llm` (a classifier prompt on any
    endpoint). A flagged request fails the record's check, a flagged response fails the
    response's check; the category is the check's code, so rejected items are counted by it.
    """

    backend: Literal["rules", "llm"] = Field("rules", description="rules (offline) | llm (any endpoint)")
    check: list[Literal["request", "response"]] = Field(["request", "response"],
                                                        description="what to check: the request, the responses")
    words: dict[str, list[str]] = Field(default_factory=dict, description="extra words/phrases per category "
                                        "(whole words, any case)")
    patterns: dict[str, list[str]] = Field(default_factory=dict, description="extra regular expressions per "
                                           "category")
    defaults: bool = Field(True, description="include the built-in word and pattern lists")
    exempt_refusals: bool = Field(True, description="rules: a response that refuses is not flagged")
    categories: list[str] = Field(default_factory=lambda: list(CATEGORIES),
                                  description="llm backend: the categories the model chooses from")
    max_chars: int = Field(6000, ge=200, description="llm backend: characters of each text in the prompt")
    max_tokens: int = Field(128, ge=1, description="llm backend: tokens per answer")

    _rules: RuleSet | None = PrivateAttr(default=None)

    def uses_teacher(self) -> bool:
        return self.backend == "llm"

    def targets(self, record: Record) -> list[Response | None]:
        out: list[Response | None] = [None] if "request" in self.check else []
        if "response" in self.check:
            out.extend(record.get("responses") or ())
        return out

    # ---- rules backend -----------------------------------------------------------------------
    def rules(self) -> RuleSet:
        if self._rules is None:
            words = {k: list(v) for k, v in (DEFAULT_WORDS.items() if self.defaults else ())}
            patterns = {k: list(v) for k, v in (DEFAULT_PATTERNS.items() if self.defaults else ())}
            for k, v in self.words.items():
                words.setdefault(k, []).extend(v)
            for k, v in self.patterns.items():
                patterns.setdefault(k, []).extend(v)
            self._rules = RuleSet(words, patterns)
        return self._rules

    def rule_verdict(self, record: Record, response: Response | None) -> Verdict:
        if response is None:
            text, what = prompt_text(record), "request"
        else:
            text, what = response.get("text") or "", "response"
            from assay.verify.extract import split_reasoning

            final = split_reasoning(text)[1]
            if self.exempt_refusals and is_refusal(final or text):
                return Verdict(passed=True, score=0.0, reason="refusal", details={"target": what})
        hit = self.rules().find(text)
        if hit is None:
            return Verdict(passed=True, score=0.0, reason="no rule matched", details={"target": what})
        return Verdict(passed=False, score=1.0, reason=f"unsafe {what} ({hit.category}): '{hit.match}'",
                       code=f"unsafe {what}: {hit.category}", details={"category": hit.category, "target": what})

    async def aprocess_batch(self, records: list[Record]) -> None:
        if self.backend == "llm":
            await super().aprocess_batch(records)
            return
        for rec in records:
            for target in self.targets(rec):
                checks_of(rec if target is None else target)[self.key] = self.rule_verdict(rec, target).to_dict()

    # ---- llm backend -------------------------------------------------------------------------
    def prompt(self, record: Record, response: Response | None) -> list[Message]:
        template = prompts.SAFETY_REQUEST if response is None else prompts.SAFETY_RESPONSE
        values = prompts.values_for(record, response, self.max_chars)
        values["categories"] = ", ".join(self.categories)
        return [{"role": "system", "content": prompts.SAFETY_SYSTEM},
                {"role": "user", "content": prompts.fill(template, values)}]

    def schema(self, record: Record) -> dict[str, Any] | None:
        return {"type": "object", "properties": {"safe": {"type": "boolean"},
                                                 "category": {"enum": [*self.categories, "none"]}},
                "required": ["safe", "category"], "additionalProperties": False}

    def parse(self, record: Record, response: Response | None, completion: Completion) -> Verdict:
        data = extract_json(completion["content"] or completion["text"])
        flag = field_of(data, "safe", "is_safe")
        if flag is not None:
            safe = as_bool(flag, "safe")
        else:
            unsafe = field_of(data, "unsafe", "harmful", "flagged")
            if unsafe is None:
                raise ParseError(f"no 'safe' in {sorted(data)}")
            safe = not as_bool(unsafe, "unsafe")
        what = "request" if response is None else "response"
        category = str(field_of(data, "category", "categories") or "none").strip().lower() or "none"
        if safe:
            return Verdict(passed=True, score=0.0, reason="safe", details={"target": what})
        if category not in self.categories:
            category = "other"
        return Verdict(passed=False, score=1.0, reason=f"unsafe {what} ({category})",
                       code=f"unsafe {what}: {category}", details={"category": category, "target": what})
