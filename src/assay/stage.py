"""Stages: the one thing a contributor writes.

A stage is a small pydantic class whose fields are its parameters (validated from the config,
documented by `assay stages`). Pick the base that matches the work:

- `Transform.process(record)`: add fields or labels; never drops.
- `RecordCheck.check(record) -> Verdict`: judge a record (collection rules, decontamination).
- `ResponseCheck.check(record, response) -> Verdict`: judge one response (rules, verifiers).
- `GlobalStage.index(records) -> state` then `decide(record, state) -> Verdict`: needs the
  whole data set first (dedup, quotas).
- Set `execution = "async"` and write `async def aprocess_batch(records)` for I/O-bound work
  (LLM calls), or `execution = "main"` for a stage that manages its own workers (a sandbox pool).

A check never deletes: it writes `checks[key] = {passed, score, reason, ...}` and the runner's
decision (`drop`, `min_score`, `max_score`) removes what fails and sends it to `rejected/`.
The runner owns files, workers, batching, resume and stats; a stage never opens run files.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from assay.errors import ConfigError
from assay.record import Record, Response, Verdict, checks_of

Execution = Literal["pool", "main", "async", "global"]


@dataclass
class StageContext:
    """What the runner lends a stage: where it may keep caches, the seed, the worker count."""

    cache_dir: Path
    stage_dir: Path | None = None
    run_dir: Path | None = None
    seed: int = 0
    workers: int = 1
    engine: str = "local"
    store: Any = None  # the object store (assay.runner.remote.RemoteRun) when the run directory is on one


class Stage(BaseModel):
    """Base of all stages. Subclasses declare parameters as pydantic fields with descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=False, arbitrary_types_allowed=True)

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"  # bump when the output changes for the same parameters
    execution: ClassVar[Execution] = "pool"
    batch_size: ClassVar[int] = 256
    # True for checks whose result is a property of the record, not of one response
    record_level: ClassVar[bool] = False
    # What one worker of this stage needs (the Ray engine schedules by it): num_cpus, num_gpus,
    # memory (bytes). `loads_model` stages keep a loaded model per worker (an actor pool on Ray).
    resources: ClassVar[dict[str, float]] = {"num_cpus": 1}
    loads_model: ClassVar[bool] = False
    # Dotted parameter paths that change how the stage runs but not what it writes (timeouts,
    # concurrency, prices): left out of the fingerprint, so changing them redoes nothing.
    operational: ClassVar[tuple[str, ...]] = ()

    when: str | None = Field(None, description="only records matching this expression go through the "
                             "stage; the others pass unchanged (e.g. 'domain == \"math\"')")
    drop: bool = Field(True, description="drop what fails this stage's checks (to rejected/); "
                       "false only writes the checks")
    min_score: float | None = Field(None, description="decision: a check passes when its score is >= this "
                                    "(overrides the check's own pass/fail)")
    max_score: float | None = Field(None, description="decision: a check passes when its score is <= this")
    drop_empty: bool = Field(True, description="reject a record whose responses all failed")

    _label: str = PrivateAttr(default="")
    _key: str | None = PrivateAttr(default=None)
    _ctx: StageContext | None = PrivateAttr(default=None)

    # ---- identity -----------------------------------------------------------------------
    # Private attributes are read through __pydantic_private__ directly: pydantic's __getattr__
    # path costs microseconds, and these are read once per record.
    @property
    def label(self) -> str:
        """The instance name (config `name:`), defaulting to the registry name."""
        return self.__pydantic_private__["_label"] or self.name  # type: ignore[index]

    @property
    def key(self) -> str:
        """The key this stage's check is written under in `checks`."""
        private = self.__pydantic_private__
        key = private.get("_key")  # type: ignore[union-attr]
        if key is None:
            key = private["_key"] = self.label.replace("-", "_").replace(".", "_")  # type: ignore[index]
        return key

    def check_names(self) -> list[str]:
        """Keys of the checks this stage writes; the decision looks at these."""
        return [self.key]

    @property
    def ctx(self) -> StageContext:
        ctx = self.__pydantic_private__["_ctx"]  # type: ignore[index]
        if ctx is None:
            raise RuntimeError(f"stage {self.label} used before setup()")
        return ctx

    def identity(self) -> dict[str, Any]:
        """The parameters that decide the stage's output (its part of the run's fingerprint)."""
        params = self.model_dump(mode="json")
        for path in self.operational:
            *parents, leaf = path.split(".")
            node: Any = params
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(leaf, None)
        return params

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, ctx: StageContext) -> None:
        """Once per run, in the runner's process, before any batch (start a server, warm a cache)."""

    def stop(self) -> None:
        """Once per run, in the runner's process, after the last batch (also on failure)."""

    def setup(self, ctx: StageContext) -> None:
        """Once in each process that runs batches (load a model). Call super().setup(ctx)."""
        self._ctx = ctx

    def teardown(self) -> None:
        """Release what setup() took."""

    # ---- work ---------------------------------------------------------------------------
    def process_batch(self, records: list[Record]) -> None:
        """Do the stage's work on a batch, in place. Subclasses usually override a narrower hook."""
        raise NotImplementedError

    async def aprocess_batch(self, records: list[Record]) -> None:
        """The asyncio form of process_batch, for `execution = "async"` stages."""
        self.process_batch(records)

    def stats(self) -> dict[str, Any]:
        """Counters gathered since the last call (the runner calls it once per shard and adds
        the numbers up over shards and workers into stats.json)."""
        return {}

    def needs_retry(self, record: Record) -> bool:
        """True when this stage left work undone on the record (a teacher request that failed).
        The shard is then marked incomplete and the next run of the same command redoes it for
        this stage and the ones after (answered requests come from the cache)."""
        return False


