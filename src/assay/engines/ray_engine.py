"""The Ray engine: the same shard tasks as the local engine, scheduled on a Ray cluster.

    assay run pipeline.yaml --out /shared/run --engine ray [--address auto | ray://head:10001]

- Per-record stages (fused per shard, `run_chain`), reading (`ingest_span`) and the shard pass of
  global stages (`run_index`) are Ray tasks that ask for the stage's declared `resources`
  (num_cpus, num_gpus, memory) and are retried when their worker dies.
- `loads_model` stages run on a pool of long-lived actors (the model loads once per actor).
- `main` stages (their own process pool or sandbox) run in one actor per node; `async` stages
  (teacher, judge) in one asyncio actor per stage, so every request shares the stage's
  concurrency and rate limits (`ray_runner.RayRunner`).
A task writes its outputs, then its marker, exactly as locally: a retried task rewrites whole
files and resume is the same.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from assay.errors import AssayError, ConfigError
from assay.runner.engine import Engine
from assay.runner.progress import Hub
from assay.stage import Stage, stage_class

POLL_SECONDS = 0.3
DEFAULT_RETRIES = 3
# The object store holds only small task arguments and results (shards travel as files).
LOCAL_OBJECT_STORE = 256 * 1024**2


@dataclass(frozen=True)
class Resources:
    """What one worker of a group of stages asks for: the largest need of any of them."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: float = 0.0

    @classmethod
    def of(cls, classes: list[type[Stage]]) -> Resources:
        if not classes:
            return cls()
        return cls(num_cpus=max(float(c.resources.get("num_cpus", 1)) for c in classes),
                   num_gpus=max(float(c.resources.get("num_gpus", 0)) for c in classes),
                   memory=max(float(c.resources.get("memory", 0)) for c in classes))

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            out["num_gpus"] = self.num_gpus
        if self.memory:
            out["memory"] = int(self.memory)
        return out


def declares_resources(cls: type[Stage]) -> bool:
    return any("resources" in vars(k) for k in cls.__mro__ if k is not Stage and issubclass(k, Stage))


def task_jobs(task: Any) -> list[Any]:
    """The stage jobs a shard task runs (ChainTask.jobs, IndexTask.job; none for reading)."""
    if hasattr(task, "jobs"):
        return list(task.jobs)
    if hasattr(task, "job"):
        return [task.job]
    return []


