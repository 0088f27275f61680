"""The LLM labelling request: what the model is asked, and how its JSON answer is read.

One request per record asks for a category from a fixed list, a difficulty from 1 to 10 and a
quality from 1 to 5 (the AM team labelled category and difficulty this way). The JSON schema
constrains servers that support structured output; the parser still checks every field, so a
free-running model's answer is held to the same contract.
"""

from __future__ import annotations

import json
import re
from typing import Any

from assay.select.metadata import slug

DEFAULT_CATEGORIES = [
    "algebra", "geometry", "number_theory", "combinatorics", "probability_statistics", "calculus_analysis",
    "arithmetic_word_problem", "algorithms", "data_structures", "software_engineering", "physics", "chemistry",
    "biology", "logic_puzzle", "writing", "general_knowledge", "other",
]

SYSTEM = ("You label problems for a training-data pipeline. Read the problem, do not solve it, and answer with "
          "one JSON object and nothing else.")

TEMPLATE = """Label this problem.

<problem>
{problem}
</problem>

Answer with a JSON object with exactly these keys:
- "category": one of {categories}
- "difficulty": an integer from 1 to 10 (1: a one-step exercise; 4: a typical high-school or easy interview \
problem; 7: a hard olympiad-qualifier or contest problem; 10: among the hardest olympiad or contest problems)
- "quality": an integer from 1 to 5 (5: clear, complete and self-contained; 3: answerable but sloppy or \
ambiguous; 1: garbled, missing information, or not a problem)
{extra}"""

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.I)


class LabelParseError(ValueError):
    """The answer is not the JSON object asked for."""


def messages(problem: str, categories: list[str], instructions: str | None, max_chars: int) -> list[dict[str, str]]:
    if len(problem) > max_chars:
        problem = problem[:max_chars] + "\n[... truncated]"
    extra = f"\n{instructions.strip()}\n" if instructions else ""
    user = TEMPLATE.format(problem=problem, categories=", ".join(categories), extra=extra)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def schema(categories: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": categories},
            "difficulty": {"type": "integer", "enum": list(range(1, 11))},
            "quality": {"type": "integer", "enum": list(range(1, 6))},
        },
        "required": ["category", "difficulty", "quality"],
        "additionalProperties": False,
    }


def json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text` (code fences and surrounding prose allowed)."""
    text = _FENCE.sub("", text.strip())
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise LabelParseError(f"no JSON object in the answer: {text[:120]!r}")


def _integer(data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data.get(key)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(?:\.0+)?\s*", value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise LabelParseError(f"'{key}' must be an integer from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise LabelParseError(f"'{key}' must be from {low} to {high}, got {value!r}")
    return int(value)


def parse(text: str, categories: list[str]) -> dict[str, Any]:
    """Labels from the model's answer: category (one of `categories`), difficulty in [0, 1], quality 1-5."""
    data = json_object(text)
    raw = data.get("category")
    if not isinstance(raw, str) or not raw.strip():
        raise LabelParseError(f"'category' must be one of the list, got {raw!r}")
    allowed = {slug(c): c for c in categories}
    category = slug(raw)
    if category not in allowed:
        raise LabelParseError(f"category {raw!r} is not one of {', '.join(categories)}")
    level = _integer(data, "difficulty", 1, 10)
    quality = _integer(data, "quality", 1, 5)
    return {"category": category, "difficulty": round((level - 0.5) / 10, 4), "difficulty_from": "llm",
            "llm_difficulty": level, "quality": quality}