class Transform(Stage):
    """Adds or changes fields (labels, language); writes no check and drops nothing."""

    def check_names(self) -> list[str]:
        return []

    def process(self, record: Record) -> None:
        raise NotImplementedError

    def process_batch(self, records: list[Record]) -> None:
        for rec in records:
            self.process(rec)


class RecordCheck(Stage):
    """Judges a whole record: `check(record) -> Verdict`, or `check_batch` for batched work."""

    record_level: ClassVar[bool] = True

    def check(self, record: Record) -> Verdict:
        raise NotImplementedError

    def check_batch(self, records: list[Record]) -> list[Verdict]:
        return [self.check(r) for r in records]

    def process_batch(self, records: list[Record]) -> None:
        key = self.key
        for rec, verdict in zip(records, self.check_batch(records), strict=True):
            checks_of(rec)[key] = verdict.to_dict()


class ResponseCheck(Stage):
    """Judges each response of a record: `check(record, response) -> Verdict`."""

    def check(self, record: Record, response: Response) -> Verdict:
        raise NotImplementedError

    def check_batch(self, items: list[tuple[Record, Response]]) -> list[Verdict]:
        return [self.check(rec, resp) for rec, resp in items]

    def process_batch(self, records: list[Record]) -> None:
        items = [(rec, resp) for rec in records for resp in rec.get("responses") or ()]
        key = self.key
        for (_, resp), verdict in zip(items, self.check_batch(items), strict=True):
            checks_of(resp)[key] = verdict.to_dict()


