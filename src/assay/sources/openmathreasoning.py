"""OpenMathReasoning (nvidia/OpenMathReasoning): one row per (problem, generated solution)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import Adapter, answer_or_none, as_float, clean, opt, opt_text, row_key, split_think


@source("openmathreasoning")
class OpenMathReasoning(Adapter):
    """OpenMathReasoning: `problem`, `generated_solution`, `generation_model`, `problem_type`, `expected_answer`, ...

    One row is one solution, so each record carries one response (`<think>` part in `reasoning`).
    `expected_answer` is the reference only when `problem_type` is `has_answer_extracted`; otherwise
    it is the models' majority answer and goes to `meta.majority_answer` (option to use it anyway).
    `problem_source` goes to `meta.origin`; `inference_mode` and `pass_rate_72b_tir` to meta.
    """

    domain = "math"

    majority_answer_as_reference: bool = Field(False, description="use `expected_answer` as reference.answer also "
                                               "when it is only the majority vote (no_answer_extracted)")
    include_solution: bool = Field(True, description="turn `generated_solution` into a response")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        problem = need(row, "problem")
        problem_type = opt_text(row, "problem_type")
        expected = answer_or_none(opt(row, "expected_answer", (str, int, float)))
        extracted = problem_type in (None, "has_answer_extracted")
        answer = expected if extracted or self.majority_answer_as_reference else None
        responses = None
        solution = opt(row, "generated_solution")
        if solution is not None and self.include_solution:
            reasoning, text = split_think(solution)
            responses = [clean({"text": text, "reasoning": reasoning, "model": opt_text(row, "generation_model"),
                                "meta": clean({"inference_mode": opt_text(row, "inference_mode")})}) | {"text": text}]
        return self.record(
            at,
            key=row_key(row),
            prompt=problem.strip(),
            reference=clean({"answer": answer}),
            responses=responses,
            meta=clean({
                "problem_type": problem_type,
                "origin": opt_text(row, "problem_source"),
                "inference_mode": opt_text(row, "inference_mode"),
                "pass_rate_72b_tir": as_float(row.get("pass_rate_72b_tir")),
                "majority_answer": expected if not extracted else None,
            }),
        )
