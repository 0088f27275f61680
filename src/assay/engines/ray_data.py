"""Per-record segments as Ray Data pipelines (`ASSAY_RAY_POOL=data`, or RayEngine(pool="data")).

A segment's rows are its shard tasks; `map_batches` runs the fused chain of stages over one
shard per batch (the same `run_chain` as everywhere) and returns the shard index. CPU chains
run as Ray Data tasks; a chain with a `loads_model` stage runs on an actor pool, so each actor
loads the model once. Both ask for the stages' declared resources. A dataset needs its rows up
front, so the segment first waits for its whole upstream (the default task mode streams shards
from one segment to the next instead; docs/ray.md compares the two).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np

from assay.engines.ray_tasks import enter_run, run_shard_task
from assay.errors import AssayError
from assay.runner.shard import ChainTask, run_chain
from assay.stage import stage_class


def run_chain_rows(batch: dict[str, np.ndarray], run_id: str, sink: str | None) -> dict[str, np.ndarray]:
    """The Ray Data UDF: run each shard task of the batch; the output rows are shard indices."""
    shards = [run_shard_task(run_chain, pickle.loads(blob), sink, run_id) for blob in batch["task"]]
    return {"shard": np.asarray(shards, dtype=np.int64)}


class ChainRows:
    """The actor-pool form of `run_chain_rows`: stages set up in the actor stay (a loaded model)."""

    def __init__(self, run_id: str, sink: str | None):
        enter_run(run_id)
        self.run_id, self.sink = run_id, sink

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_chain_rows(batch, self.run_id, self.sink)


def _user_error(exc: BaseException) -> BaseException:
    """The stage's own error inside Ray Data's wrappers, else the engine's one-sentence form."""
    from assay.engines.ray_engine import unwrap

    seen: BaseException | None = exc
    while seen is not None:
        cause = getattr(seen, "cause", None)
        for candidate in (seen, cause):
            if isinstance(candidate, AssayError):
                return candidate
        seen = seen.__cause__ or (cause if isinstance(cause, BaseException) else None)
    return unwrap(exc)


def map_shards(engine: Any, tasks: list[ChainTask]) -> Iterator[int]:
    """Run shard tasks (all with the same chain of stages) as one Ray Data pipeline."""
    import ray.data

    from assay.engines.ray_engine import Resources

    if not tasks:
        return
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_auto_log_stats = False
    jobs = tasks[0].jobs
    classes = [stage_class(j.name) for j in jobs]
    res = engine.fit(Resources.of(classes), " + ".join(j.label or j.name for j in jobs))
    rows = [{"shard": t.shard, "task": pickle.dumps(t, protocol=pickle.HIGHEST_PROTOCOL)} for t in tasks]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    opts: dict[str, Any] = {"batch_size": 1, "num_cpus": res.num_cpus}
    if res.num_gpus:
        opts["num_gpus"] = res.num_gpus
    if res.memory:
        opts["memory"] = res.memory
    if any(c.loads_model for c in classes):
        actors = engine.model_pool_size(res)
        ds = ds.map_batches(ChainRows, fn_constructor_args=(engine.run_id, engine.sink_name),
                            compute=ray.data.ActorPoolStrategy(size=actors), **opts)
    else:  # Ray Data retries a task whose worker died, and restarts a pool's dead actors
        ds = ds.map_batches(run_chain_rows, fn_kwargs={"run_id": engine.run_id, "sink": engine.sink_name}, **opts)
    try:
        for row in ds.iter_rows():
            yield int(row["shard"])
    except Exception as exc:
        raise _user_error(exc) from None
