"""Writers that commit atomically: data goes to a temporary name and is renamed into place on
`commit()`, so a killed run never leaves a half-written file under the final name."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from assay.errors import AssayError

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTS)


def dumps_line(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTS | orjson.OPT_APPEND_NEWLINE)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=_OPTS | orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


class JsonlWriter:
    """JSON lines, gzip-compressed when the name ends in `.gz`."""

    def __init__(self, path: str | os.PathLike[str], *, buffer: int = 1 << 20):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = f"{self.path}.tmp{os.getpid()}"
        raw: IO[bytes] = open(self._tmp, "wb", buffering=buffer)
        gz = str(path).endswith(".gz")
        self._f: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) if gz else raw
        self._raw = raw
        self.count = 0

    def write(self, obj: Any) -> None:
        self._f.write(dumps_line(obj))
        self.count += 1

    def write_many(self, objs: Iterable[Any]) -> None:
        for obj in objs:
            self.write(obj)

    def commit(self) -> None:
        self._f.close()
        if self._f is not self._raw:
            self._raw.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        if self._f is not self._raw:
            self._raw.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.commit() if exc_type is None else self.abort()


class ParquetWriter:
    """Parquet rows. By default nested fields (dicts, lists) are stored as JSON text, because
    records differ in shape from row to row; the schema metadata names those columns so assay
    reads them back. `json_columns=[]` keeps nested types native (for uniform rows such as an
    SFT export)."""

    NESTED = ("reference", "responses", "labels", "meta", "checks", "messages")

    def __init__(self, path: str | os.PathLike[str], *, batch_rows: int = 2048,
                 json_columns: list[str] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = f"{self.path}.tmp{os.getpid()}"
        self._rows: list[dict[str, Any]] = []
        self._batch_rows = batch_rows
        self._json_cols = json_columns
        self._columns: list[str] | None = None
        self._schema: Any = None
        self._writer: Any = None
        self.count = 0

    def write(self, obj: dict[str, Any]) -> None:
        self._rows.append(obj)
        self.count += 1
        if len(self._rows) >= self._batch_rows:
            self._flush()

    def write_many(self, objs: Iterable[dict[str, Any]]) -> None:
        for obj in objs:
            self.write(obj)

    def _table(self) -> Any:
        import pyarrow as pa

        if self._columns is None:
            keys: dict[str, None] = {}
            for row in self._rows:
                keys.update(dict.fromkeys(row))
            self._columns = list(keys)
            if self._json_cols is None:
                self._json_cols = [k for k in keys if k in self.NESTED or any(
                    isinstance(r.get(k), (dict, list)) for r in self._rows)]
        extra = {k for r in self._rows for k in r} - set(self._columns)
        if extra:
            raise AssayError(f"{self.path}: field(s) {sorted(extra)} appear after the first rows; "
                             "Parquet needs one schema (write JSONL instead)")
        json_cols = set(self._json_cols or ())
        rows = [{k: (dumps(r[k]).decode() if k in json_cols and r.get(k) is not None else r.get(k))
                 for k in self._columns} for r in self._rows]
        table = pa.Table.from_pylist(rows)
        if self._schema is None:
            fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
            self._schema = pa.schema(fields, metadata={"assay.json_columns": json.dumps(sorted(json_cols))})
        self._rows = []
        return table.cast(self._schema)

    def _open(self, schema: Any) -> Any:
        import pyarrow.parquet as pq

        return pq.ParquetWriter(self._tmp, schema)

    def _flush(self) -> None:
        if not self._rows:
            return
        table = self._table()
        if self._writer is None:
            self._writer = self._open(self._schema)
        self._writer.write_table(table)

    def commit(self) -> None:
        import pyarrow as pa

        self._flush()
        if self._writer is None:
            self._writer = self._open(self._schema or pa.schema([]))
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self) -> ParquetWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.commit() if exc_type is None else self.abort()


class ArrowStreamWriter(ParquetWriter):
    """An Arrow IPC stream file, the format of Hugging Face `save_to_disk` shards."""

    def _open(self, schema: Any) -> Any:
        import pyarrow as pa

        return pa.ipc.new_stream(self._tmp, schema)


class HFDatasetWriter:
    """A folder that `datasets.load_from_disk` opens: one Arrow shard, state.json, dataset_info.json."""

    SHARD = "data-00000-of-00001.arrow"

    def __init__(self, path: str | os.PathLike[str], *, json_columns: list[str] | None = None,
                 description: str = ""):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._arrow = ArrowStreamWriter(self.path / self.SHARD, json_columns=json_columns)
        self._description = description

    @property
    def count(self) -> int:
        return self._arrow.count

    def write(self, obj: dict[str, Any]) -> None:
        self._arrow.write(obj)

    def write_many(self, objs: Iterable[dict[str, Any]]) -> None:
        self._arrow.write_many(objs)

    def commit(self) -> None:
        import hashlib

        self._arrow.commit()
        digest = hashlib.sha256(str(self.path.resolve()).encode() + str(self.count).encode()).hexdigest()[:16]
        atomic_write_json(self.path / "state.json", {
            "_data_files": [{"filename": self.SHARD}], "_fingerprint": digest, "_format_columns": None,
            "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": None,
        })
        atomic_write_json(self.path / "dataset_info.json", {
            "citation": "", "description": self._description, "homepage": "", "license": "",
        })

    def abort(self) -> None:
        self._arrow.abort()

    def __enter__(self) -> HFDatasetWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.commit() if exc_type is None else self.abort()


Writer = JsonlWriter | ParquetWriter | HFDatasetWriter


def open_writer(path: str | os.PathLike[str], *, json_columns: list[str] | None = None) -> Writer:
    """A writer chosen by the name: `.parquet`, `.jsonl.gz`, `.jsonl`/`.json`, or else a folder
    that `datasets.load_from_disk` reads."""
    name = str(path)
    if name.endswith(".parquet"):
        return ParquetWriter(path, json_columns=json_columns)
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson", ".gz")):
        return JsonlWriter(path)
    return HFDatasetWriter(path, json_columns=json_columns)
