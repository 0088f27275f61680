"""`assay export DIR --format messages|sharegpt|alpaca --to OUT`: a run's kept responses as an SFT
dataset (JSONL, Parquet or a Hugging Face dataset folder) plus a dataset card README.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from assay.errors import AssayError
from assay.export.card import CARD_MARK, Summary, render_card
from assay.export.sft import (
    FORMAT_COLUMNS,
    THINK_TEMPLATE,
    Format,
    Placement,
    Renderer,
    arrow_schema,
    convert,
    iter_run_records,
    label_columns,
    open_run,
    reserved_columns,
)
from assay.export.typed import is_folder_target, open_typed_writer

HF_FILES = {"state.json", "dataset_info.json", "README.md", "data-00000-of-00001.arrow"}


@dataclass
class ExportResult:
    rows: int
    records: int
    out: Path
    card: Path


def card_path(out: Path) -> Path:
    """README.md beside the data; never over a README that assay did not write, nor over the
    card of another export in the same folder (then `<name>.README.md`)."""
    if is_folder_target(out):
        return out / "README.md"
    card = out.parent / "README.md"
    if card.exists():
        text = card.read_text(encoding="utf-8", errors="replace")
        if CARD_MARK not in text or f"path: {json.dumps(out.name)}" not in text:
            return out.parent / f"{_stem(out)}.README.md"
    return card


def _stem(path: Path) -> str:
    for suffix in (".jsonl.gz", ".jsonl", ".json", ".parquet"):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _check_target(out: Path) -> None:
    if is_folder_target(out):
        if out.exists() and not out.is_dir():
            raise AssayError(f"'{out}' is a file; a Hugging Face dataset export needs a folder "
                             "(or name the output .jsonl / .parquet)")
        if out.is_dir():
            foreign = [p.name for p in out.iterdir() if p.name not in HF_FILES]
            if foreign:
                raise AssayError(f"'{out}' already holds other files ({', '.join(sorted(foreign)[:3])}); "
                                 "export into a new or empty folder")
    elif out.is_dir():
        raise AssayError(f"'{out}' is a folder; name a .jsonl or .parquet file, or a folder for a Hugging Face dataset")


def passing(resp: dict[str, object]) -> bool:
    checks = resp.get("checks")
    return not isinstance(checks, dict) or all(not isinstance(c, dict) or c.get("passed") for c in checks.values())


def export_run(run_dir: str | Path, out: str | Path, fmt: Format = "messages", reasoning: Placement = "think",
               template: str = THINK_TEMPLATE, system: str | None = None, only_passing: bool = False) -> ExportResult:
    """Write the kept responses of a run as an SFT dataset at `out` and its card beside it.
    only_passing: also leave out responses that carry a failed check (kept by `drop: false`)."""
    info = open_run(run_dir)
    out = Path(out)
    _check_target(out)
    markers, solutions = info.markers()
    render = Renderer(fmt, reasoning, template, system, markers, solutions)

    def records() -> Iterator[dict[str, Any]]:
        for rec in iter_run_records(info):
            if only_passing and rec.get("responses"):
                rec["responses"] = [r for r in rec["responses"] if passing(r)]
            yield rec

    summary = Summary()
    for rec in records():
        summary.add_record(rec)
    labels = label_columns(summary.label_kinds(), reserved_columns(fmt, reasoning))
    schema = arrow_schema(fmt, reasoning, labels)

    description = f"assay export of {info.path.name} ({fmt})"
    writer = open_typed_writer(out, schema, description)
    try:
        for rec in records():
            rec_labels = rec.get("labels") if isinstance(rec.get("labels"), dict) else {}
            for i, resp in enumerate(rec.get("responses") or []):
                row = render.row(rec, i, resp)
                for key, (col, kind) in labels.items():
                    row[col] = convert(rec_labels.get(key), kind)
                writer.write(row)
    except BaseException:
        writer.abort()
        raise
    writer.commit()

    card = card_path(out)
    if is_folder_target(out):
        data_files, loader = "data-*.arrow", f'datasets.load_from_disk("{out}")'
    else:
        kind = "parquet" if out.name.endswith(".parquet") else "json"
        data_files, loader = out.name, f'datasets.load_dataset("{kind}", data_files="{out}", split="train")'
    text = render_card(info, summary, fmt=fmt, placement=reasoning, template=template, data_files=data_files,
                       columns=list(schema.names), label_cols=labels, loader=loader)
    card.write_text(text, encoding="utf-8")
    return ExportResult(summary.rows, summary.records, out, card)


@click.command()
@click.argument("run_dir", metavar="DIR")
@click.option("--format", "fmt", type=click.Choice(list(FORMAT_COLUMNS)), default="messages", show_default=True,
              help="row shape: OpenAI messages, ShareGPT conversations, or Alpaca instruction/output")
@click.option("--to", "out", required=True, type=click.Path(),
              help="OUT.jsonl, OUT.parquet, or a folder for a Hugging Face dataset (datasets.load_from_disk)")
@click.option("--reasoning", type=click.Choice(["think", "field", "none"]), default="think", show_default=True,
              help="reasoning inside the assistant turn (<think>...</think>), beside it, or left out")
@click.option("--think-template", default=THINK_TEMPLATE, show_default=True,
              help="how reasoning and answer are joined with --reasoning think ({reasoning}, {answer})")
@click.option("--system", default=None, help="a system prompt to put first in every conversation")
@click.option("--only-passing", is_flag=True, help="leave out responses with a failed check (kept by drop: false)")
def export(run_dir: str, fmt: Format, out: str, reasoning: Placement, think_template: str, system: str | None,
           only_passing: bool) -> None:
    """Export the kept responses of run directory DIR as an SFT dataset, with a dataset card."""
    from rich.console import Console

    from assay.cli import friendly

    @friendly
    def go() -> None:
        tpl = think_template.replace("\\n", "\n").replace("\\t", "\t")  # escapes typed in a shell
        from assay.runner.rundir import local_run

        local = local_run(run_dir)  # a run on an object store is read from this machine's copy
        if not local.is_dir():
            raise AssayError(f"run directory '{run_dir}' does not exist")
        result = export_run(local, Path(out), fmt, reasoning, tpl, system, only_passing)
        Console().print(f"exported {result.rows:,} rows from {result.records:,} records -> {result.out}\n"
                        f"dataset card -> {result.card}")

    go()