class GlobalStage(Stage):
    """Sees the whole data set before deciding: `index(records) -> state`, then per record
    `decide(record, state) -> Verdict | None` (None writes no check). Both passes see the same
    records (those matching `when:`) in the same order, and `self.position` is the record's
    place in the run, (shard, ordinal), in both: use it for "first seen" rules.

    For parallel indexing, also override `index_shard(records) -> partial` and
    `merge(partials) -> state`: the runner then indexes shards in worker processes and merges
    the partials in shard order.
    """

    execution: ClassVar[Execution] = "global"
    record_level: ClassVar[bool] = True

    _position: tuple[int, int] = PrivateAttr(default=(0, 0))

    @property
    def position(self) -> tuple[int, int]:
        return self._position

    def index(self, records: Iterable[Record]) -> Any:
        return self.merge([self.index_shard(records)])

    def index_shard(self, records: Iterable[Record]) -> Any:
        raise NotImplementedError

    def merge(self, partials: list[Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def parallel_index(cls) -> bool:
        return cls.index_shard is not GlobalStage.index_shard

    def decide(self, record: Record, state: Any) -> Verdict | None:
        raise NotImplementedError

    def decide_batch(self, records: list[Record], state: Any, start: tuple[int, int] = (0, 0)) -> None:
        """Decide a batch whose first record sits at `start` (shard, ordinal)."""
        shard, base = start
        for k, rec in enumerate(records):
            self._position = (shard, base + k)
            verdict = self.decide(rec, state)
            if verdict is not None:
                checks_of(rec)[self.key] = verdict.to_dict()

    def positioned(self, shard: int, records: Iterable[Record]) -> Iterator[Record]:
        """The records of one shard that this stage sees (its `when:`), with `position` set."""
        from assay.expr import compile_expr

        when = compile_expr(self.when) if self.when else None
        k = 0
        for rec in records:
            if when is None or when(rec):
                self._position = (shard, k)
                k += 1
                yield rec


# ---- registry ---------------------------------------------------------------------------

S = TypeVar("S", bound=type[Stage])
_REGISTRY: dict[str, type[Stage]] = {}
# Every module in these packages is imported to find stages; keep module imports light
# (import heavy libraries inside setup()).
STAGE_PACKAGES = ("assay.stages", "assay.verify", "assay.teacher", "assay.judge", "assay.dedup",
                  "assay.select", "assay.rules", "assay.export")
_discovered = False


def stage(name: str) -> Callable[[S], S]:
    """Class decorator: register a stage under `name` (the name used in configs and the CLI)."""

    def register(cls: S) -> S:
        if name in _REGISTRY and _REGISTRY[name] is not cls and _REGISTRY[name].__qualname__ != cls.__qualname__:
            raise ValueError(f"stage name {name!r} registered twice ({_REGISTRY[name].__module__}, {cls.__module__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return register


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for pkg_name in STAGE_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ModuleNotFoundError as exc:
            if exc.name == pkg_name:
                continue
            raise
        for mod in pkgutil.iter_modules(pkg.__path__, pkg_name + "."):
            importlib.import_module(mod.name)
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="assay.stages"):
            ep.load()
    except Exception:  # a broken third-party plugin must not break the built-in stages
        pass


def registry() -> dict[str, type[Stage]]:
    _discover()
    return dict(sorted(_REGISTRY.items()))


def stage_class(name: str) -> type[Stage]:
    reg = registry()
    if name not in reg:
        raise ConfigError(f"unknown stage {name!r}; known stages: {', '.join(reg)}")
    return reg[name]


def build_stage(name: str, params: dict[str, Any] | None = None, label: str | None = None,
                where: str | None = None) -> Stage:
    """Instantiate a registered stage, turning pydantic errors into one clear sentence."""
    cls = stage_class(name)
    try:
        inst = cls(**(params or {}))
    except ValidationError as exc:
        what = f"stage {label or name!r}" + (f" ({where})" if where else "")
        raise ConfigError(describe_validation_error(exc, cls, what)) from None
    inst._label = label or ""
    return inst


def _nested_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The (nested) model that owns the last key of `loc`, for listing the allowed keys."""
    import typing

    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            break
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if sub is None:
            break
        model = sub
    return model


def describe_validation_error(exc: ValidationError, model: type[BaseModel], what: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(_nested_model(model, tuple(err["loc"])).model_fields)
        return f"{what}: unknown parameter '{loc}'; allowed: {allowed}"
    if err["type"] == "missing":
        return f"{what}: parameter '{loc}' is required"
    return f"{what}: parameter '{loc}': {err['msg']} (got {err.get('input')!r})"


def parameter_docs(cls: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) for each parameter of a stage or source."""
    rows = []
    for fname, f in cls.model_fields.items():
        ann = f.annotation
        tname = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
        default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
        rows.append((fname, tname, default, f.description or ""))
    return rows
