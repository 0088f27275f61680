"""HumanEval (openai/human-eval and copies such as HumanEval+ / MultiPL-E Python)."""

from __future__ import annotations

from typing import Any

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import CodeAdapter, clean, fenced, opt, row_key


@source("humaneval")
class HumanEval(CodeAdapter):
    """HumanEval: `task_id`, `prompt` (signature + docstring), `canonical_solution`, `test` (`check`), `entry_point`.

    The prompt asks to complete the stub; `reference.solution` is stub + canonical body (a complete
    program); `reference.tests` is an assert test: `test` followed by `check(entry_point)`.
    """

    domain = "code"

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        stub = need(row, "prompt")
        entry = need(row, "entry_point").strip()
        if not entry.isidentifier():
            raise SourceError("is not a Python identifier", "entry_point")
        test = need(row, "test")
        body = opt(row, "canonical_solution")
        instruction = self.instruction if self.instruction is not None else (
            "Complete the following Python function. Return the complete function, with any imports it "
            "needs, in one ```python code block.")
        return self.record(
            at,
            key=row_key(row),
            prompt=f"{instruction}\n\n{fenced(stub)}" if instruction else fenced(stub),
            reference=clean({
                "solution": stub + body if body else None,
                "tests": {"kind": "assert", "code": f"{test}\n\ncheck({entry})\n", "entry_point": entry},
            }),
            meta={"starter_code": stub, "entry_point": entry},
        )
