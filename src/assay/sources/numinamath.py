"""NuminaMath (AI-MO/NuminaMath-1.5; also the older NuminaMath-CoT / -TIR layout)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import Adapter, answer_or_none, boxed_answer, clean, opt, opt_text, row_key


def _flag(value: Any) -> Any:
    """NuminaMath validity flags are 'Yes' / 'No' strings in some copies, booleans in others."""
    if isinstance(value, str) and value.strip().lower() in ("yes", "no", "true", "false"):
        return value.strip().lower() in ("yes", "true")
    return value


@source("numinamath")
class NuminaMath(Adapter):
    """NuminaMath 1.5: `problem`, `solution`, `answer`, `problem_type`, `question_type`, `source`, validity flags.

    `answer` values 'proof' and 'notfound' mean there is no reference answer. Rows without an
    `answer` field (NuminaMath-CoT / -TIR) take the last `\\boxed{}` of the solution. `problem_type`
    goes to `labels.category`; `source` (olympiads, amc_aime, ...) to `meta.origin`.
    """

    domain = "math"

    answer_from_solution: bool = Field(True, description="rows with no `answer` field: take the last \\boxed{} "
                                       "of the solution")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        problem = need(row, "problem")
        solution = opt(row, "solution")
        if "answer" in row:
            answer = answer_or_none(opt(row, "answer", (str, int, float)))
        else:
            answer = boxed_answer(solution) if solution and self.answer_from_solution else None
        category = opt_text(row, "problem_type")
        return self.record(
            at,
            key=row_key(row),
            prompt=problem.strip(),
            reference=clean({"answer": answer, "solution": solution}),
            labels=clean({"category": category}),
            meta=clean({
                "question_type": opt_text(row, "question_type"),
                "origin": opt_text(row, "source"),
                "problem_is_valid": _flag(row.get("problem_is_valid")),
                "solution_is_valid": _flag(row.get("solution_is_valid")),
                "synthetic": row.get("synthetic"),
                "answer_given": opt_text(row, "answer") if answer is None else None,
            }),
        )
