"""Benchmark files for decontamination: JSONL / JSON / Parquet rows with a problem text.

The text field is detected per file (problem, question, prompt, text, ... or the user turns of
`messages`) unless one is configured; items keep their row index and, when the file has one,
their id, so a rejection can name exactly which benchmark item a prompt matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assay.errors import ConfigError

TEXT_FIELDS = ("problem", "question", "prompt", "text", "content", "instruction", "input", "query")
ID_FIELDS = ("id", "task_id", "unique_id", "problem_id", "question_id", "idx")


@dataclass(frozen=True, slots=True)
class Item:
    benchmark: str  # the file, as configured (or folder/file for a folder)
    index: int  # 0-based row of the file
    item_id: str | None
    text: str


def _messages_text(value: Any) -> str | None:
    """The user turns of a chat (`messages` with role/content, or `conversations` with from/value)."""
    if not isinstance(value, list):
        return None
    texts = []
    for m in value:
        if not isinstance(m, dict):
            return None
        if (m.get("role") or m.get("from")) in ("user", "human"):
            t = m.get("content", m.get("value"))
            if isinstance(t, str):
                texts.append(t)
    return "\n\n".join(texts) or None


def detect_field(row: dict[str, Any]) -> str | None:
    for name in TEXT_FIELDS:
        if isinstance(row.get(name), str) and row[name].strip():
            return name
    for name in ("messages", "conversations"):
        if _messages_text(row.get(name)):
            return name
    return None


def _text(row: dict[str, Any], field: str) -> str | None:
    value = row.get(field)
    if isinstance(value, str):
        return value if value.strip() else None
    return _messages_text(value)


def _item_id(row: dict[str, Any]) -> str | None:
    for name in ID_FIELDS:
        value = row.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
    return None


def load_file(path: Path, name: str, text_field: str | None) -> list[Item]:
    from assay.io.readers import read_rows

    items: list[Item] = []
    field = text_field
    index = -1
    for row in read_rows(path):
        index += 1
        if row.error is not None:
            raise ConfigError(f"benchmark {name}: line {row.line} cannot be read ({row.error}); fix or remove it")
        data = row.data
        if not isinstance(data, dict):
            raise ConfigError(f"benchmark {name}: line {row.line} is not a JSON object")
        if field is None:
            field = detect_field(data)
            if field is None:
                raise ConfigError(f"benchmark {name}: no text field found (looked for {', '.join(TEXT_FIELDS)}, "
                                  f"messages); the rows have {', '.join(sorted(data)) or 'no fields'}; "
                                  "set text_field")
        elif field not in data and text_field is not None:
            raise ConfigError(f"benchmark {name}: line {row.line} has no field {field!r} "
                              f"(it has {', '.join(sorted(data))})")
        text = _text(data, field)
        if text is not None:
            items.append(Item(name, index, _item_id(data), text))
    return items


def load_benchmarks(paths: list[str], text_field: str | None = None) -> list[Item]:
    """All items of the configured benchmark files (a folder means every data file in it)."""
    from assay.errors import AssayError
    from assay.io.readers import dataset_files

    items: list[Item] = []
    for spec in paths:
        p = Path(spec).expanduser()
        if not p.exists():
            raise ConfigError(f"benchmark file '{spec}' does not exist")
        try:
            files = dataset_files(p)
        except AssayError as exc:
            raise ConfigError(f"benchmark '{spec}': {exc}") from None
        for f in files:
            items.extend(load_file(f, short_name(f), text_field))
    return items


def short_name(path: Path) -> str:
    """A benchmark's name in checks and stats: its folder and file name (`math500/test.jsonl`),
    short enough to read in a report, specific enough to find the file."""
    return "/".join(path.resolve().parts[-2:])
