"""A worker-process pool with a hard deadline per item.

`DeadlinePool(fn, workers=2, deadline_s=5).map(items)` runs `fn(item)` in worker processes and
returns one `Outcome` per item, in order. An item that runs past its deadline has its worker
killed (SIGKILL) and replaced; an item that crashes its worker (segfault, out of memory) is
reported as crashed; neither stops the other items. Nothing uses signals in the caller, so
`map` works from any thread (unlike SIGALRM-based timeouts) and never hangs on a stuck item.

`fn` must be a module-level function (it is pickled by reference). Workers come from the
`forkserver` start method by default: safe when the caller has threads, and, with `preload`
naming the heavy modules, a replacement worker starts in milliseconds instead of re-importing.
Workers die with their parent (PR_SET_PDEATHSIG) and ignore Ctrl-C (the caller cleans up).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from assay.errors import AssayError
from assay.procutil import die_with_parent

STARTUP_TIMEOUT_S = 120.0  # a fresh worker must be ready within this (imports, initializer)


@dataclass(slots=True)
class Outcome:
    """What happened to one item. `status` is "ok", "error" (fn raised), "timeout" or "crashed"."""

    status: str
    value: Any = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---- the worker side ----------------------------------------------------------------------------

def _limit_memory(memory_mb: int | None) -> None:
    if not memory_mb:
        return
    import resource

    limit = memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _worker_main(conn: Connection, fn: Callable[[Any], Any], initializer: Callable[[], None] | None,
                 memory_mb: int | None, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    _limit_memory(memory_mb)
    if initializer is not None:
        initializer()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        idx, item = msg
        try:
            reply: tuple[Any, ...] = (idx, "ok", fn(item), None)
        except MemoryError:
            reply = (idx, "error", None, "MemoryError: out of memory")
        except Exception as exc:
            reply = (idx, "error", None, f"{type(exc).__name__}: {str(exc)[:500]}")
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result
            conn.send((idx, "error", None, f"result could not be sent back: {type(exc).__name__}: {exc}"))


# ---- the caller side ----------------------------------------------------------------------------

class _Worker:
    def __init__(self, ctx: Any, fn: Callable[[Any], Any], initializer: Callable[[], None] | None,
                 memory_mb: int | None):
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, fn, initializer, memory_mb, os.getpid()), daemon=True,
                                name="assay-deadline-worker")
        self.proc.start()
        child.close()
        self.conn: Connection = parent
        self.born = time.monotonic()
        self.ready = False
        self.task: int | None = None  # index of the item it is working on
        self.task_started = 0.0
        self.done = 0

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(timeout=5)
        except Exception:  # already gone
            pass
        self.conn.close()

    def retire(self) -> None:
        try:
            self.conn.send(None)
            self.proc.join(timeout=2)
        except Exception:
            pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        self.conn.close()


class DeadlinePool:
    """Run `fn` over items in `workers` processes, each item under a hard `deadline_s`.

    memory_mb: address-space limit of each worker (RLIMIT_AS), so a runaway item fails with
    MemoryError instead of exhausting the machine. max_tasks: replace a worker after this many
    items (bounds slow leaks). env: variables set while workers start (the fork server, started
    with the first worker, keeps them: a preloaded module can read them). Thread-safe:
    concurrent `map` calls are served one at a time.
    """

    def __init__(self, fn: Callable[[Any], Any], workers: int, deadline_s: float, *,
                 initializer: Callable[[], None] | None = None, preload: Sequence[str] = (),
                 memory_mb: int | None = None, max_tasks: int | None = None, start_method: str | None = None,
                 env: dict[str, str] | None = None):
        if deadline_s <= 0:
            raise AssayError(f"the per-item deadline must be positive, got {deadline_s}")
        self.fn, self.initializer = fn, initializer
        self.workers = max(1, int(workers))
        self.deadline_s = float(deadline_s)
        self.memory_mb, self.max_tasks = memory_mb, max_tasks
        method = start_method or ("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        self._ctx = mp.get_context(method)
        if method == "forkserver" and preload:
            self._ctx.set_forkserver_preload(list(preload))
        self._env = dict(env or {})
        self._pool: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.counters = {"items": 0, "timeouts": 0, "crashes": 0, "errors": 0, "workers_started": 0}

    # ---- public -------------------------------------------------------------------------------
    def map(self, items: Iterable[Any]) -> list[Outcome]:
        """Outcomes in the order of `items`; blocks until every item is done, timed out or crashed."""
        todo = list(items)
        if not todo:
            return []
        with self._lock:
            if self._closed:
                raise AssayError("the worker pool is closed")
            return self._run(todo)

    def start(self) -> None:
        """Start the workers now (they get ready in the background) instead of at the first `map`."""
        with self._lock:
            if self._closed:
                raise AssayError("the worker pool is closed")
            while len(self._pool) < self.workers:
                self._spawn()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for w in self._pool:
                w.retire()
            self._pool.clear()

    def __enter__(self) -> DeadlinePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the dispatcher -----------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        try:
            with _environment(self._env):  # the fork server, started by the first worker, inherits it
                w = _Worker(self._ctx, self.fn, self.initializer, self.memory_mb)
        except (AttributeError, TypeError, ValueError) as exc:
            raise AssayError(f"could not start a worker process ({type(exc).__name__}: {exc}); the pool's function "
                             "and initializer must be module-level functions") from None
        self.counters["workers_started"] += 1
        self._pool.append(w)
        return w

    def _drop(self, w: _Worker, *, kill: bool) -> None:
        self._pool.remove(w)
        if kill:
            w.kill()
        else:
            w.retire()

    def _run(self, items: list[Any]) -> list[Outcome]:
        batch = _Batch(items)
        try:
            while batch.remaining:
                while len(self._pool) < min(self.workers, batch.remaining):
                    self._spawn()
                for w in list(self._pool):
                    if w.ready and w.task is None and batch.queue:
                        self._send(w, batch)
                ready = wait([w.conn for w in self._pool], timeout=self._next_wakeup())
                now = time.monotonic()
                for w in list(self._pool):
                    if w.conn in ready:
                        self._receive(w, batch, now)
                    elif w.task is not None and now - w.task_started >= self.deadline_s:
                        batch.finish(w.task, Outcome("timeout", error=f"timed out after {self.deadline_s:g} s",
                                                     seconds=now - w.task_started))
                        self.counters["timeouts"] += 1
                        self._drop(w, kill=True)
                    elif not w.ready and now - w.born >= STARTUP_TIMEOUT_S:
                        self._drop(w, kill=True)
                        raise AssayError(f"a worker process did not start within {STARTUP_TIMEOUT_S:g} s")
        except BaseException:
            # leave no worker half-way through an item of an abandoned map
            for w in list(self._pool):
                if w.task is not None:
                    self._drop(w, kill=True)
            raise
        self.counters["items"] += len(items)
        return batch.outcomes()

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        deadlines = [w.task_started + self.deadline_s for w in self._pool if w.task is not None]
        deadlines += [w.born + STARTUP_TIMEOUT_S for w in self._pool if not w.ready]
        return max(0.0, min(deadlines) - now) + 0.001 if deadlines else 1.0

    def _send(self, w: _Worker, batch: _Batch) -> None:
        idx = batch.queue.popleft()
        try:
            w.conn.send((idx, batch.items[idx]))
        except (BrokenPipeError, EOFError, ConnectionError):
            # the worker died while idle: not this item's fault, give it to another worker
            self._drop(w, kill=True)
            batch.attempts[idx] = batch.attempts.get(idx, 0) + 1
            if batch.attempts[idx] <= 2:
                batch.queue.appendleft(idx)
            else:
                batch.finish(idx, Outcome("crashed", error="worker processes keep dying"))
            return
        except Exception as exc:  # the item cannot be pickled
            batch.finish(idx, Outcome("error", error=f"item could not be sent: {type(exc).__name__}: {exc}"))
            self.counters["errors"] += 1
            return
        w.task, w.task_started = idx, time.monotonic()

    def _receive(self, w: _Worker, batch: _Batch, now: float) -> None:
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            if w.task is not None:
                w.proc.join(timeout=0.5)
                batch.finish(w.task, Outcome("crashed", error=f"worker died (exit code {w.proc.exitcode})",
                                             seconds=now - w.task_started))
                self.counters["crashes"] += 1
            elif not w.ready:
                self._drop(w, kill=True)
                raise AssayError("a worker process died while starting (see the error above)") from None
            self._drop(w, kill=True)
            return
        if msg[0] == "ready":
            w.ready = True
            return
        idx, status, value, error = msg
        batch.finish(idx, Outcome(status, value, error, now - w.task_started))
        if status == "error":
            self.counters["errors"] += 1
        w.task = None
        w.done += 1
        if self.max_tasks and w.done >= self.max_tasks:
            self._drop(w, kill=False)


_ENV_LOCK = threading.Lock()


@contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    if not extra:
        yield
        return
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in extra}
        os.environ.update(extra)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class _Batch:
    """The items of one `map` call and what became of them."""

    def __init__(self, items: list[Any]):
        self.items = items
        self.results: list[Outcome | None] = [None] * len(items)
        self.queue = deque(range(len(items)))
        self.attempts: dict[int, int] = {}
        self.remaining = len(items)

    def finish(self, idx: int, outcome: Outcome) -> None:
        if self.results[idx] is None:
            self.results[idx] = outcome
            self.remaining -= 1

    def outcomes(self) -> list[Outcome]:
        return [r if r is not None else Outcome("crashed", error="lost") for r in self.results]
