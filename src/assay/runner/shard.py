"""Running stages over one shard: the unit of work the engines schedule.

One shard flows through a chain of consecutive stages in chunks (memory stays at one chunk);
each stage writes its own output shard, its rejected items and its done marker, in order, so a
killed run resumes at the first stage whose marker is missing.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assay.errors import AssayError
from assay.expr import compile_expr
from assay.io.readers import iter_records
from assay.io.writers import JsonlWriter
from assay.record import Record
from assay.runner.decision import Decider, StageStats
from assay.runner.rundir import StageDir
from assay.stage import Stage, StageContext, build_stage


@dataclass
class StageJob:
    """What a process needs to rebuild and run one stage (picklable)."""

    name: str
    label: str | None
    params: dict[str, Any]
    fp: str
    dir: StageDir
    seed: int
    cache_dir: Path
    run_dir: Path | None
    workers: int

    def context(self) -> StageContext:
        run_dir = self.dir.remote.here(self.run_dir) if self.dir.remote and self.run_dir else self.run_dir
        return StageContext(cache_dir=node_cache_dir(self.cache_dir), stage_dir=self.dir.path, run_dir=run_dir,
                            seed=self.seed, workers=self.workers,
                            store=self.dir.remote)


def node_cache_dir(wanted: Path) -> Path:
    """The driver's cache folder, or, on a machine where it cannot be made (a driver on a laptop,
    workers on a cluster), this machine's own ($ASSAY_CACHE_DIR or ~/.cache/assay). These caches
    (embeddings, verdicts) only save work; what must not be paid twice, the teacher's answers,
    goes to the shared request cache on the Ray engine."""
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        return wanted
    except OSError:
        from assay.config import default_cache_dir

        return default_cache_dir()


@dataclass
class ChainTask:
    shard: int
    source: StageDir  # the stage whose output shard is the input (the previous stage)
    upstream: str | None  # the token of that input's marker
    jobs: list[StageJob]
    state_path: Path | None = None  # for the decide pass of a global stage

    def records(self) -> Iterator[Record]:
        return iter_records(self.source.fetch(self.shard, self.upstream))

    def handed_out(self) -> ChainTask:
        """Called by the driver as the task goes to another process, which writes these markers."""
        for job in self.jobs:
            job.dir.forget(self.shard)
        return self


@dataclass
class IndexTask:
    """Parallel indexing of one shard for a global stage: index_shard(records) -> partial."""

    shard: int
    source: StageDir
    upstream: str | None
    job: StageJob

    def records(self) -> Iterator[Record]:
        return iter_records(self.source.fetch(self.shard, self.upstream))


def partial_path(sd: StageDir, shard: int, upstream: str | None) -> Path:
    """Where a shard's partial index lives; named by its input, so a name that exists is current."""
    return sd.path / "partials" / f"{shard:05d}-{upstream or 'none'}.pkl"


# Stages set up in this process, by fingerprint: model loads and pools survive across shards.
_LIVE: dict[str, Stage] = {}
_STATES: dict[str, Any] = {}


def live_stage(job: StageJob) -> Stage:
    inst = _LIVE.get(job.fp)
    if inst is None:
        inst = build_stage(job.name, job.params, job.label)
        inst.setup(job.context())
        _LIVE[job.fp] = inst
    return inst


def teardown_all() -> None:
    for inst in _LIVE.values():
        try:
            inst.teardown()
        except Exception:  # teardown failures must not hide the run's own outcome
            pass
    _LIVE.clear()
    _STATES.clear()


def load_state(path: Path) -> Any:
    state = _STATES.get(str(path))
    if state is None:
        import pickle

        with open(path, "rb") as f:
            state = pickle.load(f)
        _STATES.clear()  # keep one state at a time: they can be large
        _STATES[str(path)] = state
    return state


def chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class StageShard:
    """One stage's outputs for one shard: kept records, rejected items, stats, then the marker."""

    def __init__(self, stage: Stage, job: StageJob, shard: int):
        self.stage, self.job, self.shard = stage, job, shard
        self.stats = StageStats()
        job.dir.begin(shard)
        self.out = JsonlWriter(job.dir.shard(shard))
        self.rejected = JsonlWriter(job.dir.rejected(shard))
        self.decide = Decider(stage, self.stats, self.rejected)
        self.when = compile_expr(stage.when) if stage.when else None
        self.retry_hook = type(stage).needs_retry is not Stage.needs_retry
        self.active_seen = 0  # records of this shard that went through the stage so far
        self.busy = 0.0  # seconds spent in run(): a stage's own share of a fused chain
        self.incomplete = 0
        self.started = time.perf_counter()

    def split(self, chunk: list[Record]) -> tuple[list[Record], list[bool]]:
        st = self.stats
        st.records_in += len(chunk)
        st.responses_in += sum(len(r.get("responses") or ()) for r in chunk)
        if self.when is None:
            self.active_seen += len(chunk)
            return chunk, [True] * len(chunk)
        flags = [bool(self.when(r)) for r in chunk]
        st.skipped += flags.count(False)
        active = [r for r, f in zip(chunk, flags, strict=True) if f]
        self.active_seen += len(active)
        return active, flags

    def finish(self, chunk: list[Record], flags: list[bool]) -> list[Record]:
        if self.retry_hook:
            self.incomplete += sum(1 for r, f in zip(chunk, flags, strict=True) if f and self.stage.needs_retry(r))
        kept = [r for r, f in zip(chunk, flags, strict=True) if not f or self.decide(r)]
        self.stats.records_out += len(kept)
        self.stats.responses_out += sum(len(r.get("responses") or ()) for r in kept)
        self.out.write_many(kept)
        return kept

    def run(self, chunk: list[Record], work: Callable[[list[Record]], None]) -> list[Record]:
        t0 = time.perf_counter()
        active, flags = self.split(chunk)
        if active:
            with stage_errors(self.stage, self.shard, active):
                work(active)
        kept = self.finish(chunk, flags)
        self.busy += time.perf_counter() - t0
        return kept

    def commit(self, upstream: str | None) -> str:
        """Publish the shard's outputs, then its marker; returns the marker's token."""
        # a stage fused with others counts its own chunks; an async stage, its whole shard
        self.stats.seconds = self.busy or (time.perf_counter() - self.started)
        self.stats.metrics = self.stage.stats()
        self.out.commit()
        self.rejected.commit()
        data: dict[str, Any] = {"stats": self.stats.to_dict()}
        if self.incomplete:
            data["incomplete"] = self.incomplete
        return self.job.dir.write_marker(self.shard, data, upstream)

    def abort(self) -> None:
        self.out.abort()
        self.rejected.abort()


