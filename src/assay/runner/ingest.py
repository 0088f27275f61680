"""The read stage: inputs -> source adapter -> validation -> shards of records.

Bad rows (unparseable JSON, invalid UTF-8, a row the adapter cannot map, a record of the wrong
shape) go to invalid/ with file, line and error; every good row goes on.

A shard is a piece of one input file: at most `shard_size` lines (rows), so shard boundaries
are the same on every run. Plain JSONL files are split by byte ranges found with a fast newline
scan, and the shards are parsed in the worker processes in parallel; other formats (gzip,
Parquet, Arrow, JSON arrays, inputs with a `limit`) are read here in order. A shard's marker
records its span, so a resumed run skips what is already sharded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assay.config import InputSpec
from assay.errors import RecordError
from assay.io.readers import BOM, Row, dataset_files, is_transcoded, read_jsonl, read_rows
from assay.io.writers import JsonlWriter
from assay.record import validate_record
from assay.runner.decision import StageStats
from assay.runner.progress import Hub
from assay.runner.rundir import StageDir, fingerprint
from assay.sources.base import RowAt, Source, build_source

LABEL = "read"
SCAN_BLOCK = 1 << 22


def ingest_fingerprint(inputs: list[InputSpec], shard_size: int, origins: dict[int, str] | None = None) -> str:
    """What the read stage's output depends on. An input copied from a URL (`origins`: input index
    -> URL) counts by the URL and the identity of what was copied (sizes, ETags), not by the local
    copy, so a run resumed on another machine keeps its shards."""
    files: list[Any] = []
    specs = []
    for k, spec in enumerate(inputs):
        url = (origins or {}).get(k)
        if url is not None:
            sidecar = Path(spec.path).with_name(Path(spec.path).name + ".source.json")
            files.append([url, json.loads(sidecar.read_text())])
            specs.append({**spec.model_dump(), "path": url})
            continue
        specs.append(spec.model_dump())
        for f in dataset_files(spec.path, spec.split):
            st = f.stat()
            files.append([str(f), st.st_size, st.st_mtime_ns])
    return fingerprint("read", 2, specs, shard_size, files)


@dataclass
class Span:
    """Where a shard's rows come from: lines [start_line, end_line) of one file of one input."""

    input: int
    file: int
    start_line: int
    start_offset: int | None = None  # byte offsets: plain JSONL only
    end_line: int | None = None
    end_offset: int | None = None
    id_base: int = 0  # lines (rows) of this input in its earlier files: ids stay stable


@dataclass
class IngestTask:
    """Parse one span of a plain JSONL file in a worker."""

    shard: int
    span: Span
    path: Path
    source: str
    options: dict[str, Any]
    dir: StageDir
    origin: str | None = None  # the URL `path` is a local copy of (fetched on a node that lacks it)


def _local_input(task: IngestTask) -> Path:
    """The input file on this machine: an input copied from a URL is copied here too when missing."""
    path = task.dir.remote.here(task.path) if task.dir.remote is not None else task.path
    if task.origin is not None and not path.exists():
        from assay.engines.storage import local_copy

        staged = path
        while staged.parent.name != "inputs" and staged.parent != staged:  # the copy of a folder
            staged = staged.parent
        local_copy(task.origin, staged.parent)
    return path


def estimate_rows(inputs: list[InputSpec]) -> int | None:
    """A quick guess of the row count for progress ETA (sampled line length for JSONL)."""
    total = 0
    for spec in inputs:
        n = 0
        for f in dataset_files(spec.path, spec.split):
            name = str(f)
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                try:
                    n += pq.ParquetFile(f).metadata.num_rows
                except Exception:  # a broken file is reported when it is read
                    pass
                continue
            with open(f, "rb") as fh:
                head = fh.read(1 << 16)
            if head[:2] == b"\x1f\x8b" or name.endswith(".arrow"):
                return None
            lines = head.count(b"\n")
            size = f.stat().st_size
            n += size // (len(head) / lines) if lines and size > len(head) else max(lines, 1)
        total += min(n, spec.limit) if spec.limit is not None else n
    return int(total)