def probe(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with one sentence, when nothing listens at HOST:PORT (Ray itself retries
    an unreachable head for minutes)."""
    import socket

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise AssayError(f"nothing answers at {address} ({exc.strerror or exc}); start the head with "
                         "`ray start --head` or fix --address") from None


def unwrap(exc: BaseException) -> BaseException:
    """The exception a user should see: the stage's own error, or one sentence for a lost worker."""
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    if isinstance(exc, (rex.WorkerCrashedError, rex.ActorDiedError, rex.ActorUnavailableError,
                        rex.NodeDiedError, rex.OutOfMemoryError)):
        return AssayError(f"a Ray worker died and its retries ran out ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:160]}); rerun the same command to resume")
    if isinstance(exc, rex.RayError):
        return AssayError(f"Ray failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return exc


def as_future(ref: Any) -> Future[Any]:
    """A concurrent.futures.Future for an ObjectRef, carrying the unwrapped exception."""
    out: Future[Any] = Future()

    def done(f: Future[Any]) -> None:
        exc = f.exception()
        if exc is None:
            out.set_result(f.result())
        else:
            out.set_exception(unwrap(exc))

    ref.future().add_done_callback(done)
    return out


class ActorGroup:
    """Actors that take shard tasks, each call to the least busy one."""

    def __init__(self, actors: list[Any], helpers: list[Any] | None = None):
        self.actors = actors
        self.helpers = helpers or []  # actors the group's actors use (a shared limiter): ended with them
        self.busy = [0] * len(actors)
        self.served = [0] * len(actors)
        self._lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Future[Any]:
        with self._lock:
            k = min(range(len(self.actors)), key=self.busy.__getitem__)
            self.busy[k] += 1
            self.served[k] += 1
        fut = as_future(getattr(self.actors[k], method).remote(*args))

        def release(_: Future[Any]) -> None:
            with self._lock:
                self.busy[k] -= 1

        fut.add_done_callback(release)
        return fut

    def close(self, timeout: float = 30.0) -> None:
        import ray

        refs = [a.close.remote() for a in self.actors]
        try:
            ray.wait(refs, num_returns=len(refs), timeout=timeout)
        except Exception:  # an actor that is already dead has nothing to close
            pass
        for a in self.actors + self.helpers:
            try:
                ray.kill(a, no_restart=True)
            except Exception:
                pass
        self.actors, self.helpers = [], []


class RayEngine(Engine):
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, hub: Hub | None = None, *,
                 max_retries: int = DEFAULT_RETRIES, object_store_memory: int | None = None,
                 pool: str | None = None, semantic_min: int | None = None, teacher_actors: int | None = None):
        import ray

        # per-record segments: "tasks" (streamed shard by shard) or "data" (a Ray Data pipeline each)
        self.pool = (pool or os.environ.get("ASSAY_RAY_POOL") or "tasks").lower()
        if self.pool not in ("tasks", "data"):
            raise ConfigError(f"ASSAY_RAY_POOL must be tasks or data, got {self.pool!r}")
        # dedup-semantic on at least this many records: k-means partitions searched across the cluster
        raw_min = semantic_min if semantic_min is not None else os.environ.get("ASSAY_RAY_SEMANTIC_MIN", 1_000_000)
        try:
            self.semantic_min = int(raw_min)
        except ValueError:
            raise ConfigError(f"ASSAY_RAY_SEMANTIC_MIN must be a number of records, got {raw_min!r}") from None

        # actors per async (teacher) stage; more than one share the stage's limits through one actor
        raw_actors = teacher_actors if teacher_actors is not None else os.environ.get("ASSAY_RAY_TEACHER_ACTORS", 1)
        try:
            self.teacher_actors = max(1, int(raw_actors))
        except ValueError:
            raise ConfigError(f"ASSAY_RAY_TEACHER_ACTORS must be a number of actors, got {raw_actors!r}") from None

        from assay.engines.ray_runner import RayRunner
        from assay.engines.ray_tasks import ProgressSink, run_shard_task

        self.runner_class = RayRunner
        self.hub = hub or Hub(quiet=True)
        self.max_retries = max_retries
        self._owns_cluster = False
        if not ray.is_initialized():
            opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                    "logging_level": "warning", "configure_logging": True}
            quiet = logging.getLogger("ray")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # Ray's start-up notices are not the user's business
            try:
                address = address or os.environ.get("RAY_ADDRESS") or None
                if address:
                    probe(address)
                    ray.init(address=address, **opts)
                else:  # a private local cluster for this run (never a stale one found on disk)
                    ray.init(address="local", num_cpus=workers,
                             object_store_memory=object_store_memory or LOCAL_OBJECT_STORE, **opts)
                self._owns_cluster = True  # connected here: disconnect (and stop a local cluster) at close
            except AssayError:
                raise
            except Exception as exc:  # connection refused, bad address, missing auth token, ...
                where = f"at {address!r}" if address else "locally"
                raise AssayError(f"could not start or reach a Ray cluster {where}: {exc}") from None
            finally:
                quiet.setLevel(level)
        res = ray.cluster_resources()
        self.cluster_cpus = float(res.get("CPU", 1.0))
        self.cluster_gpus = float(res.get("GPU", 0.0))
        self.workers = max(1, int(workers or self.cluster_cpus))
        self.run_id = uuid.uuid4().hex
        self.sink_name = f"assay-progress-{self.run_id}"
        self._sink = ray.remote(num_cpus=0)(ProgressSink).options(name=self.sink_name).remote()
        self._task = ray.remote(run_shard_task)
        self._pools: dict[tuple[str, ...], ActorGroup] = {}
        self._groups: list[ActorGroup] = []
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="assay-ray-progress", daemon=True)
        self._poller.start()

    # ---- tasks --------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], task: Any) -> Future[Any]:
        jobs = task_jobs(task)
        classes = [stage_class(j.name) for j in jobs]
        res = self.fit(Resources.of(classes), " + ".join(j.label or j.name for j in jobs) or "read")
        if any(c.loads_model for c in classes):
            return self.model_pool(jobs, res).call("run", fn, task)
        ref = self._task.options(max_retries=self.max_retries, retry_exceptions=False, **res.options()).remote(
            fn, task, self.sink_name, self.run_id)
        return as_future(ref)

    def fit(self, res: Resources, what: str) -> Resources:
        """Check a need against the cluster: a need no node can meet would wait forever."""
        if res.num_gpus > self.cluster_gpus:
            raise ConfigError(f"stage {what} asks for {res.num_gpus:g} GPU(s) per worker; the Ray cluster has "
                              f"{self.cluster_gpus:g}")
        if res.num_cpus > self.cluster_cpus:
            return Resources(self.cluster_cpus, res.num_gpus, res.memory)
        return res

    # ---- actors -------------------------------------------------------------------------------
    def _actor(self, cls: type, res: Resources, *args: Any, **options: Any) -> Any:
        import ray

        return ray.remote(cls).options(max_restarts=self.max_retries, max_task_retries=self.max_retries,
                                       **res.options(), **options).remote(self.run_id, self.sink_name, *args)

    def model_pool(self, jobs: list[Any], res: Resources) -> ActorGroup:
        """Actors for a chain with a model stage: as many as the cluster fits, always leaving a
        CPU for plain tasks (reading, other segments) so streaming segments cannot deadlock."""
        from assay.engines.ray_tasks import ChainWorker

        key = tuple(j.fp for j in jobs)
        pool = self._pools.get(key)
        if pool is None:
            n = self.model_pool_size(res)
            cpus = min(res.num_cpus, max(0.0, self.cluster_cpus - 1) / n)
            actor_res = Resources(cpus, res.num_gpus, res.memory)
            pool = self._pools[key] = ActorGroup([self._actor(ChainWorker, actor_res) for _ in range(n)])
        return pool

    def model_pool_size(self, res: Resources) -> int:
        if res.num_gpus:
            n = int(self.cluster_gpus // res.num_gpus)
        else:
            spare = max(0.0, self.cluster_cpus - 1)
            n = int(spare // res.num_cpus) if res.num_cpus else self.workers
        return max(1, min(n, self.workers))

    def release_pool(self, jobs: list[Any]) -> None:
        """Free a segment's model actors (and their CPUs/GPUs) once it has finished."""
        for key in [k for k in self._pools if set(k) & {j.fp for j in jobs}]:
            self._pools.pop(key).close()

    def stage_workers(self, job: Any, *, is_async: bool, cache_root: str | None = None) -> ActorGroup:
        """Actors for a main stage (one per node) or an async stage (`teacher_actors` for the run)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from assay.engines.ray_tasks import ChainWorker

        cls = stage_class(job.name)
        declared = Resources.of([cls]) if declares_resources(cls) else Resources(num_cpus=0)
        res = self.fit(declared, job.label or job.name)
        if is_async:
            group = self._async_group(job, res, cache_root)
        else:
            nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU")]
            placements = [{"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=True)}
                          for node in nodes] or [{}]
            group = ActorGroup([self._actor(ChainWorker, res, [job], **where) for where in placements])
        self._groups.append(group)
        return group

    def _async_group(self, job: Any, res: Resources, cache_root: str | None) -> ActorGroup:
        """One asyncio actor, or several sharing the stage's rate limits through a SharedLimits
        actor, each with its share of the stage's concurrency."""
        import ray

        from assay.engines.ray_limits import SharedLimits
        from assay.engines.ray_tasks import AsyncStageWorker
        from assay.stage import build_stage

        n = self.teacher_actors
        teacher = getattr(build_stage(job.name, job.params, job.label), "teacher", None)
        if n == 1 or teacher is None:
            return ActorGroup([self._actor(AsyncStageWorker, res, job, cache_root, max_concurrency=64)])
        total = max(1, int(teacher.max_concurrency))
        n = min(n, total)  # every actor keeps at least one open request
        limits = ray.remote(SharedLimits).options(num_cpus=0, max_concurrency=10_000, max_restarts=-1).remote(
            teacher.rpm, teacher.tpm)
        shares = [total // n + (1 if k < total % n else 0) for k in range(n)]
        return ActorGroup([self._actor(AsyncStageWorker, res, job, cache_root, (limits, share), max_concurrency=64)
                           for share in shares], helpers=[limits])

    def retire(self, group: ActorGroup) -> None:
        group.close()
        if group in self._groups:
            self._groups.remove(group)

    # ---- progress -----------------------------------------------------------------------------
    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._drain()

    def _drain(self) -> None:
        import ray

        try:
            counts = ray.get(self._sink.take.remote(), timeout=10)
        except Exception:  # progress is cosmetic: never let it break a run
            return
        for label, n in counts.items():
            self.hub.advance(label, n)

    # ---- shutdown -----------------------------------------------------------------------------
    def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        self._stop.set()
        self._poller.join(timeout=5)
        for group in [*self._pools.values(), *self._groups]:
            group.close()
        self._pools.clear()
        self._groups.clear()
        self._drain()
        try:
            ray.kill(self._sink)
        except Exception:
            pass
        if self._owns_cluster:
            ray.shutdown()


def cluster_summary() -> dict[str, Any]:
    """CPUs, GPUs and nodes of the connected cluster (for logs and the benchmark)."""
    import ray

    res = ray.cluster_resources()
    return {"nodes": sum(1 for n in ray.nodes() if n.get("Alive")), "cpus": res.get("CPU", 0),
            "gpus": res.get("GPU", 0), "memory_gb": round(res.get("memory", 0) / 1e9, 1),
            "slots": math.floor(res.get("CPU", 0))}