@contextmanager
def stage_errors(stage: Stage, shard: int, records: list[Record]) -> Iterator[None]:
    """Turn a stage's exception into one sentence naming the stage, shard and first record."""
    try:
        yield
    except (AssayError, KeyboardInterrupt):
        raise
    except Exception as exc:
        first = records[0].get("id") if records else None
        raise StageFailure(f"stage '{stage.label}' failed on shard {shard} (batch starting at record "
                           f"{first!r}): {type(exc).__name__}: {exc}", traceback.format_exc()) from exc


class StageFailure(AssayError):
    def __init__(self, message: str, trace: str):
        super().__init__(message)
        self.trace = trace

    def __reduce__(self) -> tuple[Any, ...]:  # keep the trace across process boundaries
        return (StageFailure, (str(self), self.trace))


def run_chain(task: ChainTask, progress: Callable[[str, int], None] = lambda label, n: None) -> int:
    """Run consecutive per-record stages over one shard; returns the shard index."""
    stages = [live_stage(job) for job in task.jobs]
    state = load_state(task.jobs[0].dir.local_file(task.state_path)) if task.state_path else None
    outs = [StageShard(st, job, task.shard) for st, job in zip(stages, task.jobs, strict=True)]
    size = max(st.batch_size for st in stages)
    try:
        for chunk in chunks(task.records(), size):
            for st, out in zip(stages, outs, strict=True):
                n = len(chunk)
                if state is not None:
                    def decide(recs: list[Record], st: Any = st, out: StageShard = out) -> None:
                        st.decide_batch(recs, state, (task.shard, out.active_seen - len(recs)))

                    chunk = out.run(chunk, decide)
                else:
                    chunk = out.run(chunk, st.process_batch)
                progress(st.label, n)
    except BaseException:
        for out in outs:
            out.abort()
        raise
    token = task.upstream
    for out in outs:
        token = out.commit(token)
    return task.shard


def run_index(task: IndexTask, progress: Callable[[str, int], None] = lambda label, n: None) -> int:
    """index_shard over one shard; the partial is pickled under a name that says its input."""
    import pickle

    stage = live_stage(task.job)
    label = task.job.label or task.job.name
    path = partial_path(task.job.dir, task.shard, task.upstream)
    path.parent.mkdir(parents=True, exist_ok=True)

    def counted(records: Iterable[Record]) -> Iterator[Record]:
        n = 0
        for rec in records:
            n += 1
            if n % 1000 == 0:
                progress(label, 1000)
            yield rec
        progress(label, n % 1000)

    with stage_errors(stage, task.shard, []):
        partial = stage.index_shard(stage.positioned(task.shard, counted(task.records())))  # type: ignore[attr-defined]
    for old in path.parent.glob(f"{task.shard:05d}-*.pkl"):  # partials of an earlier input
        old.unlink(missing_ok=True)
    with open(f"{path}.tmp", "wb") as f:
        pickle.dump(partial, f, protocol=pickle.HIGHEST_PROTOCOL)
    Path(f"{path}.tmp").replace(path)
    task.job.dir.publish_file(path)
    return task.shard


async def process_async_shard(stage: Stage, out: StageShard, records: Iterator[Record], shard: int,
                              progress: Callable[[str, int], None]) -> None:
    """An async stage over one shard: several chunks in flight (the stage keeps its own request
    limits), their outputs written in order. Every engine runs async stages through this."""
    in_flight: deque[tuple[asyncio.Task[None], list[Record], list[bool]]] = deque()
    depth = max(1, getattr(stage, "chunks_in_flight", 4))

    async def work(active: list[Record]) -> None:
        with stage_errors(stage, shard, active):
            await stage.aprocess_batch(active)

    async def finish_head() -> None:
        task, chunk, flags = in_flight.popleft()
        await task
        out.finish(chunk, flags)
        progress(stage.label, len(chunk))

    try:
        for chunk in chunks(records, stage.batch_size):
            active, flags = out.split(chunk)
            in_flight.append((asyncio.ensure_future(work(active) if active else _noop()), chunk, flags))
            if len(in_flight) >= depth:
                await finish_head()
        while in_flight:
            await finish_head()
    finally:
        for task, _, _ in in_flight:
            task.cancel()


async def _noop() -> None:
    return None
