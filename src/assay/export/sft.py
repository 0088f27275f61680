"""Export a run's kept records as an SFT dataset: one row per kept response, in the shape
training frameworks read (OpenAI `messages`, ShareGPT `conversations`, Alpaca
`instruction`/`output`), with the reasoning where they expect it.

Reasoning placement (`reasoning`):
- `think` (default): inside the assistant turn, `<think>\\n{reasoning}\\n</think>\\n\\n{answer}`
  (the DeepSeek-R1 / Qwen3 / OpenThoughts convention; the template is configurable). Sky-T1
  markers and a `reasoning` field are normalised to it; a response without reasoning keeps
  only its answer.
- `field`: the answer alone in the assistant turn and the reasoning beside it
  (`reasoning_content` in the assistant message, a `reasoning` column for the other formats).
- `none`: the answer alone.

Two passes over the run's output: the first learns the label columns and their types (so Parquet
and Hugging Face datasets get one typed schema), the second writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from assay.errors import AssayError
from assay.io.readers import dataset_files, read_rows
from assay.record import Record, Response, prompt_messages
from assay.rules.trace import REASONING_MARKERS, SOLUTION_MARKERS, Pair, parse_structure

Format = Literal["messages", "sharegpt", "alpaca"]
Placement = Literal["think", "field", "none"]
THINK_TEMPLATE = "<think>\n{reasoning}\n</think>\n\n{answer}"
FORMAT_COLUMNS = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "input", "output", "system", "history"),
}
META_COLUMNS = ("id", "record_id", "response_index", "source", "domain", "model")
SHAREGPT_ROLES = {"system": "system", "developer": "system", "user": "human", "assistant": "gpt", "tool": "observation"}


@dataclass
class RunInfo:
    """What the run directory says about itself."""

    path: Path
    files: list[Path]
    config_text: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def stage_entries(self) -> list[dict[str, Any]]:
        """The config's stages as {stage, label, params}."""
        from assay.config import normalise_stage_entry

        out = []
        for i, entry in enumerate(self.config.get("stages") or []):
            try:
                e = normalise_stage_entry(entry, i)
            except ValueError:
                continue
            out.append({"stage": e["stage"], "label": e.get("label"), "params": e.get("params") or {}})
        return out

    def markers(self) -> tuple[list[Pair], list[Pair]]:
        """The reasoning / solution markers the run's `rules` stage used (else the defaults)."""
        for entry in self.stage_entries():
            if entry["stage"] == "rules":
                p = entry["params"]
                return ([tuple(x) for x in p.get("reasoning_markers") or REASONING_MARKERS],  # type: ignore[misc]
                        [tuple(x) for x in p.get("solution_markers") or SOLUTION_MARKERS])
        return list(REASONING_MARKERS), list(SOLUTION_MARKERS)

    def decontamination(self) -> list[dict[str, Any]]:
        """Each `decontaminate` stage of the config: its label, benchmarks and what it removed."""
        found = []
        by_label = {s.get("stage"): s for s in self.stats.get("stages") or []}
        for entry in self.stage_entries():
            if entry["stage"] != "decontaminate":
                continue
            p = entry["params"]
            raw = p.get("benchmarks") or p.get("benchmark") or []
            items = raw if isinstance(raw, list) else [raw]
            names = [b if isinstance(b, str) else str(b.get("path") or b.get("name") or b) if isinstance(b, dict)
                     else str(b) for b in items]
            label = entry["label"] or entry["stage"]
            st = by_label.get(label) or {}
            found.append({"label": label, "benchmarks": names, "removed": st.get("records_rejected"),
                          "params": {k: v for k, v in p.items() if k not in ("benchmarks", "benchmark")}})
        return found


