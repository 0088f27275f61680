"""The runner on Ray: the local runner's plan, markers and resume, with every stage off the driver.

Pool segments, reading and global stages go through `RayEngine.submit` unchanged. What the local
runner keeps in its own process moves to actors here:
- `main` stages (math-verify's process pool, the code sandbox) run in one actor per node;
- `async` stages (distill, judge, reward, safety) run in one asyncio actor per stage, with
  several shards in flight sharing the stage's client (concurrency, rpm/tpm limits, cache).
Inputs given as URLs (s3://, gs://, http(s)://, memory://) are copied once into the run
directory (`inputs/`), which every node sees, before reading starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from assay.config import PipelineConfig, default_cache_dir
from assay.engines.shared_cache import merge_segments
from assay.engines.storage import is_url, plain_path
from assay.runner.pipeline import Planned, Runner, RunResult
from assay.runner.progress import Hub
from assay.runner.rundir import StageDir
from assay.runner.shard import ChainTask, run_chain, stage_errors
from assay.stage import GlobalStage, Stage

SHARDS_PER_ACTOR = 2  # a main actor works on one shard and has the next one queued
ASYNC_SHARDS_IN_FLIGHT = 4  # shards an async actor interleaves (their requests share the limits)
SEMANTIC_MIN = 1_000_000  # records from which dedup-semantic searches k-means partitions on the cluster


class RayRunner(Runner):
    def __init__(self, cfg: PipelineConfig, out: str | Path, *, hub: Hub | None = None, engine: Any = None,
                 workers: int | None = None):
        if engine is None:
            from assay.engines.ray_engine import RayEngine

            engine = RayEngine(workers=workers or cfg.workers, hub=hub)
        super().__init__(cfg, out, hub=hub or engine.hub, engine=engine, workers=workers or engine.workers)
        raw = cfg.cache_dir
        if raw and is_url(raw):
            local = plain_path(raw)
            # an object store holds only the teacher's answers (segments); the other caches
            # (embeddings, verdicts) are SQLite files: they stay on each node's own disk
            self.cache_dir = Path(local) if local is not None else default_cache_dir()

    @property
    def request_cache_root(self) -> str:
        """Where teacher answers are cached: the config's cache_dir as written (it may be a URL)."""
        raw = self.cfg.cache_dir
        return raw if raw and is_url(raw) and plain_path(raw) is None else str(self.cache_dir)

    @property
    def engine_run_id(self) -> str:
        return getattr(self._engine, "run_id", "") or "-"

    def _run(self, started: float) -> RunResult:
        try:
            result = super()._run(started)
        finally:
            # answers of this run's teacher actors (all ended now) join the SQLite cache
            merge_segments(self.request_cache_root, finished_prefix=self.engine_run_id)
        # A worker killed mid-shard leaves its temporaries; its retry wrote the shard again.
        # Every task has ended here and the run directory is locked: nothing else is writing.
        for stale in self.rd.stages_root.rglob("*.tmp*"):
            if stale.is_file():
                stale.unlink(missing_ok=True)
        return result

    def _segment(self, kind: str, group: list[Planned], upstream: Iterator[int], prev: StageDir, engine: Any,
                 started: list[Stage]) -> Iterator[int]:
        if kind in ("main", "async"):
            return self._actor_segment(group[0], upstream, prev, engine, is_async=kind == "async")
        # pool and global segments: free their model actors once the segment is through
        return self._releasing(super()._segment(kind, group, upstream, prev, engine, started), engine, group)

    def _pool_segment(self, group: list[Planned], upstream: Iterator[int], prev: StageDir, engine: Any,
                      started: list[Stage], state_path: Path | None = None) -> Iterator[int]:
        if getattr(engine, "pool", "tasks") != "data":
            yield from super()._pool_segment(group, upstream, prev, engine, started, state_path)
            return
        from assay.engines.ray_data import map_shards

        chains: dict[int, list[ChainTask]] = {}  # by the first stage still to do (resumed shards)
        for i in upstream:  # a dataset needs its rows up front: the segment waits for its input
            first, token = self._first_undone(group, prev, i)
            if first is None:
                yield i
                continue
            self._ensure_started(group, started)
            source = group[first - 1].dir if first else prev
            chains.setdefault(first, []).append(ChainTask(i, source, token, [p.job for p in group[first:]],
                                                          state_path).handed_out())
        for _, tasks in sorted(chains.items()):
            yield from map_shards(engine, tasks)

    @staticmethod
    def _releasing(shards: Iterator[int], engine: Any, group: list[Planned]) -> Iterator[int]:
        try:
            yield from shards
        finally:
            engine.release_pool([p.job for p in group])

    def _merge(self, p: Planned, stage: GlobalStage, partials: Iterator[Any]) -> Any:
        """Global stages with a cluster-wide merge use it (dedup-minhash: distributed LSH)."""
        from assay.engines.ray_dedup import distributed_merge

        engine = self._engine
        merge = distributed_merge(stage, engine.workers, getattr(engine, "semantic_min", SEMANTIC_MIN))
        if merge is None:
            return super()._merge(p, stage, partials)
        with stage_errors(stage, -1, []):
            return merge(stage, partials)

    def _actor_segment(self, p: Planned, upstream: Iterator[int], prev: StageDir, engine: Any, *,
                       is_async: bool) -> Iterator[int]:
        """Shards of one main or async stage, sent to its actors; finished ones yielded as they come."""
        actors = None
        pending: set[Future[int]] = set()

        def drain(block: bool) -> Iterator[int]:
            nonlocal pending
            if pending:
                finished, pending = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield fut.result()

        try:
            for i in upstream:
                first, token = self._first_undone([p], prev, i)
                if first is None:
                    yield i
                    continue
                if actors is None:  # only when there is work: a resumed run starts no actor
                    actors = engine.stage_workers(p.job, is_async=is_async, cache_root=self.request_cache_root)
                task = ChainTask(i, prev, token, [p.job]).handed_out()
                pending.add(actors.call("run", task) if is_async else actors.call("run", run_chain, task))
                per = ASYNC_SHARDS_IN_FLIGHT if is_async else SHARDS_PER_ACTOR
                yield from drain(block=len(pending) >= per * len(actors.actors))
            while pending:
                yield from drain(block=True)
        finally:
            for fut in pending:
                fut.cancel()
            if actors is not None:
                engine.retire(actors)