def scan_spans(path: Path, shard_size: int) -> Iterator[tuple[int, int, int, int]]:
    """(start_line, start_offset, end_line, end_offset) of consecutive spans of `shard_size`
    lines, found by counting newlines in large blocks (no parsing)."""
    start_line = start_off = 0
    lines = 0
    offset = 0
    with open(path, "rb") as f:
        while block := f.read(SCAN_BLOCK):
            n = block.count(b"\n")
            while lines + n >= start_line + shard_size:
                need = start_line + shard_size - lines  # the need-th newline of this block ends the span
                pos = -1
                for _ in range(need):
                    pos = block.index(b"\n", pos + 1)
                end_off = offset + pos + 1
                yield start_line, start_off, start_line + shard_size, end_off
                start_line, start_off = start_line + shard_size, end_off
                consumed = pos + 1
                lines += need
                offset += consumed
                block = block[consumed:]
                n -= need
            lines += n
            offset += len(block)
        if offset > start_off:  # the rest, possibly without a final newline
            yield start_line, start_off, lines + (0 if offset == 0 or _ends_with_newline(path) else 1), offset


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def fast_path(spec: InputSpec, path: Path) -> bool:
    """Plain JSONL without a row limit: split by byte ranges and parse in parallel."""
    name = str(path)
    if spec.limit is not None or name.endswith((".parquet", ".arrow")) or is_transcoded(path):
        return False
    if name.endswith((".json", ".json.gz")):
        with open(path, "rb") as f:
            if f.read(64).lstrip(BOM).lstrip().startswith(b"["):
                return False
    return True


def _convert(row: Row, source: Source, at: RowAt) -> Any:
    """The validated record of a row, or None after setting row.error."""
    if row.error is not None:
        return None
    try:
        return validate_record(source.convert(row.data, at) if isinstance(row.data, dict) else row.data)
    except RecordError as exc:
        row.error = str(exc)
    except Exception as exc:  # a bug in an adapter must cost one row, not the run
        row.error = f"adapter error: {type(exc).__name__}: {exc}"
    return None


def write_shard(sd: StageDir, shard: int, rows: Iterable[Row], source: Source, path: Path, span: Span,
                limit: int | None, progress: Callable[[int], None]) -> tuple[int, Row | None]:
    """Convert, validate and write rows into shard `shard` with its marker; (rows taken, last row)."""
    started = time.perf_counter()
    stats = StageStats()
    sd.begin(shard)
    fname = str(path)
    last: Row | None = None
    n = reported = 0
    with JsonlWriter(sd.shard(shard)) as out, JsonlWriter(sd.invalid(shard)) as bad:
        for row in rows:
            if limit is not None and n >= limit:
                break
            n += 1
            last = row
            rec = _convert(row, source, RowAt(fname, row.line, span.id_base + row.line - 1))
            if rec is None:
                stats.records_rejected += 1
                stats.rejected[_error_kind(row.error or "")] += 1
                entry: dict[str, Any] = {"file": path.as_posix(), "line": row.line, "error": row.error}
                entry.update({"raw": row.raw} if row.raw is not None else {"data": row.data})
                bad.write(entry)
            else:
                stats.records_out += 1
                stats.responses_in += len(rec.get("responses") or ())
                out.write(rec)
            if n - reported >= 1000:
                progress(n - reported)
                reported = n
    progress(n - reported)
    stats.records_in = n
    stats.responses_out = stats.responses_in
    stats.seconds = time.perf_counter() - started
    if span.end_line is None and last is not None:
        span.end_line, span.end_offset = last.line, last.offset
    sd.write_marker(shard, {"stats": stats.to_dict(), "span": asdict(span)}, None)
    return n, last


def ingest_span(task: IngestTask, progress: Callable[[str, int], None] = lambda label, n: None) -> int:
    """Worker side of the fast path: parse one byte range of a JSONL file into a shard."""
    span = task.span
    rows = read_jsonl(_local_input(task), skip_lines=span.start_line, start_offset=span.start_offset,
                      end_offset=span.end_offset)
    write_shard(task.dir, task.shard, rows, build_source(task.source, task.options), task.path, span, None,
                lambda n: progress(LABEL, n))
    return task.shard


