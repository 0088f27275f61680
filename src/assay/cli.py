"""The `assay` command line. Errors are one sentence (exit 2), never a bare traceback."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assay import __version__
from assay.errors import AssayError
from assay.runner.rundir import RunDir, is_remote, local_run

# Without a terminal (logs, CI) rich assumes 80 columns, too narrow for the summary table.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn assay's errors into one clear line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AssayError as exc:
            trace = getattr(exc, "trace", None)
            hint = ""
            if trace:
                log = Path(tempfile.gettempdir()) / "assay-last-error.log"
                log.write_text(trace)
                hint = f" (traceback in {log})"
            err_console.print(f"[bold red]error:[/] {exc}{hint}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: rerun the same command to resume")
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="assay")
def main() -> None:
    """assay: turn raw reasoning prompts into a verified SFT dataset."""


# ---- run --------------------------------------------------------------------------------------


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, help="run directory: a path, or a URL (s3://, gs://, az://)")
@click.option("--fresh", is_flag=True, help="start over instead of resuming")
@click.option("--workers", type=int, default=None, help="worker processes (default: config, else all cores)")
@click.option("--engine", type=click.Choice(["local", "ray"]), default=None, help="execution engine")
@click.option("--address", default=None, help="Ray cluster address (ray://host:10001 or auto)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars or summary")
@click.option("--json-logs", is_flag=True, help="machine-readable progress on stderr")
@click.option("--no-report", is_flag=True, help="skip writing DIR/report.html at the end")
@friendly
def run(pipeline: str, out: str, fresh: bool, workers: int | None, engine: str | None, address: str | None,
        quiet: bool, json_logs: bool, no_report: bool) -> None:
    """Run PIPELINE (YAML) into the run directory OUT; rerunning the same command resumes."""
    from assay.config import load_config
    from assay.runner.pipeline import Runner
    from assay.runner.progress import Hub

    cfg = load_config(pipeline)
    if engine:
        cfg.engine = engine  # type: ignore[assignment]
    hub = Hub(quiet=quiet, json_logs=json_logs, console=err_console)
    eng = _engine(cfg.engine, address, workers or cfg.workers, hub)
    # an engine may bring its own runner (the Ray engine runs async and main stages in actors)
    runner_cls = getattr(eng, "runner_class", None) or Runner
    runner = runner_cls(cfg, out, hub=hub, engine=eng, workers=workers)
    result = runner.run(fresh=fresh, config_text=Path(pipeline).read_text(encoding="utf-8"))
    report = result.run_dir / "report.html"
    rd = RunDir(result.location or result.run_dir)
    if no_report:
        report.unlink(missing_ok=True)  # never leave a report of an earlier state
        if rd.remote is not None:
            rd.remote.rm(report)
    else:
        from assay.report.build import build_report

        build_report(result.run_dir)
        rd.push(report)
    if json_logs:
        import json

        sys.stderr.write(json.dumps({"event": "run done", "out": rd.location,
                                     "output": result.stats["output"]}) + "\n")
    elif not quiet:
        print_summary(result.stats, result.run_dir, rd.location)


class _Url(str):
    """A URL that joins like a path in messages (`url / "output"`)."""

    def __truediv__(self, name: str) -> _Url:
        return _Url(f"{self.rstrip('/')}/{name}")


def _engine(name: str, address: str | None, workers: int | None, hub: Any) -> Any:
    if name == "ray":
        try:
            from assay.engines.ray_engine import RayEngine  # type: ignore[import-not-found]
        except ImportError as exc:
            raise AssayError(f"the ray engine is not available ({exc}); install assay[ray]") from None
        return RayEngine(address=address, workers=workers, hub=hub)
    return None


def print_summary(stats: dict[str, Any], local: Path, location: str | None = None) -> None:
    """The funnel table and where the results are (`location`: the run directory as named, a URL
    for a run on an object store; `local`: this machine's folder)."""
    run_dir: Any = _Url(location) if location and is_remote(location) else Path(location or local)
    table = Table(title=f"assay run: {stats['pipeline']}", title_justify="left")
    for col in ("stage", "in", "out", "rejected", "resp in", "resp out", "top reason", "time"):
        table.add_column(col, justify="left" if col in ("stage", "top reason") else "right",
                         overflow="ellipsis", no_wrap=True, max_width=40 if col == "top reason" else None)
    inp = stats["input"]
    top_invalid = next(iter(inp["invalid_reasons"]), "")
    table.add_row("read", f"{inp['rows']:,}", f"{inp['records']:,}", f"{inp['invalid']:,}",
                  f"{inp['responses']:,}", f"{inp['responses']:,}", top_invalid[:40], f"{inp['seconds']:.1f}s")
    for st in stats["stages"]:
        rejected = st["records_rejected"] + st["responses_rejected"]
        # the reason itself, rather than its consequence for records left with no response
        top = next((k for k in st["rejected"] if not k.endswith("no response passed")), next(iter(st["rejected"]), ""))
        table.add_row(st["stage"], f"{st['records_in']:,}", f"{st['records_out']:,}", f"{rejected:,}",
                      f"{st['responses_in']:,}", f"{st['responses_out']:,}", top[:40], f"{st['seconds']:.1f}s")
    console.print(table)
    out = stats["output"]
    console.print(f"[bold]kept[/] {out['records']:,} records, {out['responses']:,} responses -> {run_dir / 'output'}")
    console.print(f"rejected -> {run_dir / 'rejected'}    stats -> {run_dir / 'stats.json'}")
    if inp["invalid"]:
        console.print(f"[yellow]{inp['invalid']:,} unreadable input rows[/] -> {run_dir / 'invalid' / 'invalid.jsonl'}")
    if (local / "report.html").exists():
        console.print(f"report -> {run_dir / 'report.html'}"
                      + (f"  (this machine's copy: {local / 'report.html'})" if isinstance(run_dir, _Url) else ""))
    console.print(f"wall {stats['wall_seconds']:.1f}s, {stats['records_per_s'] or 0:,.0f} rows/s")


# ---- apply ------------------------------------------------------------------------------------


def parse_sets(sets: tuple[str, ...], model: Any) -> dict[str, Any]:
    """`--set a.b=1 --set xs=a,b` -> {"a": {"b": 1}, "xs": ["a", "b"]} (values read as YAML)."""
    params: dict[str, Any] = {}
    for item in sets:
        if "=" not in item:
            raise AssayError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        top = key.split(".")[0]
        field = getattr(model, "model_fields", {}).get(top)
        if field is not None and "." not in key and isinstance(value, str) and _is_list_type(field.annotation):
            value = [v.strip() for v in value.split(",") if v.strip()]
        node = params
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AssayError(f"--set {key}: '{part}' is both a value and a group")
        node[parts[-1]] = value
    return params


def _source_class(name: str) -> Any:
    from assay.sources import sources as all_sources

    known = all_sources()
    if name not in known:
        raise AssayError(f"unknown source {name!r}; known sources: {', '.join(known)}")
    return known[name]


def _is_list_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set):
        return True
    return any(_is_list_type(a) for a in typing.get_args(annotation)) if origin is not None else False


