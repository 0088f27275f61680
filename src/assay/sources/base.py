"""Source adapters: one small class per public data-set format, mapping a row to a record.

    @source("gsm8k")
    class GSM8K(Source):
        '''GSM8K: `question`, `answer` ending in `#### N`.'''
        domain = "math"

        def convert(self, row, at):
            return self.record(at, prompt=need(row, "question"), reference={"answer": ...})

`convert` raises SourceError (through `need`) for a row it cannot map; the runner writes the row to
invalid/ with its file and line and goes on. Options are pydantic fields (`assay sources`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay.errors import ConfigError, SourceError
from assay.record import Record


@dataclass(slots=True)
class RowAt:
    """Where a row came from: used for ids and error messages."""

    file: str
    line: int  # 1-based line or row number within the file
    index: int  # 0-based row number across all files of this input


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ClassVar[str] = ""
    domain: ClassVar[str] = "math"

    id_prefix: str | None = Field(None, description="prefix of generated ids (default: the source name)")

    def convert(self, row: dict[str, Any], at: RowAt) -> Record:
        raise NotImplementedError

    # ---- helpers for adapters -------------------------------------------------------------
    def make_id(self, at: RowAt, key: Any = None) -> str:
        """`prefix/key`, with the row's own id when it has one, else its index."""
        return f"{self.id_prefix or self.name}/{at.index if key is None or key == '' else key}"

    def record(self, at: RowAt, *, key: Any = None, domain: str | None = None, **fields: Any) -> Record:
        rec: Record = {"id": self.make_id(at, key), "domain": domain or self.domain, "source": self.name}
        for k, v in fields.items():
            if v is not None and v != {} and v != []:
                rec[k] = v
        return rec


def need(row: dict[str, Any], key: str, kinds: type | tuple[type, ...] = str) -> Any:
    """row[key], or a SourceError naming the missing or mistyped field."""
    if key not in row or row[key] is None:
        raise SourceError("is missing", key)
    value = row[key]
    if not isinstance(value, kinds):
        names = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        raise SourceError(f"expected {names}, got {type(value).__name__}", key)
    return value


T = TypeVar("T", bound=type[Source])
_SOURCES: dict[str, type[Source]] = {}
_discovered = False


def source(name: str) -> Callable[[T], T]:
    def register(cls: T) -> T:
        cls.name = name
        _SOURCES[name] = cls
        return cls

    return register


def sources() -> dict[str, type[Source]]:
    global _discovered
    if not _discovered:
        _discovered = True
        import assay.sources as pkg

        for mod in pkgutil.iter_modules(pkg.__path__, "assay.sources."):
            importlib.import_module(mod.name)
    return dict(sorted(_SOURCES.items()))


def build_source(name: str, options: dict[str, Any] | None = None) -> Source:
    known = sources()
    if name not in known:
        raise ConfigError(f"unknown source {name!r}; known sources: {', '.join(known)}")
    cls = known[name]
    try:
        return cls(**(options or {}))
    except ValidationError as exc:
        from assay.stage import describe_validation_error

        raise ConfigError(describe_validation_error(exc, cls, f"source {name!r}")) from None
