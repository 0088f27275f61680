"""Streaming readers: JSONL (plain or gzip, whatever the name says), JSON arrays, Parquet,
Arrow (Hugging Face `save_to_disk`) and dataset folders of such files.

A reader yields `Row`s: either parsed data or the error that kept a line from parsing, always
with its line (or row) number, so a bad line can be reported and kept aside while the rest go on.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from assay.errors import AssayError

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".parquet", ".arrow")
RAW_KEEP = 1 << 20  # keep at most 1 MiB of an unreadable line in invalid/ output


@dataclass(slots=True)
class Row:
    line: int  # 1-based line number (JSONL) or row number (columnar formats)
    data: Any = None
    error: str | None = None
    raw: str | None = None  # the offending text, for invalid/ output
    offset: int | None = None  # byte offset just after this line (plain JSONL only), for resume


def is_gzip(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def stream_kind(path: str | os.PathLike[str]) -> str | None:
    """'gzip', 'utf-16' (a UTF-16 byte order mark: Windows tools write these) or None (plain bytes)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return "gzip" if head == GZIP_MAGIC else "utf-16" if head in UTF16_BOMS else None


def is_transcoded(path: str | os.PathLike[str]) -> bool:
    """Read as a stream, not by byte ranges: compressed or UTF-16 text."""
    return stream_kind(path) is not None


class CorruptStream(Exception):
    """The compressed (or UTF-16) data ends early or is damaged: what came before it was read."""


_STREAM_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError)


def _lines(f: Any) -> Iterator[bytes]:
    it = iter(f)
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except _STREAM_ERRORS as exc:
            raise CorruptStream(str(exc) or type(exc).__name__) from None
        yield line


def _open_lines(path: str | os.PathLike[str], kind: str | None) -> Any:
    """A binary line source for a file of `stream_kind` kind: plain, gzip-decompressed, or UTF-16
    text re-encoded as UTF-8."""
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "utf-16":
        return _Utf8Lines(open(path, encoding="utf-16", newline=""))
    return open(path, "rb")


class _Utf8Lines:
    def __init__(self, text: Any):
        self.text = text

    def __iter__(self) -> Iterator[bytes]:
        for line in self.text:
            yield line.encode("utf-8", errors="surrogatepass")

    def read(self, n: int = -1) -> bytes:
        return self.text.read(n).encode("utf-8", errors="surrogatepass")

    def __enter__(self) -> _Utf8Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.text.close()


def _decode_error(line: bytes, exc: Exception) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid UTF-8 at byte {e.start}"
    msg = str(exc)
    return f"invalid JSON: {msg}" if msg else "invalid JSON"


def _raw_text(line: bytes) -> str:
    return line[:RAW_KEEP].decode("utf-8", errors="replace").rstrip("\r\n")


def read_jsonl(path: str | os.PathLike[str], *, skip_lines: int = 0, start_offset: int | None = None,
               end_offset: int | None = None) -> Iterator[Row]:
    """Rows of a JSON-lines file. Blank lines are skipped; a BOM and CRLF endings are accepted.

    `start_offset` (plain files) seeks straight to a byte position at a line start; `skip_lines`
    is the number of lines before it (or, for gzip, the number of lines to skip by reading).
    `end_offset` (plain files) stops at that byte position, which must be a line start.
    """
    kind = stream_kind(path)
    gz = kind is not None  # no byte offsets: they would not be positions in the file
    with _open_lines(path, kind) as f:
        lineno = 0
        offset = 0
        try:
            if start_offset is not None and not gz:
                f.seek(start_offset)
                offset, lineno = start_offset, skip_lines
            elif skip_lines:
                for _ in _lines(f):
                    lineno += 1
                    if lineno >= skip_lines:
                        break
            for line in _lines(f):
                if end_offset is not None and offset >= end_offset:
                    break
                lineno += 1
                offset += len(line)
                if lineno == 1 and line.startswith(BOM):
                    line = line[3:]
                if not line.strip():
                    continue
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield Row(lineno, error=_decode_error(line, exc), raw=_raw_text(line),
                              offset=None if gz else offset)
                    continue
                yield Row(lineno, data=data, offset=None if gz else offset)
        except CorruptStream as exc:
            yield Row(lineno + 1, error=f"the file's data ends early or is damaged after line {lineno} "
                      f"({exc}); the lines before it were read", raw="")


def read_json_array(path: str | os.PathLike[str], *, skip_lines: int = 0) -> Iterator[Row]:
    try:
        with _open_lines(path, stream_kind(path)) as f:
            blob = f.read()
    except _STREAM_ERRORS as exc:
        yield Row(1, error=f"the file's data ends early or is damaged ({exc}); nothing could be read", raw="")
        return
    if blob.startswith(BOM):
        blob = blob[3:]
    try:
        items = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        yield Row(1, error=_decode_error(blob, exc), raw=_raw_text(blob[:RAW_KEEP]))
        return
    if not isinstance(items, list):
        items = [items]
    for i, item in enumerate(items[skip_lines:], start=skip_lines + 1):
        yield Row(i, data=item)