@main.command()
@click.argument("stage_name", metavar="STAGE")
@click.argument("inp", metavar="IN", type=click.Path())
@click.argument("out", metavar="OUT", type=click.Path())
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="stage parameter (repeatable)")
@click.option("--drop", is_flag=True, help="also remove what fails (to OUT's .rejected.jsonl)")
@click.option("--source", default="record", help="input format adapter (see `assay sources`)")
@click.option("--source-opt", "source_opts", multiple=True, metavar="KEY=VALUE", help="adapter option (repeatable)")
@click.option("--workers", type=int, default=None)
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json-logs", is_flag=True)
@friendly
def apply(stage_name: str, inp: str, out: str, sets: tuple[str, ...], drop: bool, source: str,
          source_opts: tuple[str, ...], workers: int | None, quiet: bool, json_logs: bool) -> None:
    """Run one STAGE on the records of IN and write them, with its checks, to OUT."""
    from assay.config import parse_config
    from assay.io.readers import iter_records
    from assay.io.writers import open_writer
    from assay.runner.pipeline import Runner
    from assay.runner.progress import Hub
    from assay.stage import stage_class

    cls = stage_class(stage_name)
    params = parse_sets(sets, cls)
    params["drop"] = drop
    options = parse_sets(source_opts, _source_class(source))
    cfg = parse_config({"name": f"apply {stage_name}", "inputs": [{"path": inp, "source": source, "options": options}],
                        "stages": [{"stage": stage_name, **params}], "workers": workers},
                       f"assay apply {stage_name}")
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".assay-apply-", dir=out_path.parent))
    try:
        hub = Hub(quiet=quiet, json_logs=json_logs, console=err_console)
        result = Runner(cfg, work / "run", hub=hub, workers=workers).run()
        run_dir = result.run_dir
        with open_writer(out_path) as w:
            for part in sorted((run_dir / "output").iterdir()):
                w.write_many(iter_records(part))
        extras = []
        for kind, src in (("rejected", next((run_dir / "rejected").glob("*.jsonl"), None)),
                          ("invalid", run_dir / "invalid" / "invalid.jsonl")):
            dst = out_path.with_name(f"{_stem(out_path)}.{kind}.jsonl")
            if src is not None and src.exists() and src.stat().st_size:
                shutil.copyfile(src, dst)
                extras.append(f"{kind} -> {dst}")
            elif dst.exists():
                dst.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not quiet and not json_logs:
        st = result.stats["stages"][0]
        console.print(f"{stage_name}: {st['records_in']:,} records in, {st['records_out']:,} out "
                      f"({st['records_rejected']:,} records and {st['responses_rejected']:,} responses failed"
                      f"{'' if drop else ', kept: no --drop'}) -> {out_path}")
        for line in extras:
            console.print(line)
        if st["rejected"]:
            console.print("reasons: " + ", ".join(f"{k} ({v})" for k, v in list(st["rejected"].items())[:6]))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".json", ".parquet", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# ---- stages / sources -------------------------------------------------------------------------


