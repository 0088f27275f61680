"""The record's tests as code-verify runs them: cases, limits, and assert code split into statements.

Assert code (HumanEval `check(f)`, MBPP assert lists, LeetCode `my_solution = Solution()` + asserts)
is split into its top-level statements: those that test something (an `assert`, a call, a block
holding an assert) are the cases, the others (imports, definitions, assignments) are set-up run in
order before the case that follows them. `assert a == b` also carries its two sides, so that a
failure can show what the program returned.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field
from typing import Any

from assay.record import Record


@dataclass
class TestPlan:
    kind: str  # stdin | function | assert
    cases: list[dict[str, Any]]  # stdin {input, output}; function {args, expected}; assert {unit, text}
    time_limit: float
    memory_mb: int
    fn_name: str | None = None
    class_name: str | None = None
    units: list[dict[str, Any]] = field(default_factory=list)
    test_code: str = ""
    entry_point: str | None = None


def plan_tests(record: Record, *, timeout_s: float, memory_mb: int, record_limits: bool = True,
               time_scale: float = 1.0) -> TestPlan | str:
    """The plan for a record, or a sentence saying why it has no runnable tests."""
    tests = (record.get("reference") or {}).get("tests")
    if not isinstance(tests, dict):
        return "the record has no tests (reference.tests)"
    meta = record.get("meta") or {}
    limit, mem = timeout_s, memory_mb
    if record_limits:
        if _positive(meta.get("time_limit_s")):
            limit = float(meta["time_limit_s"]) * time_scale
        if _positive(meta.get("memory_limit_mb")):
            mem = int(meta["memory_limit_mb"])
    kind = tests.get("kind")
    if kind == "stdin":
        cases = [c for c in tests.get("cases") or () if isinstance(c, dict)]
        if not cases:
            return "the record's stdin tests have no cases"
        return TestPlan("stdin", cases, limit, mem)
    if kind == "function":
        cases = [c for c in tests.get("cases") or () if isinstance(c, dict)]
        if not cases:
            return "the record's function tests have no cases"
        if not tests.get("fn_name"):
            return "the record's function tests name no function (fn_name)"
        return TestPlan("function", cases, limit, mem, fn_name=tests["fn_name"], class_name=tests.get("class_name"))
    if kind == "assert":
        code = tests.get("code") or ""
        if not code.strip():
            return "the record's assert tests are empty"
        units = split_assert_code(code, tests.get("entry_point"))
        cases = [{"unit": i, "text": u["code"]} for i, u in enumerate(units) if u["case"]]
        return TestPlan("assert", cases, limit, mem, units=units, test_code=code, entry_point=tests.get("entry_point"))
    return f"unknown test kind {kind!r}"


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def split_assert_code(code: str, entry_point: str | None = None) -> list[dict[str, Any]]:
    """Units {code, line, case, left?, right?} of assert test code (one unit when it does not parse)."""
    code = code.replace("\r\n", "\n")
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [{"code": code, "line": 1, "case": True}]
    lines = code.split("\n")
    units = []
    for stmt in tree.body:
        text = ast.get_source_segment(code, stmt) or "\n".join(lines[stmt.lineno - 1:stmt.end_lineno])
        unit: dict[str, Any] = {"code": text, "line": stmt.lineno, "case": _is_case(stmt)}
        if (isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare) and len(stmt.test.ops) == 1
                and isinstance(stmt.test.ops[0], ast.Eq)):
            left = ast.get_source_segment(code, stmt.test.left)
            right = ast.get_source_segment(code, stmt.test.comparators[0])
            if left and right:
                unit["left"], unit["right"] = f"({left})", f"({right})"
        units.append(unit)
    if not any(u["case"] for u in units):
        defines_check = any(isinstance(s, ast.FunctionDef) and s.name == "check" for s in tree.body)
        if defines_check and entry_point:
            units.append({"code": f"check({entry_point})", "line": len(code.splitlines()) + 1, "case": True})
        elif units:
            units[-1]["case"] = True
        else:
            units.append({"code": code, "line": 1, "case": True})
    return units


def _is_case(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Assert):
        return True
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return False
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        return True
    return any(isinstance(n, ast.Assert) for n in ast.walk(stmt))


def program_parts(code: str, record: Record, kind: str) -> list[dict[str, Any]]:
    """What to load for function / assert tests: the candidate, after the record's starter code when
    that is valid Python (HumanEval's stub brings helper functions and imports the answer may rely
    on), or the starter code with the candidate appended when the candidate is only a completion."""
    if kind == "stdin":
        return [{"code": code}]
    starter = (record.get("meta") or {}).get("starter_code")
    if not isinstance(starter, str) or not starter.strip():
        return [{"code": code}]
    if not _parses(code):
        joined = starter if starter.endswith("\n") else starter + "\n"
        for body in (code, textwrap.indent(code, "    ")):  # a function body, indented or not
            if _parses(joined + body):
                return [{"code": joined + body}]
    if _parses(starter) and starter.strip() not in code:
        return [{"code": starter, "optional": True}, {"code": code}]
    return [{"code": code}]


def _parses(code: str) -> bool:
    """The code compiles (ast.parse alone accepts `return` outside a function)."""
    try:
        compile(code, "<candidate>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        return False
    return True
