"""Stage `judge`: LLM-as-a-judge on each response, with rubric templates."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from assay.judge import prompts
from assay.judge.jsonparse import as_bool, as_number, extract_json, field_of
from assay.record import Record, Response, Verdict
from assay.stage import stage
from assay.teacher.completion import Completion
from assay.teacher.llm import LLMCheck, Message, ParseError

Rubric = Literal["auto", "correctness", "quality", "agreement"]
BOOL_FIELDS = ("correct", "consistent", "agree", "pass", "passed", "verdict", "is_correct", "equivalent")
SCORE_FIELDS = ("score", "rating", "grade")
RATIONALE = {"type": "string", "maxLength": 200}
SCHEMAS: dict[str, dict[str, Any]] = {
    "correctness": {"type": "object", "properties": {"rationale": RATIONALE, "correct": {"type": "boolean"}},
                    "required": ["rationale", "correct"], "additionalProperties": False},
    "quality": {"type": "object", "properties": {"rationale": RATIONALE,
                                                 "score": {"type": "integer", "enum": list(range(1, 11))}},
                "required": ["rationale", "score"], "additionalProperties": False},
    "agreement": {"type": "object", "properties": {"rationale": RATIONALE, "consistent": {"type": "boolean"}},
                  "required": ["rationale", "consistent"], "additionalProperties": False},
}


def final_answer(response: Response) -> str:
    from assay.verify.extract import split_reasoning

    return split_reasoning(response.get("text") or "")[1].strip()


def reasoning_of(response: Response) -> str:
    from assay.verify.extract import split_reasoning

    return str(response.get("reasoning") or split_reasoning(response.get("text") or "")[0] or "").strip()


@stage("judge")
class Judge(LLMCheck):
    """LLM-as-a-judge: scores each response with a rubric and a short rationale.

    Rubrics: `correctness` against the reference answer (the second check after math
    verification), `quality` for prompts without a reference (science, chat; 1-10), `agreement`
    between the reasoning's conclusion and the final answer; `auto` picks correctness when the
    record has a reference answer, else quality. Or give your own `template` (placeholders
    {problem} {reference} {answer} {extracted} {response} {conclusion}) asking for JSON with a
    yes/no field (correct, consistent, pass...) or a `score` out of `scale`. The check's score is
    in 0..1; a response passes when score >= threshold.
    """

    rubric: Rubric = Field("auto", description="correctness | quality | agreement | auto")
    template: str | None = Field(None, description="your own prompt (overrides the rubric's)")
    system_prompt: str | None = Field(prompts.JUDGE_SYSTEM, description="system message (null for none)")
    threshold: float = Field(0.6, ge=0, le=1, description="pass when the 0..1 score is at least this")
    scale: float = Field(10.0, gt=0, description="maximum of a numeric `score` in the judge's JSON")
    max_chars: int = Field(6000, ge=200, description="characters of each field put in the prompt (problem keeps "
                           "its start, answers and reasoning their end)")

    def rubric_for(self, record: Record) -> str:
        if self.rubric != "auto":
            return self.rubric
        return "correctness" if (record.get("reference") or {}).get("answer") not in (None, "") else "quality"

    def precheck(self, record: Record, response: Response | None) -> Verdict | None:
        if self.template is not None:
            return None
        rubric = self.rubric_for(record)
        if rubric == "correctness" and (record.get("reference") or {}).get("answer") in (None, ""):
            return self.failed("no reference answer to judge against (use rubric auto or quality)", "no reference",
                               {"retry": False, "rubric": rubric})
        if response is not None and not final_answer(response):
            # cut off while reasoning (or empty): nothing to judge, and no request to pay for
            return Verdict(passed=False, score=0.0, reason="the response has no final answer", code=f"{rubric}: "
                           "no final answer", details={"rubric": rubric})
        if rubric == "agreement" and response is not None and not reasoning_of(response):
            return Verdict(passed=True, score=None, reason="no reasoning to compare", code="no reasoning",
                           details={"rubric": rubric})
        return None

    def prompt(self, record: Record, response: Response | None) -> list[Message]:
        template = self.template or prompts.RUBRICS[self.rubric_for(record)]
        text = prompts.fill(template, prompts.values_for(record, response, self.max_chars))
        msgs: list[Message] = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*msgs, {"role": "user", "content": text}]

    def schema(self, record: Record) -> dict[str, Any] | None:
        return None if self.template is not None else SCHEMAS[self.rubric_for(record)]

    def parse(self, record: Record, response: Response | None, completion: Completion) -> Verdict:
        data = extract_json(completion["content"] or completion["text"])
        rationale = str(field_of(data, "rationale", "reason", "explanation", "justification") or "")[:500]
        flag = field_of(data, *BOOL_FIELDS)
        if flag is not None:
            score = 1.0 if as_bool(flag, "verdict") else 0.0
        else:
            raw = field_of(data, *SCORE_FIELDS)
            if raw is None:
                raise ParseError(f"no verdict or score in {sorted(data)}")
            score = as_number(raw, "score", 0, self.scale) / self.scale
        rubric = "custom" if self.template else self.rubric_for(record)
        return Verdict(passed=score >= self.threshold, score=round(score, 4), reason=rationale or f"score {score:g}",
                       code=None if score >= self.threshold else f"{rubric}: failed",
                       details={"rubric": rubric, "judge": self.model_name})
