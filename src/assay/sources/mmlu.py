"""MMLU-style multiple choice (cais/mmlu, MMLU-Pro, Qwen's mmlu_stem, lukaemon/mmlu A-D columns)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, source
from assay.sources.common import LETTERS, Adapter, clean, opt_text, row_key, text_list


def _choices(row: dict[str, Any]) -> tuple[str, list[str]]:
    for key in ("choices", "options"):
        if row.get(key) is not None:
            values = row[key]
            if isinstance(values, list):
                values = [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in values]
            return key, text_list(values, key)
    columns = [row[c] for c in "ABCDEFGHIJ" if c in row]
    if columns:
        return "A", text_list([str(v) if isinstance(v, (int, float)) else v for v in columns], "A")
    raise SourceError("is missing (a multiple-choice row needs 'choices', 'options' or columns A-D)", "choices")


def answer_index(row: dict[str, Any], choices: list[str]) -> int:
    """The correct option's index from `answer` / `answer_index` / `target`: an int, digit, letter or option text."""
    n = len(choices)
    for key in ("answer_index", "answer", "target", "label"):
        value = row.get(key)
        if value is None:
            continue
        index: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            index = value
        elif isinstance(value, str):
            text = value.strip().strip("()").rstrip(".")
            if text.isdigit():
                index = int(text)
            elif len(text) == 1 and text.upper() in LETTERS[:n]:
                index = LETTERS.index(text.upper())
            elif value.strip() in (c.strip() for c in choices):
                index = [c.strip() for c in choices].index(value.strip())
        if index is None:
            raise SourceError(f"expected an option index or letter, got {value!r}", key)
        if not 0 <= index < n:
            raise SourceError(f"option {index} is out of range for {n} choices", key)
        return index
    raise SourceError("is missing", "answer")


@source("mmlu")
class MMLU(Adapter):
    """Multiple choice (MMLU-style): `question`, `choices` (or `options`, or columns A-D), `answer` (index or letter).

    The prompt is the question followed by lettered options (`A. ...`); `reference.answer` is the
    letter, `meta.choices` the option texts, `meta.answer_text` the correct one; the subject
    (`subject`, `type` or `category`) goes to `labels.category`.
    """

    domain = "science"

    record_domain: Literal["math", "science", "chat"] = Field("science", description="domain of the records")
    instruction: str | None = Field(None, description="a line after the options, e.g. 'Answer with the letter "
                                    "of the correct option.'")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        question = opt_text(row, "question") or opt_text(row, "input")
        if question is None:
            raise SourceError("is missing", "question")
        _, choices = _choices(row)
        if len(choices) < 2:
            raise SourceError(f"needs at least 2 options, got {len(choices)}", "choices")
        if len(choices) > len(LETTERS):
            raise SourceError(f"has {len(choices)} options, more than {len(LETTERS)} letters", "choices")
        index = answer_index(row, choices)
        options = "\n".join(f"{LETTERS[i]}. {c.strip()}" for i, c in enumerate(choices))
        prompt = f"{question.strip()}\n\n{options}"
        if self.instruction:
            prompt += f"\n\n{self.instruction}"
        subject = opt_text(row, "subject") or opt_text(row, "type") or opt_text(row, "category")
        return self.record(
            at,
            key=row_key(row),
            domain=self.record_domain,
            prompt=prompt,
            reference=clean({"answer": LETTERS[index], "solution": opt_text(row, "cot_content")}),
            labels=clean({"category": subject}),
            meta=clean({"choices": choices, "answer_text": choices[index], "subject": subject,
                        "origin": opt_text(row, "src")}),
        )