def _doc_summary(cls: type) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def _print_params(cls: Any, skip: tuple[str, ...] = ()) -> None:
    from assay.stage import parameter_docs

    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for col in ("parameter", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for name, tname, default, desc in parameter_docs(cls):
        if name not in skip:
            table.add_row(escape(name), escape(tname), escape(default), escape(desc))
    console.print(table)


@main.command()
@click.argument("name", required=False)
@friendly
def stages(name: str | None) -> None:
    """List the stages, or show one stage's parameters."""
    from assay.stage import registry, stage_class

    if name:
        cls = stage_class(name)
        console.print(f"[bold]{name}[/] ({cls.execution}, {cls.__module__})")
        console.print(escape((cls.__doc__ or "").strip()))
        _print_params(cls)
        return
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("stage")
    table.add_column("runs")
    table.add_column("what it does", overflow="fold")
    for sname, cls in registry().items():
        table.add_row(sname, cls.execution, escape(_doc_summary(cls)))
    console.print(table)
    console.print("common parameters: when, drop, min_score, max_score, drop_empty; "
                  "`assay stages NAME` shows a stage's own")


@main.command()
@click.argument("name", required=False)
@friendly
def sources(name: str | None) -> None:
    """List the source adapters, or show one adapter's options."""
    from assay.sources import sources as all_sources

    known = all_sources()
    if name:
        if name not in known:
            raise AssayError(f"unknown source {name!r}; known sources: {', '.join(known)}")
        cls = known[name]
        console.print(f"[bold]{name}[/] (domain {cls.domain})")
        console.print(escape((cls.__doc__ or "").strip()))
        _print_params(cls)
        return
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("source")
    table.add_column("domain")
    table.add_column("format", overflow="fold")
    for sname, cls in known.items():
        table.add_row(sname, cls.domain, escape(_doc_summary(cls)))
    console.print(table)


# ---- validate / show --------------------------------------------------------------------------


@main.command()
@click.argument("file", type=click.Path())
@click.option("--source", default="record", help="input format adapter")
@click.option("--source-opt", "source_opts", multiple=True, metavar="KEY=VALUE", help="adapter option (repeatable)")
@click.option("--split", default=None)
@click.option("--limit", type=int, default=None)
@click.option("--max-errors", type=int, default=50, help="print at most this many bad lines")
@friendly
def validate(file: str, source: str, source_opts: tuple[str, ...], split: str | None, limit: int | None,
             max_errors: int) -> None:
    """Check FILE (or a dataset folder) and report each bad line with its error; exit 1 if any."""
    from collections import Counter

    from assay.config import InputSpec
    from assay.runner.ingest import Ingest, _error_kind
    from assay.runner.progress import Hub

    spec = InputSpec(path=file, source=source, split=split, limit=limit,
                     options=parse_sets(source_opts, _source_class(source)))
    ingest = Ingest([spec], 1, None, Hub(quiet=True))
    good = bad = 0
    kinds: Counter[str] = Counter()
    for row, rec, where in ingest.rows():
        if rec is not None:
            good += 1
            continue
        bad += 1
        kinds[_error_kind(row.error or "")] += 1
        if bad <= max_errors:
            console.print(f"{where}:{row.line}: {row.error}", highlight=False, soft_wrap=True)
    if bad > max_errors:
        console.print(f"... and {bad - max_errors} more")
    status = "[green]ok[/]" if not bad else "[red]invalid lines found[/]"
    console.print(f"{status}: {good:,} valid records, {bad:,} invalid" +
                  (f" ({', '.join(f'{k}: {v}' for k, v in kinds.most_common())})" if bad else ""))
    if bad:
        sys.exit(1)


@main.command()
@click.argument("target")
@click.option("-n", "limit", type=int, default=3, help="records to show")
@click.option("--id", "rid", default=None, help="show only the record with this id")
@click.option("--rejected", is_flag=True, help="for a run directory: show rejected items")
@click.option("--stage", default=None, help="with --rejected: only this stage's")
@friendly
def show(target: str, limit: int, rid: str | None, rejected: bool, stage: str | None) -> None:
    """Pretty-print records (and their checks) of a file or of a run directory's output."""
    from assay.show import iter_target, render

    if is_remote(target):
        path = local_run(target)
    elif not Path(target).exists():
        raise AssayError(f"'{target}' does not exist")
    else:
        path = Path(target)
    shown = 0
    for item in iter_target(path, rejected=rejected, stage=stage):
        rec = item.get("record") or item
        if rid is not None and rec.get("id") != rid and item.get("id") != rid:
            continue
        console.print(render(item))
        shown += 1
        if shown >= limit:
            break
    if not shown:
        console.print("nothing to show" + (f" with id {rid!r}" if rid else ""))


# Commands that live with their capability: "module:attribute" of a click command or group.
# A module that is not there is skipped; one that is there must import (keep its imports light).
PLUGIN_COMMANDS = (
    "assay.teacher.cli:cache",
    "assay.teacher.cli:teacher",
    "assay.export.cli:export",
    "assay.report.cli:report",
    "assay.report.cli:view",
)


def _load_plugins() -> None:
    import importlib

    for spec in PLUGIN_COMMANDS:
        module, attr = spec.split(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:  # that capability is not installed
                continue
            raise
        main.add_command(getattr(mod, attr))


_load_plugins()


def run_cli() -> None:  # entry point that keeps worker processes quiet about broken pipes
    try:
        main()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
