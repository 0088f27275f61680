"""assay's writers with one explicit Arrow schema, for uniform SFT rows.

The core Parquet / Arrow writers infer a schema from their first batch of rows; a label that is
missing from all of those rows would then be typed as text for the whole file. Export knows every
column's type after its first pass, so these subclasses take the schema instead of guessing it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assay.io.writers import ArrowStreamWriter, HFDatasetWriter, JsonlWriter, ParquetWriter, Writer


class _Typed:
    _rows: list[dict[str, Any]]
    _schema: Any

    def _table(self) -> Any:
        import pyarrow as pa

        table = pa.Table.from_pylist(self._rows, schema=self._schema)
        self._rows = []
        return table


class TypedParquetWriter(_Typed, ParquetWriter):
    def __init__(self, path: str | os.PathLike[str], schema: Any):
        super().__init__(path, json_columns=[])
        self._schema = schema
        self._columns = list(schema.names)


class TypedArrowStreamWriter(_Typed, ArrowStreamWriter):
    def __init__(self, path: str | os.PathLike[str], schema: Any):
        super().__init__(path, json_columns=[])
        self._schema = schema
        self._columns = list(schema.names)


class TypedHFDatasetWriter(HFDatasetWriter):
    """A `datasets.load_from_disk` folder whose Arrow shard has the given schema."""

    def __init__(self, path: str | os.PathLike[str], schema: Any, description: str = ""):
        super().__init__(path, json_columns=[], description=description)
        self._arrow = TypedArrowStreamWriter(Path(path) / self.SHARD, schema)


def is_folder_target(path: str | os.PathLike[str]) -> bool:
    return not str(path).endswith((".jsonl", ".jsonl.gz", ".json", ".parquet"))


def open_typed_writer(path: str | os.PathLike[str], schema: Any, description: str = "") -> Writer:
    """By the name: `.parquet`, `.jsonl` / `.jsonl.gz` / `.json` (JSON lines), else a Hugging Face
    dataset folder."""
    name = str(path)
    if name.endswith(".parquet"):
        return TypedParquetWriter(path, schema)
    if name.endswith((".jsonl", ".jsonl.gz", ".json")):
        return JsonlWriter(path)
    return TypedHFDatasetWriter(path, schema, description)
