"""MATH (hendrycks/competition_math) and MATH-500 (the PRM800K test split)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import Adapter, answer_or_none, as_int, boxed_answer, clean, opt, opt_text, row_key


@source("math")
class CompetitionMath(Adapter):
    """MATH / MATH-500: `problem`, `solution` (with `\\boxed{}`), `answer` (MATH-500), `level`, `subject` or `type`.

    `reference.answer` is `answer`, or the last `\\boxed{}` of the solution when there is none;
    `meta.level` is the level as an int (1-5); the subject goes to `labels.category`.
    """

    domain = "math"

    answer_from_solution: bool = Field(True, description="take the last \\boxed{} of the solution when the row "
                                       "has no `answer`")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        problem = need(row, "problem")
        solution = opt(row, "solution")
        answer = answer_or_none(opt(row, "answer", (str, int, float)))
        if answer is None and solution and self.answer_from_solution:
            answer = boxed_answer(solution)
        level_raw = row.get("level")
        if level_raw is not None and not isinstance(level_raw, (str, int, float)):
            raise SourceError(f"expected a number or 'Level N', got {type(level_raw).__name__}", "level")
        subject = opt_text(row, "subject") or opt_text(row, "type")
        return self.record(
            at,
            key=row_key(row, "unique_id"),
            prompt=problem.strip(),
            reference=clean({"answer": answer, "solution": solution}),
            labels=clean({"category": subject}),
            meta=clean({"level": as_int(level_raw), "subject": subject}),
        )
