"""What runs inside Ray workers and actors: shard tasks, stage actors and the progress sink.

Every function here is the same code the local engine runs (`run_chain`, `run_index`,
`ingest_span` from the runner); Ray only decides where. Nothing in this module imports Ray, so the
classes can be wrapped with `ray.remote` by the engine and unit-tested without a cluster.
"""

from __future__ import annotations

import atexit
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from assay.runner.shard import (
    ChainTask,
    StageJob,
    StageShard,
    live_stage,
    process_async_shard,
    run_chain,
    teardown_all,
)
from assay.stage import Stage, build_stage

FLUSH_SECONDS = 0.25

# The run this process last worked for. Ray reuses worker processes across the runs of one
# driver (a test, a notebook): stages and global states cached for another run are dropped.
_RUN: str | None = None
_ATEXIT = False


def enter_run(run_id: str) -> None:
    global _RUN, _ATEXIT
    if _RUN != run_id:
        if _RUN is not None:
            teardown_all()
        _RUN = run_id
    if not _ATEXIT:
        _ATEXIT = True
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        atexit.register(teardown_all)


class ProgressSink:
    """Counts records per stage label; workers add, the driver takes (a Ray actor)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, items: list[tuple[str, int]]) -> None:
        for label, n in items:
            self.counts[label] += n

    def take(self) -> dict[str, int]:
        out = dict(self.counts)
        self.counts.clear()
        return out


_SINKS: dict[str, Any] = {}


def sink_handle(name: str | None) -> Any:
    """The progress sink actor, by name (a handle in constructor arguments would pin actor restarts
    to the object store)."""
    if not name:
        return None
    handle = _SINKS.get(name)
    if handle is None:
        import ray

        try:
            handle = _SINKS[name] = ray.get_actor(name)
        except ValueError:  # the run is over: nobody is watching progress any more
            return None
    return handle


class Reporter:
    """The `progress(label, n)` callback of a task: buffered, sent to the sink a few times a second."""

    def __init__(self, sink: str | None):
        self.sink = sink
        self.buf: Counter[str] = Counter()
        self.last = time.monotonic()

    def __call__(self, label: str, n: int) -> None:
        if not n:
            return
        self.buf[label] += n
        if time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        handle = sink_handle(self.sink) if self.buf else None
        if handle is not None:
            handle.add.remote(list(self.buf.items()))
        self.buf = Counter()


def run_shard_task(fn: Callable[..., Any], task: Any, sink: str | None, run_id: str) -> Any:
    """The body of every Ray task: `fn(task, progress)`, as in a local worker process."""
    enter_run(run_id)
    report = Reporter(sink)
    try:
        return fn(task, report)
    finally:
        report.flush()


def node_job(job: StageJob) -> StageJob:
    """A stage that manages its own worker pool sizes it to the node it runs on, not the cluster."""
    return replace(job, workers=max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                    else os.cpu_count() or 1))


def started_stages(jobs: list[StageJob]) -> list[Stage]:
    """`start()` once per run in the process that coordinates the stage (a server, a pool)."""
    out = []
    for job in jobs:
        st = build_stage(job.name, job.params, job.label)
        st.start(job.context())
        out.append(st)
    return out


def stop_stages(stages: list[Stage]) -> None:
    for st in stages:
        try:
            st.stop()
        except Exception:  # stopping must not hide the run's own outcome
            pass
    teardown_all()


class ChainWorker:
    """A long-lived worker (Ray actor) for stages that keep something loaded: a model stage's
    pool member (the model loads once per actor), or a main stage's node-local coordinator
    (its own process pool or sandbox sessions live here for the whole run)."""

    def __init__(self, run_id: str, sink: str | None, start_jobs: list[StageJob] | None = None):
        enter_run(run_id)
        self.run_id, self.sink = run_id, sink
        self.started = started_stages([node_job(j) for j in start_jobs or []])

    def run(self, fn: Callable[..., Any], task: Any) -> Any:
        if isinstance(task, ChainTask) and self.started:
            task = replace(task, jobs=[node_job(j) for j in task.jobs])
        return run_shard_task(fn, task, self.sink, self.run_id)

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        stop_stages(self.started)
        self.started = []


class AsyncStageWorker:
    """One asyncio actor per I/O-bound stage (teacher, judge): every shard in flight shares the
    stage's one client, so its concurrency, rate limits and request coalescing are global."""

    def __init__(self, run_id: str, sink: str | None, job: StageJob, cache_root: str | None = None,
                 limits: tuple[Any, int] | None = None):
        enter_run(run_id)
        self.run_id, self.sink, self.job = run_id, sink, job
        self.limits = limits  # (SharedLimits actor, this actor's share of the concurrency), or None
        self._limited: set[int] = set()
        self.started = started_stages([job])
        self.cache: Any = None
        if cache_root is not None:
            from assay.engines.shared_cache import SegmentCache, writer_name

            self.cache = SegmentCache(cache_root, writer=writer_name(run_id))

    def _attach_cache(self, stage: Stage) -> None:
        """Give a teacher stage the segment cache before its client opens the SQLite one (the
        client takes whatever `_cache` holds; see assay.teacher.llm.LLMStage.client)."""
        private = getattr(stage, "__pydantic_private__", None) or {}
        if self.cache is not None and "_cache" in private and private["_cache"] is None:
            stage._cache = self.cache  # type: ignore[attr-defined]

    async def run(self, task: ChainTask) -> int:
        job = task.jobs[0]
        stage = live_stage(job)
        self._attach_cache(stage)
        self._attach_limits(stage)
        out = StageShard(stage, job, task.shard)
        report = Reporter(self.sink)
        try:
            await process_async_shard(stage, out, task.records(), task.shard, report)
        except BaseException:
            out.abort()
            raise
        finally:
            report.flush()
        out.commit(task.upstream)
        return task.shard

    def _attach_limits(self, stage: Stage) -> None:
        """With several actors per stage: this client's share of the concurrency, and the shared
        rate limits instead of its own."""
        from assay.errors import ConfigError
        from assay.teacher.llm import LLMStage

        if self.limits is None or not isinstance(stage, LLMStage):
            return
        try:
            client = stage.client()
        except ConfigError:  # no endpoint: the stage reports it if it ever needs one
            return
        if id(client) not in self._limited:
            from assay.engines.ray_limits import RemoteLimits

            client.limits = RemoteLimits(self.limits[0])
            client.concurrency = self.limits[1]
            self._limited.add(id(client))

    def pid(self) -> int:
        return os.getpid()

    async def close(self) -> None:
        for st in list(_live_async()):
            client = getattr(st, "_client", None)
            if client is not None:
                st._client = None
                try:
                    await client.aclose()
                except Exception:  # the transports may already be gone
                    pass
        stop_stages(self.started)
        self.started = []
        if self.cache is not None:
            self.cache.close()


def _live_async() -> Iterator[Stage]:
    from assay.runner.shard import _LIVE

    return iter(_LIVE.values())


__all__ = ["AsyncStageWorker", "ChainWorker", "ProgressSink", "Reporter", "enter_run", "process_async_shard",
           "run_chain", "run_shard_task"]
