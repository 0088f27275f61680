"""MBPP (google-research original, the Hugging Face `sanitized` config, and DeepSeek-Coder's copy)."""

from __future__ import annotations

import ast
import builtins
from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, source
from assay.sources.common import CodeAdapter, clean, normalise_code, opt, opt_text, row_key, text_list

_BUILTINS = frozenset(dir(builtins))


def _tests(row: dict[str, Any]) -> tuple[str, list[str], str | None]:
    """(field, asserts, test program): `test_list`, or `test` as a list, a string holding a Python list
    literal, or a test program (EvalPlus MBPP+), whose assert lines are the asserts shown."""
    if row.get("test_list") is not None:
        return "test_list", text_list(row["test_list"], "test_list"), None
    value = row.get("test")
    if value is None:
        raise SourceError("is missing (MBPP rows need 'test_list' or 'test')", "test_list")
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped.startswith("["):
            shown = [line.strip() for line in stripped.splitlines() if line.startswith("assert")]
            return "test", shown[:3], normalise_code(stripped) if stripped else None
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise SourceError("is not a Python list of assert strings", "test") from None
    return "test", text_list(value, "test"), None


def entry_point(asserts: list[str]) -> str | None:
    """The function the asserts call: the first called name that is not a Python builtin."""
    for line in asserts:
        try:
            tree = ast.parse(line.strip())
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in _BUILTINS:
                return node.func.id
    return None


@source("mbpp")
class MBPP(CodeAdapter):
    """MBPP: `task_id`, `text` (or `prompt`), `code`, `test_list` (or `test`), `test_setup_code` / `test_imports`.

    The prompt is the standard MBPP prompt (the task plus its asserts shown as examples);
    `reference.tests` is an assert test (set-up code, imports and the asserts), `reference.solution`
    the reference code.
    """

    domain = "code"

    include_challenge_tests: bool = Field(False, description="also run `challenge_test_list` (original MBPP)")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        text = opt_text(row, "text") or opt_text(row, "prompt")
        if text is None:
            raise SourceError("is missing (MBPP rows need 'text' or 'prompt')", "text")
        field, asserts, program = _tests(row)
        if not asserts and not program:
            raise SourceError("holds no asserts", field)
        run = list(asserts)
        if self.include_challenge_tests:
            run += text_list(row.get("challenge_test_list"), "challenge_test_list")
        setup = [normalise_code(opt(row, "test_setup_code") or "")]
        setup += text_list(row.get("test_imports"), "test_imports")
        code = "\n".join(part for part in [*setup, *([program] if program else run)] if part.strip()) + "\n"
        solution = opt(row, "code") or opt(row, "canonical_solution")
        entry = (opt(row, "entry_point") or "").strip() or entry_point(asserts)
        tail = self.instruction if self.instruction is not None else "Return the code in one ```python code block."
        text = text.strip()
        if text.startswith(('"""', "'''")):  # EvalPlus MBPP+ wraps the task in a docstring
            text = text.strip("\"'").strip()
        prompt = f"You are an expert Python programmer, and here is your task: {text}"
        if asserts:
            prompt += " Your code should pass these tests:\n\n" + "\n".join(a.strip() for a in asserts)
        return self.record(
            at,
            key=row_key(row),
            prompt=f"{prompt}\n\n{tail}" if tail else prompt,
            reference=clean({
                "solution": normalise_code(solution) if solution else None,
                "tests": {"kind": "assert", "code": code, "entry_point": entry},
            }),
            meta=clean({"entry_point": entry, "origin": opt_text(row, "source_file")}),
        )
