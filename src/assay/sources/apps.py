"""APPS (codeparrot/apps on the Hub, the original release, and CodeRL's per-problem folders merged to rows)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import CodeAdapter, clean, fenced, json_field, opt, opt_text, row_key, stdin_cases, text_list


def apps_tests(io: dict[str, Any] | None, starter_code: str | None) -> dict[str, Any] | None:
    """APPS `input_output` as a stdin test, or a function test when it names `fn_name`.

    Function cases keep APPS's values as they are: `args` = inputs[i] (the argument list) and
    `expected` = outputs[i] exactly as stored (APPS often wraps the return value in a one-element list).
    """
    if not io:
        return None
    inputs, outputs = io.get("inputs"), io.get("outputs")
    fn_name = io.get("fn_name")
    if fn_name is None:
        cases = stdin_cases(inputs, outputs, "input_output")
        return {"kind": "stdin", "cases": cases} if cases else None
    if not isinstance(fn_name, str) or not fn_name.strip():
        raise SourceError("must be a function name", "input_output.fn_name")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise SourceError("expected lists of inputs and outputs", "input_output")
    if len(inputs) != len(outputs):
        raise SourceError(f"has {len(inputs)} inputs but {len(outputs)} outputs", "input_output")
    cases = []
    for n, (args, expected) in enumerate(zip(inputs, outputs, strict=True)):
        if not isinstance(args, list):
            raise SourceError(f"expected a list of arguments, got {type(args).__name__}",
                              f"input_output.inputs[{n}]")
        cases.append({"args": args, "expected": expected})
    class_name = "Solution" if starter_code and "class Solution" in starter_code else None
    return {"kind": "function", "fn_name": fn_name.strip(), "class_name": class_name, "cases": cases}


@source("apps")
class APPS(CodeAdapter):
    """APPS: `problem_id`, `question`, `input_output` (JSON: inputs, outputs, fn_name), `solutions`, `starter_code`.

    Stdin problems get a stdin test; problems with `fn_name` a function test (class `Solution`
    when the starter code has one). `solutions[0]` is `reference.solution`. CodeRL's labelled
    `generated_solutions` / `baseline_solutions`, when present, become responses.
    """

    domain = "code"

    solution_index: int = Field(0, ge=0, description="which of `solutions` is reference.solution")
    keep_all_solutions: bool = Field(False, description="also keep every known-correct solution in meta.solutions")
    include_generated: bool = Field(True, description="turn CodeRL `generated_solutions` / `baseline_solutions` "
                                    "(labelled by test outcome) into responses")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        question = need(row, "question")
        starter = opt(row, "starter_code") or None
        io = json_field(row, "input_output", dict)
        solutions = text_list(json_field(row, "solutions", list), "solutions")
        tests = apps_tests(io, starter)
        stdin = tests is None or tests["kind"] == "stdin"
        meta = clean({
            "difficulty": opt_text(row, "difficulty"),
            "url": opt_text(row, "url"),
            "starter_code": starter,
            "solutions": solutions if self.keep_all_solutions else None,
        })
        return self.record(
            at,
            key=row_key(row),
            prompt=self.code_prompt(question, starter, stdin=stdin, fn_name=None if stdin else tests["fn_name"]),
            reference=clean({
                "solution": solutions[self.solution_index] if len(solutions) > self.solution_index else None,
                "tests": tests,
            }),
            responses=self._responses(row) if self.include_generated else None,
            meta=meta,
        )

    def _responses(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for field in ("generated_solutions", "baseline_solutions"):
            items = json_field(row, field, list)
            for n, item in enumerate(items or ()):
                if not isinstance(item, dict) or not isinstance(item.get("code"), str):
                    raise SourceError("expected an object with 'code'", f"{field}[{n}]")
                result = item.get("result")
                # CodeRL labels: True passed all tests, False failed one, -1 runtime error, -2 compile error.
                out.append(clean({
                    "text": fenced(item["code"]),
                    "meta": clean({"origin": field, "passed": result is True, "result": result,
                                   "error_type": item.get("error_type")}),
                }))
        return out
