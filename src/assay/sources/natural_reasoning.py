"""Natural Reasoning (facebook/natural_reasoning): open-ended reasoning questions with reference answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import Adapter, answer_or_none, clean, opt, row_key, split_think


@source("natural-reasoning")
class NaturalReasoning(Adapter):
    """Natural Reasoning: `question`, `reference_answer`, `responses` (list of `response_model`, `response`).

    `reference_answer` (often empty) is `reference.answer`; each response becomes a response with its model.
    """

    domain = "science"

    record_domain: Literal["math", "science", "chat"] = Field("science", description="domain of the records")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        question = need(row, "question")
        responses = []
        for n, item in enumerate(opt(row, "responses", list) or ()):
            if isinstance(item, str):
                item = {"response": item}
            if not isinstance(item, dict):
                raise SourceError(f"expected an object with 'response', got {type(item).__name__}",
                                  f"responses[{n}]")
            text = item.get("response")
            if text is None:
                continue
            if not isinstance(text, str):
                raise SourceError(f"expected a string, got {type(text).__name__}", f"responses[{n}].response")
            reasoning, text = split_think(text)
            model = item.get("response_model")
            responses.append(clean({"text": text, "reasoning": reasoning,
                                    "model": model if isinstance(model, str) else None}) | {"text": text})
        return self.record(
            at,
            key=row_key(row),
            domain=self.record_domain,
            prompt=question.strip(),
            reference=clean({"answer": answer_or_none(opt(row, "reference_answer", (str, int, float)))}),
            responses=responses,
        )
