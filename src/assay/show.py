"""`assay show`: records and their checks, readable in a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from assay.errors import AssayError
from assay.io.readers import dataset_files, read_rows
from assay.record import prompt_text

EXCERPT = 600


def iter_target(path: Path, *, rejected: bool = False, stage: str | None = None) -> Iterator[dict[str, Any]]:
    if path.is_dir() and (path / ".assay-run").exists():
        sub = path / ("rejected" if rejected else "output")
        files = sorted(sub.glob("*.jsonl*")) if sub.exists() else []
        if rejected and stage:
            files = [f for f in files if f.stem.split("-", 1)[-1] == stage or f.stem == stage]
            if not files:
                raise AssayError(f"no rejected items for stage {stage!r} in {path}")
        if not files:
            raise AssayError(f"{sub} holds no records yet")
    else:
        files = dataset_files(path)
    for f in files:
        for row in read_rows(f):
            if row.data is not None:
                yield row.data


def _excerpt(text: str, n: int = EXCERPT) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n // 2] + f"\n  [... {len(text) - n:,} chars ...]\n" + text[-n // 2:]


def _checks_table(checks: dict[str, Any]) -> Table:
    table = Table(box=None, padding=(0, 1), show_header=False)
    for name, c in checks.items():
        if not isinstance(c, dict):
            continue
        mark = "[green]pass[/]" if c.get("passed") else "[red]fail[/]"
        score = c.get("score")
        shown = "" if score is None else f"{score:g}" if isinstance(score, (int, float)) else str(score)
        table.add_row(name, mark, shown, Text(str(c.get("reason") or ""), overflow="fold"))
    return table


def render(item: dict[str, Any]) -> RenderableType:
    if "stage" in item and "reason" in item and ("record" in item or "response" in item):
        inner = item.get("record") or {"id": item.get("id"), "domain": item.get("domain"), "source": item.get("source"),
                                       "prompt": item.get("prompt", ""), "responses": [item["response"]]}
        head = Text(f"rejected by {item['stage']} ({item['kind']}): {item['reason']}", style="bold red")
        return Group(head, render(inner))
    parts: list[RenderableType] = []
    parts.append(Text(_excerpt(prompt_text(item) if (item.get("prompt") or item.get("messages")) else "")))
    ref = item.get("reference") or {}
    if ref:
        bits = []
        if ref.get("answer") is not None:
            bits.append(f"answer: {ref['answer']}")
        if ref.get("tests"):
            t = ref["tests"]
            bits.append(f"tests: {t.get('kind')} x{len(t.get('cases') or []) or 1}")
        if ref.get("solution"):
            bits.append(f"solution: {len(ref['solution']):,} chars")
        parts.append(Text("reference  " + "; ".join(bits), style="cyan"))
    if item.get("labels"):
        parts.append(Text("labels     " + ", ".join(f"{k}={v}" for k, v in item["labels"].items()), style="magenta"))
    if item.get("checks"):
        parts.append(_checks_table(item["checks"]))
    for i, resp in enumerate(item.get("responses") or ()):
        body: list[RenderableType] = []
        if resp.get("reasoning"):
            body.append(Text("reasoning: " + _excerpt(resp["reasoning"], 300), style="dim"))
        body.append(Text(_excerpt(resp.get("text", ""), 400)))
        if resp.get("checks"):
            body.append(_checks_table(resp["checks"]))
        title = escape(f"response {i}" + (f" ({resp['model']})" if resp.get("model") else ""))
        parts.append(Panel(Group(*body), title=title, title_align="left", border_style="blue"))
    title = escape(f"{item.get('id')}  [{item.get('domain')}/{item.get('source')}]")
    return Panel(Group(*parts), title=title, title_align="left")