class Ingest:
    def __init__(self, inputs: list[InputSpec], shard_size: int, sd: StageDir | None, hub: Hub,
                 submit: Callable[[Callable[..., int], Any], Future[int]] | None = None, in_flight: int = 4,
                 origins: dict[int, str] | None = None):
        self.inputs, self.shard_size, self.sd, self.hub = inputs, shard_size, sd, hub
        self.origins = origins or {}
        self.sources = [build_source(spec.source, spec.options) for spec in inputs]
        self.files = [dataset_files(spec.path, spec.split) for spec in inputs]
        self.submit = submit
        self.in_flight = in_flight

    def _done(self, k: int, span: Span) -> bool:
        """Shard k is already written from this very span (or, for `span.end_line` None, from a
        span starting at the same place)."""
        assert self.sd is not None
        try:
            marker = self.sd.read_marker(k)
        except FileNotFoundError:
            return False
        got = marker.get("span") or {}
        keys = ("input", "file", "start_line", "end_line") if span.end_line is not None else ("input", "file",
                                                                                               "start_line")
        if any(got.get(key) != getattr(span, key) for key in keys):
            return False
        self.hub.advance(LABEL, marker["stats"]["records_in"])
        return True

    def shards(self) -> Iterator[int]:
        """Yield shard indices as they become available (already written ones first)."""
        assert self.sd is not None
        sd = self.sd
        k = 0
        pending: list[Future[int]] = []
        for i, spec in enumerate(self.inputs):
            id_base = 0
            taken = 0  # rows of this input so far, for `limit`
            for j, path in enumerate(self.files[i]):
                if spec.limit is not None and taken >= spec.limit:
                    break
                if fast_path(spec, path) and self.submit is not None:
                    lines = 0
                    for start_line, start_off, end_line, end_off in scan_spans(path, self.shard_size):
                        span = Span(i, j, start_line, start_off, end_line, end_off, id_base)
                        if self._done(k, span):
                            yield k
                        else:
                            sd.forget(k)  # a worker writes this marker
                            pending.append(self.submit(ingest_span, IngestTask(
                                k, span, path, spec.source, spec.options, sd, self.origins.get(i))))
                            yield from self._finished(pending, block=len(pending) >= self.in_flight)
                        lines = end_line
                        k += 1
                    id_base += lines
                    continue
                line, offset = 0, None
                while True:
                    span = Span(i, j, line, offset, id_base=id_base)
                    if self._done(k, span):
                        marker = sd.read_marker(k)
                        taken += marker["stats"]["records_in"]
                        line, offset = marker["span"]["end_line"], marker["span"]["end_offset"]
                        yield k
                        k += 1
                        continue
                    left = None if spec.limit is None else min(self.shard_size, spec.limit - taken)
                    if left == 0:
                        break
                    rows = read_rows(path, skip_lines=line, start_offset=offset if line else None)
                    n, last = write_shard(sd, k, _take(rows, self.shard_size), self.sources[i], path, span, left,
                                          lambda n: self.hub.advance(LABEL, n))
                    if n == 0:
                        sd.drop_marker(k)  # nothing was left in this file
                        break
                    taken += n
                    assert last is not None
                    line, offset = last.line, last.offset
                    yield k
                    k += 1
                    if n < self.shard_size:
                        break
                id_base += line
        while pending:
            yield from self._finished(pending, block=True)
        if k == 0:  # no input rows at all: one empty shard keeps every later stage uniform
            write_shard(sd, 0, (), self.sources[0], Path(""), Span(0, 0, 0), None, lambda n: None)
            yield 0

    @staticmethod
    def _finished(pending: list[Future[int]], block: bool = False) -> Iterator[int]:
        if block:
            wait(pending, return_when=FIRST_COMPLETED)
        for fut in [f for f in pending if f.done()]:
            pending.remove(fut)
            yield fut.result()

    def rows(self) -> Iterator[tuple[Row, Any, Path]]:
        """(row, record-or-None, file) of every input, for `assay validate`."""
        for i, spec in enumerate(self.inputs):
            id_base = 0
            taken = 0
            for path in self.files[i]:
                last_line = 0
                for row in read_rows(path):
                    if spec.limit is not None and taken >= spec.limit:
                        break
                    taken += 1
                    last_line = row.line
                    yield row, _convert(row, self.sources[i], RowAt(str(path), row.line, id_base + row.line - 1)), path
                id_base += last_line


def _take(rows: Iterator[Row], n: int) -> Iterator[Row]:
    for k, row in enumerate(rows):
        yield row
        if k + 1 >= n:
            return


def _error_kind(error: str) -> str:
    """A short category of a read error for the counts (the full error stays in invalid/)."""
    if error.startswith("invalid UTF-8"):
        return "invalid UTF-8"
    if error.startswith("invalid JSON"):
        return "invalid JSON"
    if error.startswith("a record must be"):
        return error
    if error.startswith("field '"):
        field = error.split("'", 2)[1]
        return f"bad field '{field}'"
    return error[:80]
