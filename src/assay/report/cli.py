"""`assay report DIR` and `assay view DIR` (registered by assay.cli as plugin commands)."""

from __future__ import annotations

import sys

import click

from assay.cli import console, err_console, friendly


@click.command()
@click.argument("run_dir", metavar="DIR")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="where to write (default DIR/report.html)")
@click.option("--tokenizer", default=None, metavar="PATH",
              help="count tokens with this tokenizer.json (or folder holding one) instead of the fast approximation")
@click.option("--examples", type=click.IntRange(0, 50), default=3, show_default=True,
              help="examples kept per rejection reason")
@friendly
def report(run_dir: str, out: str | None, tokenizer: str | None, examples: int) -> None:
    """Write a self-contained HTML report of the run in DIR (funnel, reasons, distributions)."""
    from assay.report.build import build_report
    from assay.runner.rundir import RunDir

    rd = RunDir(run_dir)
    rd.pull()  # a run on an object store: its local copy, brought up to date
    path, analysis = build_report(rd.path, out, tokenizer=tokenizer, examples=examples)
    if out is None:
        rd.push(path)
    console.print(f"report -> {path}  ({analysis.seconds:.1f}s)")
    for note in analysis.sampled_notes:
        err_console.print(f"[yellow]note:[/] {note}")
    if analysis.unreadable:
        err_console.print("[yellow]skipped unreadable lines:[/] "
                          + ", ".join(f"{k} ({v})" for k, v in analysis.unreadable.items()))
    sys.stdout.flush()


@click.command()
@click.argument("run_dir", metavar="DIR")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind; anything but loopback exposes the run's data to the network")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="port (0: any free one)")
@click.option("--open/--no-open", "open_browser", default=False, help="open a browser tab")
@friendly
def view(run_dir: str, host: str, port: int, open_browser: bool) -> None:
    """Browse the records of DIR (kept and rejected) in a small read-only local web app."""
    from assay.report.viewer.server import serve
    from assay.runner.rundir import local_run

    serve(local_run(run_dir), host=host, port=port, open_browser=open_browser, console=console, err_console=err_console)
