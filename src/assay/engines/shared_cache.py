"""A teacher request cache that many processes on many machines write at once.

SQLite (the local cache, `assay.teacher.cache.RequestCache`) is safe for several processes of one
machine, but not over NFS from several machines, and not on an object store at all. Here each
writer owns its segment files and never touches another's; readers merge an index over every
writer's segments:

    CACHE/teacher-segments/<writer>.seg          answers, one JSON line each (POSIX: appended and
                                                 flushed per answer; a torn last line is ignored)
    CACHE/teacher-segments/<writer>-NNNNNN.seg   object stores: whole objects of a few answers...
    CACHE/teacher-segments/<writer>-NNNNNN.idx   ...then their key index, written last
    CACHE/teacher-segments/<writer>.closed       the writer finished

On a POSIX cache directory the SQLite file is still read first (what earlier runs paid for), and
`merge_segments` folds finished writers' segments into it when a run ends, so `assay cache`
sees every answer. The API is RequestCache's (get_many, put, close), so the teacher client uses
either without knowing.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from assay.engines.storage import is_url, plain_path

SEGMENT_DIR = "teacher-segments"
FLUSH_EVERY = 16  # object stores: answers per segment object
FLUSH_SECONDS = 5.0  # ...or at most this old
REFRESH_SECONDS = 2.0  # how often a reader looks for other writers' new answers


def _host() -> str:
    return socket.gethostname().replace("-", "_")[:40] or "host"


def writer_name(prefix: str = "") -> str:
    """`[prefix-]host-pid-random`: unique, and tells which machine and process writes."""
    return "-".join(p for p in (prefix, _host(), str(os.getpid()), uuid.uuid4().hex[:8]) if p)


def writer_is_dead(writer: str) -> bool:
    """True for a writer of this machine whose process is gone (a killed run's); writers of
    other machines cannot be checked from here and count as alive."""
    parts = writer.split("-")
    if len(parts) < 3 or parts[-3] != _host() or not parts[-2].isdigit():
        return False
    try:
        os.kill(int(parts[-2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _filesystem(root: str) -> tuple[Any, str, bool]:
    """(fsspec filesystem, path inside it, True when it is a POSIX path)."""
    local = plain_path(root)
    if local is not None:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), str(Path(local).absolute()), True
    import fsspec

    fs, path = fsspec.core.url_to_fs(root)
    return fs, path.rstrip("/"), False


def _complete_lines(data: bytes) -> tuple[list[bytes], int]:
    """The whole lines of `data` and how many bytes they take (a torn last line is left out)."""
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), end


class SegmentCache:
    """Request cache over per-writer segments; one handle per process (not thread-safe)."""

    def __init__(self, root: str | os.PathLike[str], *, writer: str | None = None,
                 flush_every: int = FLUSH_EVERY, flush_seconds: float = FLUSH_SECONDS,
                 refresh_seconds: float = REFRESH_SECONDS, read_sqlite: bool = True):
        self.root = str(root)
        self.fs, base, self.posix = _filesystem(self.root)
        self.dir = f"{base}/{SEGMENT_DIR}"
        self.fs.makedirs(self.dir, exist_ok=True)
        self.writer = writer or writer_name()
        self.flush_every, self.flush_seconds, self.refresh_seconds = flush_every, flush_seconds, refresh_seconds
        self.index: dict[str, tuple[str, int, int]] = {}  # key -> (segment, start, end)
        self.read_upto: dict[str, int] = {}  # POSIX segments: bytes already indexed
        self.mine: dict[str, Any] = {}  # answers of this writer not yet in a segment object
        self.pending: list[bytes] = []
        self.seq = 0
        self.last_flush = time.monotonic()
        self.last_refresh = -1e9
        self._append: Any = None
        self._pos = 0
        self.sqlite: Any = None
        if self.posix and read_sqlite:
            from assay.teacher.cache import RequestCache, cache_path

            path = cache_path(Path(base))
            if path.exists():
                self.sqlite = RequestCache(path)
        self.closed = False

    # ---- reads ----------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(dict.fromkeys(keys))
        found = {k: self.mine[k] for k in keys if k in self.mine}
        missing = [k for k in keys if k not in found]
        if any(k not in self.index for k in missing):
            self.refresh()
        for k in missing:
            loc = self.index.get(k)
            if loc is not None:
                found[k] = self._read(loc)["completion"]
        rest = [k for k in missing if k not in found]
        if rest and self.sqlite is not None:
            found.update(self.sqlite.get_many(rest))
        return found

    def get(self, key: str) -> Any:
        return self.get_many([key]).get(key)

    def refresh(self, force: bool = False) -> None:
        """Index what other writers added since the last look (at most every refresh_seconds)."""
        now = time.monotonic()
        if not force and now - self.last_refresh < self.refresh_seconds:
            return
        self.last_refresh = now
        try:
            entries = self.fs.ls(self.dir, detail=True)
        except FileNotFoundError:
            return
        names = {e["name"].rstrip("/"): e for e in entries}
        for name, entry in sorted(names.items()):
            if name.endswith(".idx"):
                seg = name[: -len(".idx")] + ".seg"
                if seg not in self.read_upto:
                    self.read_upto[seg] = -1  # immutable: indexed once, from its key index
                    for key, start, end in orjson.loads(self.fs.cat_file(name)):
                        self.index.setdefault(key, (seg, start, end))
            elif name.endswith(".seg") and f"{name[:-4]}.idx" not in names and self.posix:
                self._scan_appended(name, int(entry.get("size") or 0))

    def _scan_appended(self, seg: str, size: int) -> None:
        start = self.read_upto.get(seg, 0)
        if start < 0 or size <= start:
            return
        data = self.fs.cat_file(seg, start=start, end=size)
        lines, used = _complete_lines(data)
        pos = start
        for line in lines:
            end = pos + len(line) + 1
            if line.strip():
                try:
                    key = orjson.loads(line)["key"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    pos = end
                    continue
                self.index.setdefault(key, (seg, pos, end))
            pos = end
        self.read_upto[seg] = start + used

    def _read(self, loc: tuple[str, int, int]) -> dict[str, Any]:
        seg, start, end = loc
        return orjson.loads(self.fs.cat_file(seg, start=start, end=end))

    # ---- writes ---------------------------------------------------------------------------
    def put(self, key: str, model: str, completion: Any, cost: float = 0.0) -> bool:
        """Store an answer; False when it is already there (answers are never stored twice)."""
        if key in self.mine or key in self.index:
            return False
        usage = completion.get("usage") or {}
        line = orjson.dumps({"key": key, "model": model, "created": time.time(),
                             "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                             "completion_tokens": int(usage.get("completion_tokens") or 0),
                             "cost": float(cost), "completion": completion}) + b"\n"
        if self.posix:
            if self._append is None:
                seg = f"{self.dir}/{self.writer}.seg"
                self._append = open(seg, "ab", buffering=0)  # one write() per answer: a reader sees whole lines
                self._pos = self._append.tell()
                self.read_upto[seg] = -1  # this writer indexes its own lines as it writes them
            self._append.write(line)
            self.index[key] = (f"{self.dir}/{self.writer}.seg", self._pos, self._pos + len(line))
            self._pos += len(line)
            return True
        self.mine[key] = completion
        self.pending.append(line)
        if len(self.pending) >= self.flush_every or time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()
        return True

    def flush(self) -> None:
        """Object stores: write the pending answers as one segment object, then its key index."""
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        stem = f"{self.dir}/{self.writer}-{self.seq:06d}"
        self.seq += 1
        body = b"".join(self.pending)
        keys, pos = [], 0
        for line in self.pending:
            keys.append((orjson.loads(line)["key"], pos, pos + len(line)))
            pos += len(line)
        self.fs.pipe_file(f"{stem}.seg", body)
        self.fs.pipe_file(f"{stem}.idx", orjson.dumps(keys))
        for key, start, end in keys:
            self.index[key] = (f"{stem}.seg", start, end)
            self.mine.pop(key, None)
        self.read_upto[f"{stem}.seg"] = -1
        self.pending = []

    def count(self) -> int:
        self.refresh(force=True)
        extra = self.sqlite.count() if self.sqlite is not None else 0
        return len(self.index) + len(self.mine) + extra

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.flush()
        if self._append is not None:
            self._append.close()
            self._append = None
        self.fs.pipe_file(f"{self.dir}/{self.writer}.closed", b"")
        if self.sqlite is not None:
            self.sqlite.close()


def merge_segments(root: str | os.PathLike[str], finished_prefix: str | None = None) -> int:
    """Fold segments into the SQLite cache of a POSIX cache directory and remove them: those of
    writers that closed, of writers of this machine whose process is gone (a killed run), and
    those whose name starts with `finished_prefix` (a run's writers, all ended, some perhaps
    killed). Returns the answers added. Object stores keep their segments."""
    from assay.teacher.cache import RequestCache, cache_path

    if is_url(str(root)) and plain_path(str(root)) is None:
        return 0
    seg_dir = Path(plain_path(str(root)) or root) / SEGMENT_DIR
    if not seg_dir.is_dir():
        return 0
    closed = {p.name[: -len(".closed")] for p in seg_dir.glob("*.closed")}
    done = [p for p in sorted(seg_dir.glob("*.seg")) if _writer_of(p.name) in closed
            or (finished_prefix and p.name.startswith(finished_prefix)) or writer_is_dead(_writer_of(p.name))]
    writing = {_writer_of(p.name) for p in seg_dir.glob("*.seg")} - {_writer_of(p.name) for p in done}
    for writer in closed - writing:  # finished writers with nothing (left) to fold in
        if not any(seg_dir.glob(f"{writer}*.seg")):
            (seg_dir / f"{writer}.closed").unlink(missing_ok=True)
    if not done:
        return 0
    cache = RequestCache(cache_path(seg_dir.parent))
    added = 0
    try:
        for seg in done:
            lines, _ = _complete_lines(seg.read_bytes())
            for line in lines:
                try:
                    e = orjson.loads(line)
                    added += cache.put(e["key"], e["model"], e["completion"], e.get("cost", 0.0))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn line of a killed writer: that answer was never returned
    finally:
        cache.close()
    for seg in done:
        seg.with_suffix(".idx").unlink(missing_ok=True)
        seg.unlink(missing_ok=True)
    for writer in {_writer_of(s.name) for s in done}:
        (seg_dir / f"{writer}.closed").unlink(missing_ok=True)
    return added


def _writer_of(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    head, _, tail = stem.rpartition("-")
    return head if tail.isdigit() and len(tail) == 6 else stem
