"""LeetCode problems with `class Solution` stubs and call-style asserts (DeepSeek-Coder's contest set,
and the LeetCodeDataset layout with `check(candidate)` tests)."""

from __future__ import annotations

import ast
import re
from typing import Any, Literal

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import CodeAdapter, clean, opt, opt_text, row_key

_TYPING_NAMES = ("List", "Optional", "Dict", "Tuple", "Set", "Deque")


def split_stub(prompt: str) -> tuple[str | None, str | None]:
    """(statement, starter code) of a HumanEval-style prompt: a docstring, then the class stub.

    A prompt without a leading docstring is taken as the statement itself (with no separate stub).
    """
    m = re.match(r'\s*("""|\'\'\')(.*?)\1(.*)\Z', prompt, re.DOTALL)
    if not m:
        return prompt.strip() or None, None
    return m.group(2).strip() or None, m.group(3).strip("\n") or None


def with_typing_import(stub: str) -> str:
    """The stub with `from typing import ...` for the typing names it uses and does not import."""
    if re.search(r"^\s*(from typing import|import typing)", stub, re.MULTILINE):
        return stub
    used = [n for n in _TYPING_NAMES if re.search(rf"\b{n}\[", stub)]
    return f"from typing import {', '.join(used)}\n\n{stub}" if used else stub


def method_params(stub: str | None, fn_name: str) -> list[str] | None:
    """Parameter names (without self) of `Solution.fn_name` in the stub, if the stub parses."""
    if not stub:
        return None
    try:
        tree = ast.parse(stub.rstrip() + "\n" + " " * 8 + "pass\n")
    except SyntaxError:
        try:
            tree = ast.parse(stub.rstrip() + "\n        pass\n".replace("        ", "\t\t"))
        except SyntaxError:
            return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == fn_name:
            return [a.arg for a in node.args.args[1:]]
    return None


def call_cases(test: str, stub: str | None) -> dict[str, Any] | None:
    """A function test from `test_input = {...}` / `assert my_solution.f(**test_input) == value` pairs.

    None when any statement falls outside that pattern (helpers, conversions, tolerances): the
    assert form is then the only faithful one.
    """
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return None
    fn_name: str | None = None
    pending: dict[str, Any] | None = None
    cases: list[tuple[dict[str, Any], Any]] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            target = stmt.targets[0].id
            if target == "my_solution":
                continue
            if target != "test_input":
                return None
            try:
                pending = ast.literal_eval(stmt.value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return None
            if not isinstance(pending, dict):
                return None
            continue
        if not isinstance(stmt, ast.Assert) or pending is None:
            return None
        cmp = stmt.test
        if not (isinstance(cmp, ast.Compare) and len(cmp.ops) == 1 and isinstance(cmp.ops[0], ast.Eq)):
            return None
        call = cmp.left
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and not call.args
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "my_solution"
                and len(call.keywords) == 1 and call.keywords[0].arg is None):
            return None
        if fn_name not in (None, call.func.attr):
            return None
        fn_name = call.func.attr
        try:
            expected = ast.literal_eval(cmp.comparators[0])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        cases.append((pending, expected))
    if fn_name is None or not cases:
        return None
    params = method_params(stub, fn_name)
    out = []
    for kwargs, expected in cases:
        order = params if params is not None and sorted(params) == sorted(kwargs) else list(kwargs)
        out.append({"args": [kwargs[p] for p in order], "expected": expected})
    return {"kind": "function", "fn_name": fn_name, "class_name": "Solution", "cases": out}


@source("leetcode")
class LeetCode(CodeAdapter):
    """LeetCode: `task_id`, `prompt` (docstring + `class Solution` stub) or `prompt_sft`, `test` (asserts), `meta`.

    Also reads the LeetCodeDataset layout (`problem_description`, `starter_code`, `test` defining
    `check(candidate)`, `entry_point` such as `Solution().twoSum`, `completion`, `prompt` = imports).
    `reference.tests` is an assert test that runs after the candidate's `class Solution`;
    `test_style: function` turns plain `assert my_solution.f(**test_input) == value` tests into
    function cases (problems whose asserts do more stay assert tests).
    """

    domain = "code"

    test_style: Literal["assert", "function"] = Field("assert", description="keep the asserts, or turn plain "
                                                      "call asserts into a function test where possible")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        if row.get("problem_description") is not None:
            return self._leetcode_dataset(row, at)
        prompt = need(row, "prompt")
        statement, stub = split_stub(prompt)
        if statement is None and opt_text(row, "prompt_sft"):
            # prompt_sft ends with its own copy of the stub, which the prompt shows anyway.
            statement = re.split(r"\n\s*Please complete the code below", row["prompt_sft"])[0].strip() or None
        if statement is None:
            raise SourceError("holds no problem statement (no docstring, no 'prompt_sft')", "prompt")
        test = need(row, "test")
        if "my_solution" not in test and "assert" not in test:
            raise SourceError("holds no asserts", "test")
        tests: dict[str, Any] | None = call_cases(test, stub) if self.test_style == "function" else None
        if tests is None:
            tests = {"kind": "assert", "code": test.strip("\n") + "\n", "entry_point": None}
        info = opt(row, "meta", dict) or {}
        meta = clean({
            "difficulty": opt_text(info, "difficulty") or opt_text(row, "difficulty"),
            "title": opt_text(info, "title") or opt_text(row, "title"),
            "question_id": opt_text(info, "questionFrontendId") or opt_text(info, "questionId"),
            "url": opt_text(row, "url"),
            "starter_code": stub,
            "start_time": row.get("start_time"),
        })
        return self.record(
            at,
            key=row_key(row),
            prompt=self.code_prompt(statement, with_typing_import(stub) if stub else None, stdin=False),
            reference={"tests": tests},
            meta=meta,
        )

    def _leetcode_dataset(self, row: dict[str, Any], at: RowAt) -> Record:
        statement = need(row, "problem_description")
        stub = opt(row, "starter_code")
        test = need(row, "test")
        entry = need(row, "entry_point").strip()
        preamble = opt(row, "prompt") or ""
        solution = opt(row, "completion")
        tags = opt(row, "tags", list)
        meta = clean({
            "difficulty": opt_text(row, "difficulty"),
            "question_id": opt_text(row, "question_id"),
            "tags": tags,
            "starter_code": stub,
            "preamble": preamble,
            "date": opt_text(row, "estimated_date"),
            "entry_point": entry,
        })
        # The tests call helpers that the preamble defines (list_node, tree_node, ...).
        code = f"{preamble.rstrip()}\n\n{test.strip()}\n\ncheck({entry})\n".lstrip("\n")
        return self.record(
            at,
            key=row_key(row),
            prompt=self.code_prompt(statement, with_typing_import(stub) if stub else None, stdin=False),
            reference=clean({
                "solution": f"{preamble.rstrip()}\n\n{solution.strip()}\n".lstrip("\n") if solution else None,
                "tests": {"kind": "assert", "code": code, "entry_point": entry},
            }),
            meta=meta,
        )