def _iter_arrow_batches(batches: Iterator[Any], skip_rows: int, what: str = "file") -> Iterator[Row]:
    n = 0
    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as exc:  # pyarrow raises several types for damaged data
            yield Row(n + 1, error=f"not a readable {what} after row {n} ({exc}); the rows before it were read",
                      raw="")
            return
        if n + batch.num_rows <= skip_rows:
            n += batch.num_rows
            continue
        for item in batch.to_pylist():
            n += 1
            if n > skip_rows:
                yield Row(n, data=_decode_json_columns(item, batch.schema))


def _decode_json_columns(item: dict[str, Any], schema: Any) -> dict[str, Any]:
    # assay's own Parquet writer stores nested fields as JSON text and says so in the metadata.
    meta = schema.metadata or {}
    cols = meta.get(b"assay.json_columns")
    if cols:
        for col in json.loads(cols):
            if isinstance(item.get(col), str):
                item[col] = orjson.loads(item[col])
    return item


def read_parquet(path: str | os.PathLike[str], *, skip_lines: int = 0) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        yield Row(1, error=f"not a readable Parquet file ({exc})", raw="")
        return
    yield from _iter_arrow_batches(pf.iter_batches(batch_size=1024), skip_lines, "Parquet file")


def read_arrow(path: str | os.PathLike[str], *, skip_lines: int = 0) -> Iterator[Row]:
    import pyarrow as pa

    source = pa.memory_map(str(path), "r")
    try:
        reader = pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        try:
            reader = pa.ipc.open_file(source)
        except Exception as exc:
            yield Row(1, error=f"not a readable Arrow file ({exc})", raw="")
            return
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        yield from _iter_arrow_batches(batches, skip_lines, "Arrow file")
        return
    yield from _iter_arrow_batches(iter(reader), skip_lines, "Arrow file")


def dataset_files(path: str | os.PathLike[str], split: str | None = None) -> list[Path]:
    """The data files of a path: the file itself, or the files of a dataset folder in order.

    Understands `save_to_disk` folders (state.json lists the arrow files; dataset_dict.json
    lists splits) and Hub-style layouts (`data/train-00000-of-00002.parquet`, `train/*.jsonl`).
    """
    p = Path(path)
    if not p.exists():
        raise AssayError(f"input '{path}' does not exist")
    if p.is_file():
        return [p]
    dict_file = p / "dataset_dict.json"
    if dict_file.exists():
        splits = json.loads(dict_file.read_text())["splits"]
        chosen = [split] if split else splits
        missing = [s for s in chosen if s not in splits]
        if missing:
            raise AssayError(f"{path}: no split {missing[0]!r}; it has {', '.join(splits)}")
        return [f for s in chosen for f in dataset_files(p / s)]
    state = p / "state.json"
    if state.exists():
        return [p / d["filename"] for d in json.loads(state.read_text()).get("_data_files", [])]
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(DATA_SUFFIXES))
    files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(p).parts)]
    if split:
        files = [f for f in files if split in f.relative_to(p).parts or f.name.startswith(f"{split}-")
                 or f.name.startswith(f"{split}.")]
    if not files:
        hint = f" for split {split!r}" if split else ""
        raise AssayError(f"{path}: no data files{hint} (looked for {', '.join(DATA_SUFFIXES)})")
    return files


def read_rows(path: str | os.PathLike[str], *, skip_lines: int = 0, start_offset: int | None = None) -> Iterator[Row]:
    """Rows of one data file, by its content and suffix."""
    name = str(path)
    if name.endswith(".parquet"):
        yield from read_parquet(path, skip_lines=skip_lines)
    elif name.endswith(".arrow"):
        yield from read_arrow(path, skip_lines=skip_lines)
    elif name.endswith((".json", ".json.gz")) and _starts_with_bracket(path):
        yield from read_json_array(path, skip_lines=skip_lines)
    else:
        yield from read_jsonl(path, skip_lines=skip_lines, start_offset=start_offset)


def _starts_with_bracket(path: str | os.PathLike[str]) -> bool:
    try:
        with _open_lines(path, stream_kind(path)) as f:
            head = f.read(64).lstrip(BOM).lstrip()
    except _STREAM_ERRORS:
        return False  # the JSONL reader reports it
    return head.startswith(b"[")


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Records of a trusted file written by assay itself (run shards): no error handling."""
    with open(path, "rb") as f:
        for line in f:
            yield orjson.loads(line)
