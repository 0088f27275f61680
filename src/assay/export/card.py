"""The dataset card (README.md) written next to an exported dataset: what it is, its shape, the
pipeline config, counts per stage and per source, label distributions, decontamination."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from assay.export.sft import RunInfo, value_kind

CARD_MARK = "<!-- written by assay export -->"
MAX_DISTINCT = 5000  # a label with more distinct values than this is summarised, not listed
TOP_VALUES = 15


@dataclass
class LabelStats:
    kinds: set[str] = field(default_factory=set)
    numbers: list[float] = field(default_factory=list)
    values: Counter[str] = field(default_factory=Counter)
    present: int = 0  # rows with a non-null value
    overflow: bool = False

    def add(self, value: Any, rows: int) -> None:
        kind = value_kind(value)
        self.kinds.add(kind)
        if kind == "null":
            return
        self.present += rows
        if kind in ("int", "float"):
            self.numbers.extend([float(value)] * rows)
        elif not self.overflow:
            key = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
            self.values[key[:80]] += rows
            if len(self.values) > MAX_DISTINCT:
                self.overflow = True


@dataclass
class Summary:
    """Counts gathered over the exported rows in the first pass."""

    records: int = 0
    records_without_responses: int = 0
    rows: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    source_records: Counter[str] = field(default_factory=Counter)
    domains: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    labels: dict[str, LabelStats] = field(default_factory=dict)

    def add_record(self, rec: dict[str, Any]) -> None:
        responses = rec.get("responses") or []
        self.records += 1
        if not responses:
            self.records_without_responses += 1
            return
        source = str(rec.get("source") or "unknown")
        self.source_records[source] += 1
        self.sources[source] += len(responses)
        self.domains[str(rec.get("domain") or "unknown")] += len(responses)
        self.rows += len(responses)
        for resp in responses:
            self.models[str(resp.get("model") or "unknown")] += 1
        labels = rec.get("labels") if isinstance(rec.get("labels"), dict) else {}
        for key, value in labels.items():
            self.labels.setdefault(key, LabelStats()).add(value, len(responses))

    def label_kinds(self) -> dict[str, set[str]]:
        return {k: v.kinds for k, v in self.labels.items()}


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows]
    return "\n".join(out)


def _numbers(xs: list[float]) -> str:
    if not xs:
        return ""
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    lo, hi = xs[0], xs[-1]
    line = (f"min {lo:g}, 25% {q[0]:g}, median {q[1]:g}, 75% {q[2]:g}, max {hi:g}, "
            f"mean {statistics.fmean(xs):.4g} over {len(xs):,} rows")
    if hi > lo:
        bins = 10
        counts = [0] * bins
        for x in xs:
            counts[min(bins - 1, int((x - lo) / (hi - lo) * bins))] += 1
        width = (hi - lo) / bins
        hist = ", ".join(f"[{lo + i * width:.3g}, {lo + (i + 1) * width:.3g}): {c}" for i, c in enumerate(counts) if c)
        line += f"\n  histogram: {hist}"
    return line


def _stage_rows(stats: dict[str, Any]) -> list[list[Any]]:
    rows = []
    inp = stats.get("input") or {}
    if inp:
        top = next(iter(inp.get("invalid_reasons") or {}), "")
        rows.append(["read", inp.get("rows", ""), inp.get("records", ""), inp.get("invalid", ""),
                     inp.get("responses", ""), inp.get("responses", ""), top])
    for st in stats.get("stages") or []:
        top = next(iter(st.get("rejected") or {}), "")
        rows.append([st.get("stage"), st.get("records_in"), st.get("records_out"), st.get("records_rejected"),
                     st.get("responses_in"), st.get("responses_out"), top])
    return rows


def render_card(info: RunInfo, summary: Summary, *, fmt: str, placement: str, template: str, data_files: str,
                columns: list[str], label_cols: dict[str, tuple[str, str]], loader: str) -> str:
    name = str(info.config.get("name") or info.stats.get("pipeline") or info.path.name)
    tags = ["assay", "sft", "reasoning", fmt]
    front = ["---", f"pretty_name: {json.dumps(name)}", "tags:"] + [f"- {t}" for t in tags]
    front += ["configs:", "- config_name: default", "  data_files:", "  - split: train",
              f"    path: {json.dumps(data_files)}", "---", ""]
    parts = ["\n".join(front), CARD_MARK, f"# {name}", ""]
    parts.append(f"A supervised fine-tuning dataset of {summary.rows:,} rows (one per kept response) from "
                 f"{summary.records - summary.records_without_responses:,} problems, exported by "
                 f"assay from the run `{info.path.name}`.")
    if summary.records_without_responses:
        parts.append(f"{summary.records_without_responses:,} kept records carried no response and are not exported.")
    where = {"think": f"inside the assistant turn, as `{template!r}`",
             "field": "beside the answer (`reasoning_content` in the assistant message, else a `reasoning` column)",
             "none": "left out (answers only)"}[placement]
    parts += ["", "## Format", "",
              f"- format: `{fmt}`; columns: {', '.join(f'`{c}`' for c in columns)}",
              f"- reasoning: {where}",
              f"- load: `{loader}`", ""]
    if label_cols:
        parts.append("Label columns (from the records' `labels`): " +
                     ", ".join(f"`{col}` ({kind})" for col, kind in label_cols.values()) + ".")
        parts.append("")

    parts += ["## Counts per stage", ""]
    stage_rows = _stage_rows(info.stats)
    if stage_rows:
        parts.append(_table(["stage", "records in", "records out", "rejected", "responses in", "responses out",
                             "top reason"], stage_rows))
    else:
        parts.append("No stats.json in the run directory.")
    out = info.stats.get("output") or {}
    if out:
        parts += ["", f"Kept after the last stage: {out.get('records', 0):,} records, {out.get('responses', 0):,} "
                      "responses."]

    parts += ["", "## Counts per source", "",
              _table(["source", "records", "rows"],
                     [[s, summary.source_records[s], n] for s, n in summary.sources.most_common()]),
              "", "Per domain: " + (", ".join(f"{d} {n:,}" for d, n in summary.domains.most_common()) or "none") + ".",
              "Per model: " + (", ".join(f"{m} {n:,}" for m, n in summary.models.most_common(10)) or "none") + ".", ""]

    parts += ["## Label distributions", ""]
    if not summary.labels:
        parts.append("The records carry no labels.")
    for key in sorted(summary.labels):
        st = summary.labels[key]
        missing = summary.rows - st.present
        parts.append(f"- `{key}`" + (f" ({missing:,} rows without it)" if missing else ""))
        if st.numbers:
            parts.append("  " + _numbers(st.numbers))
        if st.values:
            shown = ", ".join(f"{v} {n:,}" for v, n in st.values.most_common(TOP_VALUES))
            more = len(st.values) - TOP_VALUES
            parts.append(f"  {shown}" + (f", ... {more:,} more values" if more > 0 else "") +
                         (" (too many distinct values to count them all)" if st.overflow else ""))
    parts.append("")

    parts += ["## Decontamination", ""]
    decon = info.decontamination()
    if not decon:
        parts.append("The pipeline has no `decontaminate` stage: the prompts were not checked against benchmarks.")
    for d in decon:
        removed = f"; {d['removed']:,} records removed" if isinstance(d["removed"], int) else ""
        parts.append(f"- stage `{d['label']}`{removed}; benchmarks: " +
                     (", ".join(f"`{b}`" for b in d["benchmarks"]) or "none named"))
        if d["params"]:
            parts.append(f"  settings: `{json.dumps(d['params'], sort_keys=True, default=str)}`")
    parts += ["", "## Pipeline config", ""]
    if info.config_text:
        parts += ["```yaml", info.config_text.rstrip(), "```"]
    else:
        parts.append("No config.yaml in the run directory.")
    return "\n".join(parts) + "\n"
