"""GSM8K (openai/grade-school-math, `main` and `socratic` configs)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import Adapter, clean, row_key

_CALCULATOR = re.compile(r"<<[^<>]*>>")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"\$?-?[\d,]*\.?\d+")


def final_answer(answer: str) -> str:
    """The number after the last `####`, without thousands separators (`1,450,000` -> `1450000`).

    A bare number (copies that keep only the final answer) is accepted as it is.
    """
    _, sep, tail = answer.rpartition("####")
    if not sep:
        if _NUMBER.fullmatch(answer.strip()):
            tail = answer
        else:
            raise SourceError("has no final answer after '####'", "answer")
    if not tail.strip():
        raise SourceError("has no final answer after '####'", "answer")
    return _THOUSANDS.sub("", tail.strip().rstrip(".").lstrip("$")).strip()


@source("gsm8k")
class GSM8K(Adapter):
    """GSM8K: `question`, `answer` (worked solution with `<<calc>>` annotations, final answer after `#### `).

    `reference.answer` is the final number, `reference.solution` the worked solution before `####`.
    """

    domain = "math"

    strip_calculator: bool = Field(True, description="remove `<<48/2=24>>` calculator notes from the solution")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        question = need(row, "question")
        answer = need(row, "answer", (str, int, float))
        if not isinstance(answer, str):
            answer = str(answer)
        solution = answer.rpartition("####")[0].strip()
        if self.strip_calculator:
            solution = _CALCULATOR.sub("", solution)
        return self.record(
            at,
            key=row_key(row),
            prompt=question.strip(),
            reference=clean({"answer": final_answer(answer), "solution": solution}),
        )
