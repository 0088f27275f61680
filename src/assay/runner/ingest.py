"""The read stage: inputs -> source adapter -> validation -> shards of records.

Bad rows (unparseable JSON, invalid UTF-8, a row the adapter cannot map, a record of the wrong
shape) go to invalid/ with file, line and error; every good row goes on. A shard is a fixed
number of input rows, so shard boundaries are the same on every run; each done marker stores
the read position, so a resumed run seeks straight past what is already sharded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from assay.config import InputSpec
from assay.errors import RecordError
from assay.io.readers import Row, dataset_files, read_rows
from assay.io.writers import JsonlWriter
from assay.record import validate_record
from assay.runner.decision import StageStats
from assay.runner.progress import Hub
from assay.runner.rundir import StageDir, fingerprint
from assay.sources.base import RowAt, build_source

LABEL = "read"


def ingest_fingerprint(inputs: list[InputSpec], shard_size: int) -> str:
    files = []
    for spec in inputs:
        for f in dataset_files(spec.path, spec.split):
            st = f.stat()
            files.append([str(f), st.st_size, st.st_mtime_ns])
    return fingerprint("read", 1, [i.model_dump() for i in inputs], shard_size, files)


@dataclass
class Position:
    input: int = 0
    file: int = 0
    line: int = 0  # lines (or rows) of that file already consumed
    offset: int | None = 0  # byte offset in that file (plain JSONL), else None
    rows: int = 0  # rows of that input already consumed (ids, limit)


def estimate_rows(inputs: list[InputSpec]) -> int | None:
    """A quick guess of the row count for progress ETA (sampled line length for JSONL)."""
    total = 0
    for spec in inputs:
        n = 0
        for f in dataset_files(spec.path, spec.split):
            name = str(f)
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                n += pq.ParquetFile(f).metadata.num_rows
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


class Ingest:
    def __init__(self, inputs: list[InputSpec], shard_size: int, sd: StageDir | None, hub: Hub):
        self.inputs, self.shard_size, self.sd, self.hub = inputs, shard_size, sd, hub
        self.sources = [build_source(spec.source, spec.options) for spec in inputs]
        self.files = [dataset_files(spec.path, spec.split) for spec in inputs]

    def shards(self) -> Iterator[int]:
        """Yield shard indices as they become available (already done ones first)."""
        assert self.sd is not None
        complete = self.sd.flag("complete")
        if complete.exists():
            n = orjson.loads(complete.read_bytes())["shards"]
            self.hub.advance(LABEL, sum(self.sd.read_marker(i)["stats"]["records_in"] for i in range(n)))
            yield from range(n)
            return
        done = set(self.sd.done_shards())
        k, pos = 0, Position()
        while k in done:
            marker = self.sd.read_marker(k)
            pos = Position(**marker["position"])
            self.hub.advance(LABEL, marker["stats"]["records_in"])
            yield k
            k += 1
        rows = self.rows(pos)
        while True:
            stats, last = self._write_shard(k, rows)
            if stats is None:
                break
            yield k
            k += 1
            if last:
                break
        complete.write_bytes(orjson.dumps({"shards": k}))

    def rows(self, pos: Position) -> Iterator[tuple[Row, Any, Position]]:
        """(row, data-or-None, position after the row) from `pos` on, honouring limits."""
        for i in range(pos.input, len(self.inputs)):
            spec, src = self.inputs[i], self.sources[i]
            rows_done = pos.rows if i == pos.input else 0
            for j in range(pos.file if i == pos.input else 0, len(self.files[i])):
                path = self.files[i][j]
                resume = i == pos.input and j == pos.file
                skip = pos.line if resume else 0
                offset = pos.offset if resume and pos.line else None
                if spec.limit is not None and rows_done >= spec.limit:
                    break
                fname = str(path)
                for row in read_rows(path, skip_lines=skip, start_offset=offset):
                    if spec.limit is not None and rows_done >= spec.limit:
                        break
                    at = RowAt(file=fname, line=row.line, index=rows_done)
                    rows_done += 1
                    after = Position(i, j, row.line, row.offset, rows_done)
                    if row.error is not None:
                        yield row, None, after
                        continue
                    try:
                        rec = validate_record(src.convert(row.data, at) if isinstance(row.data, dict)
                                              else row.data)
                    except RecordError as exc:
                        row.error = str(exc)
                        yield row, None, after
                        continue
                    yield row, rec, after

    def _write_shard(self, k: int, rows: Iterator[tuple[Row, Any, Position]]) -> tuple[StageStats | None, bool]:
        """Consume up to shard_size rows into shard k. Returns (stats or None if no rows, at_end)."""
        assert self.sd is not None
        started = time.perf_counter()
        stats = StageStats()
        out = JsonlWriter(self.sd.shard(k))
        bad = JsonlWriter(self.sd.invalid(k))
        pos: Position | None = None
        n = 0
        report = 0
        for row, rec, pos in rows:
            n += 1
            stats.records_in += 1
            if rec is None:
                stats.records_rejected += 1
                stats.rejected[_error_kind(row.error or "")] += 1
                entry: dict[str, Any] = {"file": self.files[pos.input][pos.file].as_posix(), "line": row.line,
                                         "error": row.error}
                if row.raw is not None:
                    entry["raw"] = row.raw
                else:
                    entry["data"] = row.data
                bad.write(entry)
            else:
                stats.records_out += 1
                stats.responses_in += len(rec.get("responses") or ())
                out.write(rec)
            if n - report >= 1000:
                self.hub.advance(LABEL, n - report)
                report = n
            if n >= self.shard_size:
                break
        self.hub.advance(LABEL, n - report)
        if n == 0 and k > 0:  # (shard 0 is written even when empty: later stages stay uniform)
            out.abort()
            bad.abort()
            return None, True
        stats.responses_out = stats.responses_in
        stats.seconds = time.perf_counter() - started
        out.commit()
        bad.commit()
        position = pos.__dict__ if pos is not None else Position(len(self.inputs)).__dict__
        self.sd.write_marker(k, {"stats": stats.to_dict(), "position": position}, None)
        return stats, n < self.shard_size


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

