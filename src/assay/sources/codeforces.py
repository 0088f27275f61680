"""Codeforces problems in the open-r1/codeforces schema (statement parts, examples, official tests)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, source
from assay.sources.common import CodeAdapter, as_float, clean, io_pairs, opt, opt_text, row_key


def _fmt_number(x: float) -> str:
    return str(int(x)) if x.is_integer() else str(x)


def statement(row: dict[str, Any], examples: list[dict[str, str]]) -> str | None:
    """The problem as Codeforces shows it: title, limits, legend, input, output, examples, note."""
    description = opt_text(row, "description")
    if description is None:
        return None
    parts = []
    title = opt_text(row, "title")
    if title:
        parts.append(title)
    limits = []
    if (t := as_float(row.get("time_limit"))) is not None:
        limits.append(f"time limit per test: {_fmt_number(t)} second{'s' if t != 1 else ''}")
    if (m := as_float(row.get("memory_limit"))) is not None:
        limits.append(f"memory limit per test: {_fmt_number(m)} megabytes")
    if limits:
        parts.append("\n".join(limits))
    parts.append(description.strip())
    for key, head in (("input_format", "Input"), ("output_format", "Output"), ("interaction_format", "Interaction")):
        if text := opt_text(row, key):
            parts.append(f"{head}\n{text.strip()}")
    if examples:
        shown = [f"Input\n{ex['input'].rstrip()}\nOutput\n{ex['output'].rstrip()}" for ex in examples]
        parts.append("Examples\n" + "\n\n".join(shown))
    if note := opt_text(row, "note"):
        parts.append(f"Note\n{note.strip()}")
    return "\n\n".join(parts)


@source("codeforces")
class Codeforces(CodeAdapter):
    """Codeforces (open-r1/codeforces): `id`, statement parts, `examples`, `official_tests`, limits, `rating`, `tags`.

    The prompt is the statement as Codeforces shows it (or the row's own `prompt`, as in the
    verifiable-prompts config); `official_tests` become a stdin test (the examples when there are
    none). Interactive problems get no stdin test (`meta.interactive`); problems with several valid
    outputs keep their `generated_checker` in `meta.checker`.
    """

    domain = "code"

    examples_as_tests: bool = Field(True, description="use the examples as tests when there are no official tests")
    max_tests: int | None = Field(None, ge=1, description="keep at most this many test cases")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        examples = io_pairs(row.get("examples"), "examples")
        prompt_text = opt_text(row, "prompt")
        if prompt_text is not None:
            prompt = prompt_text
        else:
            text = statement(row, examples)
            if text is None:
                raise SourceError("is missing (and the row has no 'prompt')", "description")
            prompt = self.code_prompt(text)
        cases = io_pairs(row.get("official_tests"), "official_tests")
        if not cases and self.examples_as_tests:
            cases = examples
        if self.max_tests is not None:
            cases = cases[: self.max_tests]
        interactive = bool(opt_text(row, "interaction_format"))
        tags = opt(row, "tags", list)
        meta = clean({
            "title": opt_text(row, "title"),
            "rating": row.get("rating"),
            "tags": [t for t in tags or () if isinstance(t, str) and t],
            "contest_id": opt_text(row, "contest_id"),
            "contest_name": opt_text(row, "contest_name"),
            "contest_type": opt_text(row, "contest_type"),
            "year": row.get("contest_start_year"),
            "index": opt_text(row, "index"),
            "time_limit_s": as_float(row.get("time_limit")),
            "memory_limit_mb": as_float(row.get("memory_limit")),
            "input_mode": opt_text(row, "input_mode"),
            "tests_complete": row.get("official_tests_complete"),
            "interactive": interactive or None,
            "checker": opt_text(row, "generated_checker"),
            "url": f"https://codeforces.com/problemset/problem/{row['contest_id']}/{row['index']}"
            if opt_text(row, "contest_id") and opt_text(row, "index") else None,
        })
        return self.record(
            at,
            key=row_key(row, "id"),
            prompt=prompt,
            reference={"tests": {"kind": "stdin", "cases": cases}} if cases and not interactive else None,
            meta=meta,
        )