def open_run(path: str | Path) -> RunInfo:
    p = Path(path)
    if not p.is_dir():
        raise AssayError(f"'{path}' is not a folder; pass the run directory that `assay run --out` wrote")
    out = p / "output"
    if not out.is_dir():
        raise AssayError(f"'{path}' has no output/ folder: it is not an assay run directory (or the run never "
                         "finished a stage)")
    try:
        files = dataset_files(out)
    except AssayError:
        files = []
    info = RunInfo(p, files)
    cfg = p / "config.yaml"
    if cfg.exists():
        info.config_text = cfg.read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(info.config_text)
            info.config = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            info.config = {}
    stats = p / "stats.json"
    if stats.exists():
        try:
            info.stats = json.loads(stats.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            info.stats = {}
    return info


def iter_run_records(info: RunInfo) -> Iterator[Record]:
    for f in info.files:
        for row in read_rows(f):
            if row.error is None and isinstance(row.data, dict):
                yield row.data


# ---- rows ---------------------------------------------------------------------------------


@dataclass
class Renderer:
    """Turns one response of one record into a row of the chosen format."""

    fmt: Format = "messages"
    reasoning: Placement = "think"
    template: str = THINK_TEMPLATE
    system: str | None = None
    reasoning_markers: list[Pair] = field(default_factory=lambda: list(REASONING_MARKERS))
    solution_markers: list[Pair] = field(default_factory=lambda: list(SOLUTION_MARKERS))

    def __post_init__(self) -> None:
        if "{answer}" not in self.template or "{reasoning}" not in self.template:
            raise AssayError("the think template must contain {reasoning} and {answer}")

    def split(self, resp: Response) -> tuple[str | None, str]:
        field_reasoning = resp.get("reasoning")
        st = parse_structure(resp.get("text") or "", field_reasoning if isinstance(field_reasoning, str) else None,
                             self.reasoning_markers, self.solution_markers)
        reasoning = st.reasoning.strip() if st.reasoning and st.reasoning.strip() else None
        return reasoning, st.answer.strip()

    def assistant(self, resp: Response) -> tuple[str, str | None]:
        """(assistant content, reasoning kept beside it or None)."""
        reasoning, answer = self.split(resp)
        if self.reasoning == "think" and reasoning is not None:
            return self.template.replace("{reasoning}", reasoning).replace("{answer}", answer), None
        if self.reasoning == "field":
            return answer, reasoning
        return answer, None

    def conversation(self, rec: Record) -> tuple[str | None, list[tuple[str, str]]]:
        msgs = prompt_messages(rec)
        systems = [m["content"] for m in msgs if m.get("role") in ("system", "developer") and m.get("content")]
        turns = [(m["role"], m["content"]) for m in msgs if m.get("role") not in ("system", "developer")]
        if self.system:
            systems.insert(0, self.system)
        return ("\n\n".join(systems) if systems else None), turns

    def row(self, rec: Record, index: int, resp: Response) -> dict[str, Any]:
        system, turns = self.conversation(rec)
        content, beside = self.assistant(resp)
        row: dict[str, Any] = {"id": f"{rec.get('id')}#{index}", "record_id": rec.get("id"), "response_index": index}
        if self.fmt == "messages":
            msgs = ([{"role": "system", "content": system}] if system else [])
            msgs += [{"role": r, "content": c} for r, c in turns]
            msgs.append({"role": "assistant", "content": content})
            if self.reasoning == "field":
                for m in msgs:  # one struct type for every message
                    m["reasoning_content"] = beside if m is msgs[-1] else None
            row["messages"] = msgs
        elif self.fmt == "sharegpt":
            conv = ([{"from": "system", "value": system}] if system else [])
            conv += [{"from": SHAREGPT_ROLES.get(r, r), "value": c} for r, c in turns]
            conv.append({"from": "gpt", "value": content})
            row["conversations"] = conv
            if self.reasoning == "field":
                row["reasoning"] = beside
        else:
            users = [i for i, (r, _) in enumerate(turns) if r == "user"]
            last = users[-1] if users else len(turns) - 1
            history, pending = [], None
            for r, c in turns[:last]:
                if r == "user":
                    pending = c
                elif r == "assistant" and pending is not None:
                    history.append([pending, c])
                    pending = None
            row.update(instruction=turns[last][1] if turns else "", input="", output=content,
                       system=system or "", history=history)
            if self.reasoning == "field":
                row["reasoning"] = beside
        row.update(source=rec.get("source"), domain=rec.get("domain"), model=resp.get("model"))
        return row


# ---- labels -------------------------------------------------------------------------------


def value_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def column_type(kinds: set[str]) -> str:
    """One type for a label column from the kinds of its values."""
    kinds = kinds - {"null"}
    if not kinds:
        return "str"
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds <= {"int", "float"}:
        return "float"
    return "json"


def label_columns(kinds: dict[str, set[str]], reserved: set[str]) -> dict[str, tuple[str, str]]:
    """label -> (column name, type); a label named like a row column gets a `label_` prefix."""
    return {k: (f"label_{k}" if k in reserved else k, column_type(v)) for k, v in kinds.items()}


def convert(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if kind == "float":
        return float(value)
    if kind == "str" and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return value


def arrow_schema(fmt: Format, placement: Placement, labels: dict[str, tuple[str, str]]) -> Any:
    import pyarrow as pa

    s = pa.string()
    cols: list[Any] = [pa.field("id", s), pa.field("record_id", s), pa.field("response_index", pa.int64())]
    if fmt == "messages":
        msg = [pa.field("role", s), pa.field("content", s)]
        if placement == "field":
            msg.append(pa.field("reasoning_content", s))
        cols.append(pa.field("messages", pa.list_(pa.struct(msg))))
    elif fmt == "sharegpt":
        cols.append(pa.field("conversations", pa.list_(pa.struct([pa.field("from", s), pa.field("value", s)]))))
        if placement == "field":
            cols.append(pa.field("reasoning", s))
    else:
        cols += [pa.field(c, s) for c in ("instruction", "input", "output", "system")]
        cols.append(pa.field("history", pa.list_(pa.list_(s))))
        if placement == "field":
            cols.append(pa.field("reasoning", s))
    cols += [pa.field(c, s) for c in ("source", "domain", "model")]
    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": s, "json": s}
    cols += [pa.field(name, types[kind]) for name, kind in labels.values()]
    return pa.schema(cols)


def reserved_columns(fmt: Format, placement: Placement) -> set[str]:
    extra = {"reasoning"} if placement == "field" else set()
    return set(META_COLUMNS) | set(FORMAT_COLUMNS[fmt]) | extra
