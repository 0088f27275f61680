"""Progress for people (rich bars with count, rate and ETA) or for machines (JSON log lines)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Hub:
    """One bar per stage. Workers report through a queue that a thread drains into the bars."""

    def __init__(self, *, quiet: bool = False, json_logs: bool = False, console: Console | None = None):
        self.quiet, self.json_logs = quiet, json_logs
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._queue: Any = None
        self._drain: threading.Thread | None = None

    def __enter__(self) -> Hub:
        if not self.quiet and not self.json_logs:
            self._progress = Progress(
                TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False,
                refresh_per_second=4,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_queue()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # ---- bars -----------------------------------------------------------------------------
    def add(self, label: str, total: int | None = None) -> None:
        with self._lock:
            self._counts.setdefault(label, 0)
            if self._progress is not None and label not in self._tasks:
                self._tasks[label] = self._progress.add_task(label, total=total, rate="", start_time=None)

    def set_total(self, label: str, total: int | None) -> None:
        if self._progress is not None and label in self._tasks:
            self._progress.update(self._tasks[label], total=total)

    def advance(self, label: str, n: int) -> None:
        with self._lock:
            self._counts[label] = self._counts.get(label, 0) + n
            if self._progress is not None and label in self._tasks:
                task_id = self._tasks[label]
                self._progress.advance(task_id, n)
                task = self._progress._tasks[task_id]
                speed = task.speed
                self._progress.update(task_id, rate=f"{speed:,.0f}/s" if speed else "")

    def reset(self, label: str) -> None:
        with self._lock:
            self._counts[label] = 0
            if self._progress is not None and label in self._tasks:
                self._progress.reset(self._tasks[label], start=True)

    def complete(self, label: str) -> None:
        if self._progress is not None and label in self._tasks:
            task_id = self._tasks[label]
            done = self._counts.get(label, 0)
            self._progress.update(task_id, total=done, completed=done)

    def log(self, event: str, **fields: Any) -> None:
        if self.json_logs:
            sys.stderr.write(json.dumps({"t": round(time.time(), 3), "event": event, **fields}) + "\n")
            sys.stderr.flush()
        elif not self.quiet and event not in ("stage done", "indexing"):
            detail = " ".join(f"{k}={v}" for k, v in fields.items())
            self.console.print(f"[dim]{event}[/] {detail}".strip(), highlight=False)

    # ---- reports from worker processes ----------------------------------------------------
    def queue(self, ctx: Any) -> Any:
        if self._queue is None:
            self._queue = ctx.SimpleQueue()
            self._drain = threading.Thread(target=self._drain_loop, daemon=True)
            self._drain.start()
        return self._queue

    def _drain_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.advance(*item)

    def stop_queue(self) -> None:
        if self._queue is not None and self._drain is not None:
            self._queue.put(None)
            self._drain.join(timeout=5)
            self._queue = None
            self._drain = None
