"""The pipeline config (YAML), validated with messages that name the key and the allowed ones.

    seed: 0
    inputs:
      - {path: examples/quickstart.jsonl}
      - {path: ../shared/data/gsm8k/test.jsonl, source: gsm8k, limit: 200}
    stages:
      - collect: {require: {code: [reference.tests]}}
      - dedup-exact
      - math-verify: {when: 'domain == "math"'}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assay.errors import ConfigError
from assay.stage import Stage, build_stage, describe_validation_error


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="a file (.jsonl, .jsonl.gz, .json, .parquet, .arrow) or a dataset folder")
    source: str = Field("record", description="the adapter that maps rows to records (`assay sources`)")
    split: str | None = Field(None, description="for dataset folders with several splits")
    limit: int | None = Field(None, ge=0, description="read at most this many rows")
    options: dict[str, Any] = Field(default_factory=dict, description="options of the source adapter")


class StageSpec(BaseModel):
    """One entry of `stages:`: a registered stage name, an optional instance label, parameters."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.label or self.stage

    def build(self, where: str | None = None) -> Stage:
        return build_stage(self.stage, self.params, self.label, where)


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["jsonl", "jsonl.gz", "parquet"] = "jsonl"


class ExportSpec(BaseModel):
    """Write the SFT dataset at the end of the run (same as `assay export DIR ...`)."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="relative to the run directory: NAME.jsonl, NAME.parquet, or a folder "
                    "(Hugging Face dataset)")
    format: Literal["messages", "sharegpt", "alpaca"] = "messages"
    reasoning: Literal["think", "field", "none"] = "think"
    system: str | None = None
    only_passing: bool = False


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "pipeline"
    seed: int = 0
    inputs: list[InputSpec] = Field(min_length=1)
    stages: list[StageSpec] = Field(default_factory=list)
    shard_size: int = Field(10_000, ge=1, description="input rows per shard (the unit of parallelism and resume)")
    workers: int | None = Field(None, ge=1, description="worker processes (default: all cores)")
    engine: Literal["local", "ray"] = "local"
    output: OutputSpec = Field(default_factory=OutputSpec)
    export: ExportSpec | None = Field(None, description="export the kept responses as an SFT dataset at the end")
    cache_dir: str | None = Field(None, description="persistent caches (default: $ASSAY_CACHE_DIR or ~/.cache/assay)")

    @field_validator("stages", mode="before")
    @classmethod
    def _normalise_stages(cls, value: Any) -> Any:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError("'stages' must be a list")
        return [normalise_stage_entry(v, i) for i, v in enumerate(value)]

    @field_validator("inputs", mode="before")
    @classmethod
    def _normalise_inputs(cls, value: Any) -> Any:
        if isinstance(value, (str, dict)):
            value = [value]
        return [{"path": v} if isinstance(v, str) else v for v in value or []]

    def build_stages(self) -> list[Stage]:
        stages = [spec.build(f"stages[{i}]") for i, spec in enumerate(self.stages)]
        labels = [s.label for s in stages]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ConfigError(f"stage {sorted(dup)[0]!r} appears twice; give each a distinct 'name:'")
        return stages

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


def default_cache_dir() -> Path:
    """This machine's cache folder: $ASSAY_CACHE_DIR, else ~/.cache/assay."""
    return Path(os.environ.get("ASSAY_CACHE_DIR") or Path.home() / ".cache" / "assay")


def normalise_stage_entry(entry: Any, i: int) -> dict[str, Any]:
    """Accept `- name`, `- name: {params}` and `- {stage: name, name: label, ...params}`."""
    if isinstance(entry, str):
        return {"stage": entry}
    if not isinstance(entry, dict) or not entry:
        raise ValueError(f"stages[{i}] must be a stage name or a mapping, got {entry!r}")
    if "stage" in entry:
        params = {k: v for k, v in entry.items() if k not in ("stage", "name")}
        return {"stage": entry["stage"], "label": entry.get("name"), "params": params}
    if len(entry) != 1:
        raise ValueError(f"stages[{i}]: write `- STAGE: {{params}}` or `- {{stage: STAGE, ...}}`; "
                         f"got keys {sorted(entry)}")
    (name, params), = entry.items()
    params = dict(params or {})
    label = params.pop("name", None)
    return {"stage": name, "label": label, "params": params}


def load_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> PipelineConfig:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping with 'inputs' and 'stages'")
    # Relative input paths are relative to the config file, so a config runs from anywhere.
    for inp in raw.get("inputs") or []:
        if isinstance(inp, dict) and isinstance(inp.get("path"), str):
            inp["path"] = _relative_to(inp["path"], p.parent)
    if isinstance(raw.get("inputs"), str):
        raw["inputs"] = [{"path": _relative_to(raw["inputs"], p.parent)}]
    elif isinstance(raw.get("inputs"), list):
        raw["inputs"] = [{"path": _relative_to(v, p.parent)} if isinstance(v, str) else v for v in raw["inputs"]]
    if isinstance(raw.get("stages"), list):
        raw["stages"] = [_paths_from_config_dir(st, p.parent) for st in raw["stages"]]
    raw.update(overrides or {})
    return parse_config(raw, str(path))


def _paths_from_config_dir(value: Any, base: Path) -> Any:
    """Stage parameters that name files next to the config (benchmarks, tokenizers, models)
    are read relative to the config file, like `inputs`: a relative path that exists there and
    not in the working directory is made absolute."""
    if isinstance(value, dict):
        return {k: _paths_from_config_dir(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_paths_from_config_dir(v, base) for v in value]
    if (isinstance(value, str) and value and "\n" not in value and len(value) < 4096 and "://" not in value
            and not os.path.isabs(value) and not os.path.exists(value) and (base / value).exists()):
        return os.path.normpath(base / value)
    return value


def _relative_to(path: str, base: Path) -> str:
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.normpath(base / path)


def parse_config(raw: dict[str, Any], where: str = "config") -> PipelineConfig:
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_config_error(exc, where)) from None
    cfg.build_stages()  # fail early on unknown stages and bad parameters
    return cfg


def describe_config_error(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        model: type[BaseModel] = PipelineConfig
        if loc.startswith("inputs"):
            model = InputSpec
        elif loc.startswith("output"):
            model = OutputSpec
        elif loc.startswith("export"):
            model = ExportSpec
        return f"{where}: unknown key '{loc}'; allowed: {', '.join(model.model_fields)}"
    if err["type"] == "missing":
        return f"{where}: '{loc}' is required"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: '{loc}': {msg}"


__all__ = ["InputSpec", "PipelineConfig", "StageSpec", "describe_validation_error", "load_config", "parse_config"]
