"""Engines run shard tasks. The local engine: a process pool over all cores (or inline with one
worker). Engines only need `submit(fn, task) -> Future`; the pipeline does the rest."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from assay.procutil import die_with_parent
from assay.runner.progress import Hub
from assay.runner.shard import teardown_all

_QUEUE: Any = None


def _init_worker(queue: Any, parent: int) -> None:
    global _QUEUE
    _QUEUE = queue
    die_with_parent(parent)  # the runner's death ends its workers: no orphan keeps writing shards
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import atexit

    atexit.register(teardown_all)


def _report(label: str, n: int) -> None:
    if _QUEUE is not None and n:
        _QUEUE.put((label, n))


def _call_in_worker(fn: Callable[..., Any], task: Any) -> Any:
    return fn(task, _report)


class Engine:
    name = "base"
    workers = 1

    def submit(self, fn: Callable[..., Any], task: Any) -> Future[Any]:
        """Run `fn(task, progress)` somewhere; `fn` must be a module-level function."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalEngine(Engine):
    name = "local"

    def __init__(self, workers: int, hub: Hub):
        self.workers = max(1, workers)
        self.hub = hub
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(self.hub.queue(ctx), os.getpid()))
        return self._pool

    def submit(self, fn: Callable[..., Any], task: Any) -> Future[Any]:
        if self.workers == 1:
            return _inline(fn, task, self.hub.advance)
        return self._executor().submit(_call_in_worker, fn, task)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _inline(fn: Callable[..., Any], task: Any, progress: Callable[[str, int], None]) -> Future[Any]:
    fut: Future[Any] = Future()
    try:
        fut.set_result(fn(task, progress))
    except BaseException as exc:
        fut.set_exception(exc)
    return fut
