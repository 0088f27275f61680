"""OpenR1-Math-220k (open-r1/OpenR1-Math-220k): NuminaMath problems with DeepSeek-R1 generations."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import Adapter, answer_or_none, clean, opt, opt_text, row_key, split_think


def _nth(row: dict[str, Any], key: str, n: int) -> Any:
    """Item n of a per-generation list field (None when the list is shorter or absent)."""
    values = row.get(key)
    if values is None:
        return None
    if not isinstance(values, list):
        raise SourceError(f"expected a list with one entry per generation, got {type(values).__name__}", key)
    return values[n] if n < len(values) else None


@source("openr1-math")
class OpenR1Math(Adapter):
    """OpenR1-Math: `problem`, `solution`, `answer`, `generations` (with `<think>`), `correctness_math_verify`, ...

    Each generation becomes a response: the `<think>` part goes to `reasoning`, the rest to `text`;
    `finish_reasons[i]` to `finish_reason`; `correctness_math_verify[i]`, `correctness_llama[i]` and
    `is_reasoning_complete[i]` to the response's `meta` (correct_math_verify, correct_llama,
    reasoning_complete). `problem_type` goes to `labels.category`, `source` to `meta.origin`.
    """

    domain = "math"

    model: str | None = Field("DeepSeek-R1", description="model name recorded on each generation")
    include_generations: bool = Field(True, description="turn `generations` into responses")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        problem = need(row, "problem")
        answer = answer_or_none(opt(row, "answer", (str, int, float)))
        responses = []
        if self.include_generations:
            generations = opt(row, "generations", list) or []
            for n, generation in enumerate(generations):
                if not isinstance(generation, str):
                    raise SourceError(f"expected a string, got {type(generation).__name__}", f"generations[{n}]")
                reasoning, text = split_think(generation)
                finish = _nth(row, "finish_reasons", n)
                responses.append(clean({
                    "text": text,
                    "reasoning": reasoning,
                    "model": self.model,
                    "finish_reason": finish if isinstance(finish, str) else None,
                    "meta": clean({
                        "correct_math_verify": _nth(row, "correctness_math_verify", n),
                        "correct_llama": _nth(row, "correctness_llama", n),
                        "reasoning_complete": _nth(row, "is_reasoning_complete", n),
                    }),
                }) | {"text": text})
        return self.record(
            at,
            key=row_key(row, "uuid"),
            prompt=problem.strip(),
            reference=clean({"answer": answer, "solution": opt(row, "solution")}),
            labels=clean({"category": opt_text(row, "problem_type")}),
            responses=responses,
            meta=clean({
                "question_type": opt_text(row, "question_type"),
                "origin": opt_text(row, "source"),
                "correctness_count": row.get("correctness_count"),
            }),
        )
