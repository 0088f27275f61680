"""Running stages over one shard: the unit of work the engines schedule.

One shard flows through a chain of consecutive stages in chunks (memory stays at one chunk);
each stage writes its own output shard, its rejected items and its done marker, in order, so a
killed run resumes at the first stage whose marker is missing.
"""

from __future__ import annotations

import time
import traceback
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
        return StageContext(cache_dir=self.cache_dir, stage_dir=self.dir.path, run_dir=self.run_dir,
                            seed=self.seed, workers=self.workers)


@dataclass
class ChainTask:
    shard: int
    source: Path  # the input shard file (the previous stage's output)
    jobs: list[StageJob]
    state_path: Path | None = None  # for the decide pass of a global stage


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
        self.out = JsonlWriter(job.dir.shard(shard))
        self.rejected = JsonlWriter(job.dir.rejected(shard))
        self.decide = Decider(stage, self.stats, self.rejected)
        self.when = compile_expr(stage.when) if stage.when else None
        self.started = time.perf_counter()

    def split(self, chunk: list[Record]) -> tuple[list[Record], list[bool]]:
        st = self.stats
        st.records_in += len(chunk)
        st.responses_in += sum(len(r.get("responses") or ()) for r in chunk)
        if self.when is None:
            return chunk, [True] * len(chunk)
        flags = [bool(self.when(r)) for r in chunk]
        st.skipped += flags.count(False)
        return [r for r, f in zip(chunk, flags, strict=True) if f], flags

    def finish(self, chunk: list[Record], flags: list[bool]) -> list[Record]:
        kept = [r for r, f in zip(chunk, flags, strict=True) if not f or self.decide(r)]
        self.stats.records_out += len(kept)
        self.stats.responses_out += sum(len(r.get("responses") or ()) for r in kept)
        self.out.write_many(kept)
        return kept

    def run(self, chunk: list[Record], work: Callable[[list[Record]], None]) -> list[Record]:
        active, flags = self.split(chunk)
        if active:
            with stage_errors(self.stage, self.shard, active):
                work(active)
        return self.finish(chunk, flags)

    def commit(self) -> dict[str, Any]:
        self.stats.seconds = time.perf_counter() - self.started
        self.stats.metrics = self.stage.stats()
        self.out.commit()
        self.rejected.commit()
        data = {"stats": self.stats.to_dict()}
        self.job.dir.write_marker(self.shard, data)
        return data

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
    state = load_state(task.state_path) if task.state_path else None
    outs = [StageShard(st, job, task.shard) for st, job in zip(stages, task.jobs, strict=True)]
    size = max(st.batch_size for st in stages)
    try:
        for chunk in chunks(iter_records(task.source), size):
            for st, out in zip(stages, outs, strict=True):
                n = len(chunk)
                if state is not None:
                    chunk = out.run(chunk, lambda recs, st=st: st.decide_batch(recs, state))  # type: ignore[attr-defined]
                else:
                    chunk = out.run(chunk, st.process_batch)
                progress(st.label, n)
    except BaseException:
        for out in outs:
            out.abort()
        raise
    for out in outs:
        out.commit()
    return task.shard
