"""A byte-offset index of a run's kept and rejected items, built in the background.

Each JSONL line of output/ and rejected/ becomes one row: where it is (file, offset, length,
line) and the few fields the browser filters on (set, kind, reason, source, domain, id hash),
interned to small integers, plus posting lists for labels and check verdicts. Items themselves
stay on disk and are read by offset, so a run of millions of records costs tens of bytes per
record in memory and any page is a handful of seeks.
"""

from __future__ import annotations

import hashlib
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from assay.report.run_files import RunFiles

KEPT = "kept"
KINDS = ("record", "response")  # a kept item is always a record
MAX_LABEL_VALUES = 200  # a label with more distinct values is not offered as a filter
MAX_FACETS = 2000


def id_hash(rid: Any) -> int:
    return int.from_bytes(hashlib.blake2b(str(rid).encode(), digest_size=8).digest(), "little")


class Interner:
    def __init__(self) -> None:
        self.names: list[str] = [""]  # 0 = none
        self.codes: dict[str, int] = {"": 0}

    def __call__(self, name: str | None) -> int:
        if not name:
            return 0
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code


@dataclass
class IndexedFile:
    rel: str  # path relative to the run directory (what URLs carry)
    path: Path
    set: str  # "kept" or the label of the stage that rejected the items
    size: int = 0


@dataclass
class Query:
    set: str = ""
    kind: str = ""
    reason: str = ""
    source: str = ""
    domain: str = ""
    label: str = ""
    check: str = ""
    q: str = ""


@dataclass
class Progress:
    bytes_total: int = 0
    bytes_done: int = 0
    rows: int = 0
    unreadable: int = 0
    done: bool = False
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Columns:
    file: array = field(default_factory=lambda: array("H"))
    offset: array = field(default_factory=lambda: array("q"))
    length: array = field(default_factory=lambda: array("I"))
    line: array = field(default_factory=lambda: array("I"))
    kind: array = field(default_factory=lambda: array("B"))  # 0 kept record, 1 rejected record, 2 rejected response
    set: array = field(default_factory=lambda: array("H"))
    reason: array = field(default_factory=lambda: array("I"))
    source: array = field(default_factory=lambda: array("I"))
    domain: array = field(default_factory=lambda: array("I"))
    idh: array = field(default_factory=lambda: array("Q"))
    responses: array = field(default_factory=lambda: array("H"))


class RunIndex:
    """Index of one run directory; `start()` builds it in a thread, queries work meanwhile on
    what is indexed so far."""

    def __init__(self, run_dir: str | Path):
        run = RunFiles(run_dir)
        self.root = run.path
        self.stats = run.stats()
        self.files: list[IndexedFile] = []
        for p in run.output_jsonl():
            self.files.append(IndexedFile(_rel(p, self.root), p, KEPT, p.stat().st_size))
        for rf in run.rejected_files():
            self.files.append(IndexedFile(_rel(rf.path, self.root), rf.path, rf.label, rf.path.stat().st_size))
        self.by_rel = {f.rel: i for i, f in enumerate(self.files)}
        self.sets = Interner()
        self.reasons = Interner()
        self.sources = Interner()
        self.domains = Interner()
        self.cols = Columns()
        self.postings: dict[str, array] = {}  # "labels.category=algebra" / "math_verify=wrong_answer" -> rows
        self._label_values: dict[str, set[str]] = {}
        self._dropped_labels: set[str] = set()
        self.progress = Progress(bytes_total=sum(f.size for f in self.files))
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._frozen: dict[str, np.ndarray] | None = None
        self._frozen_posts: dict[str, np.ndarray] | None = None

    # ---- building ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._build, name="assay-view-index", daemon=True)
        self._thread.start()

    def build(self) -> RunIndex:
        """Index everything now (tests, small runs)."""
        self._build()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.progress.done

    def _build(self) -> None:
        started = time.perf_counter()
        try:
            for fi, f in enumerate(self.files):
                self._index_file(fi, f)
        except Exception as exc:  # shown on every page instead of killing the server
            self.progress.error = f"indexing stopped: {exc}"
        finally:
            with self.lock:
                self._frozen = {name: _np(arr) for name, arr in vars(self.cols).items()}
                self._frozen_posts = {k: _np(v) for k, v in self.postings.items()}
                self.progress.seconds = time.perf_counter() - started
                self.progress.done = True

    def _index_file(self, fi: int, f: IndexedFile) -> None:
        set_code = self.sets(f.set)
        batch: list[tuple[Any, ...]] = []
        for line_no, offset, raw in _lines(f.path):
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                item = None
            if not isinstance(item, dict):
                self.progress.unreadable += 1
                self.progress.bytes_done += len(raw)
                continue
            batch.append((line_no, offset, len(raw), item))
            if len(batch) >= 512:
                self._add(fi, set_code, f.set == KEPT, batch)
                batch = []
        if batch:
            self._add(fi, set_code, f.set == KEPT, batch)

    def _add(self, fi: int, set_code: int, kept: bool, batch: list[tuple[Any, ...]]) -> None:
        with self.lock:
            c = self.cols
            for line_no, offset, length, item in batch:
                row = len(c.offset)
                if kept:
                    rec, kind, reason = item, 0, ""
                else:
                    rec = item.get("record") if isinstance(item.get("record"), dict) else None
                    kind = 1 if rec is not None else 2
                    reason = str(item.get("code") or item.get("reason") or "")
                holder = rec if rec is not None else item
                c.file.append(fi)
                c.offset.append(offset)
                c.length.append(min(length, 0xFFFFFFFF))
                c.line.append(line_no)
                c.kind.append(kind)
                c.set.append(set_code)
                c.reason.append(self.reasons(reason))
                c.source.append(self.sources(_str(holder.get("source"))))
                c.domain.append(self.domains(_str(holder.get("domain"))))
                c.idh.append(id_hash(holder.get("id") if rec is not None else item.get("id")))
                responses = rec.get("responses") if rec is not None else None
                c.responses.append(min(len(responses), 0xFFFF) if isinstance(responses, list) else (kind == 2))
                resp = item.get("response") if rec is None and isinstance(item.get("response"), dict) else None
                for key in set(_postings(rec, resp)):
                    self._post(key, row)
                self.progress.bytes_done += length
            self.progress.rows = len(c.offset)

    def _post(self, key: str, row: int) -> None:
        name = key.split("=", 1)[0]
        if name in self._dropped_labels:
            return
        rows = self.postings.get(key)
        if rows is None:
            seen = self._label_values.setdefault(name, set())
            seen.add(key)
            if len(seen) > MAX_LABEL_VALUES or len(self.postings) >= MAX_FACETS:
                self._dropped_labels.add(name)  # an id-like field: no use as a filter
                for k in seen:
                    self.postings.pop(k, None)
                return
            rows = self.postings[key] = array("I")
        rows.append(row)

    # ---- querying ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Columns and postings as numpy arrays (copies while indexing goes on)."""
        with self.lock:
            if self._frozen is not None and self._frozen_posts is not None:
                return self._frozen, self._frozen_posts
            cols = {n: _np(a) for n, a in vars(self.cols).items()}
            posts = {k: _np(v) for k, v in self.postings.items()}
        return cols, posts

    def mask(self, query: Query, cols: dict[str, np.ndarray], posts: dict[str, np.ndarray]) -> np.ndarray:
        n = len(cols["offset"])
        m = np.ones(n, dtype=bool)
        for value, interner, col in ((query.set, self.sets, "set"), (query.reason, self.reasons, "reason"),
                                     (query.source, self.sources, "source"), (query.domain, self.domains, "domain")):
            if value:
                code = interner.codes.get(value)
                m &= cols[col] == code if code is not None else False
        if query.kind == "record":
            m &= cols["kind"] <= 1
        elif query.kind == "response":
            m &= cols["kind"] == 2
        for key in (query.label, query.check):
            if key:
                rows = posts.get(key)
                keep = np.zeros(n, dtype=bool)
                if rows is not None:
                    keep[rows[rows < n]] = True
                m &= keep
        return m

    def facets(self, cols: dict[str, np.ndarray], posts: dict[str, np.ndarray]) -> dict[str, list[tuple[str, int]]]:
        """Values to filter on and how many rows hold each."""
        out: dict[str, list[tuple[str, int]]] = {}
        for name, interner in (("set", self.sets), ("reason", self.reasons), ("source", self.sources),
                               ("domain", self.domains)):
            counts = np.bincount(cols[name].astype(np.int64), minlength=len(interner.names)) if len(cols[name]) else []
            pairs = [(interner.names[i], int(c)) for i, c in enumerate(counts) if i and c]
            out[name] = sorted(pairs, key=lambda kv: (-kv[1], kv[0])) if name != "set" else pairs
        labels = [(k, len(v)) for k, v in posts.items() if not k.startswith("check:")]
        checks = [(k[len("check:"):], len(v)) for k, v in posts.items() if k.startswith("check:")]
        out["label"] = sorted(labels)
        out["check"] = sorted(checks)
        return out

    def read(self, row: int, cols: dict[str, np.ndarray]) -> dict[str, Any]:
        f = self.files[int(cols["file"][row])]
        with open(f.path, "rb") as fh:
            fh.seek(int(cols["offset"][row]))
            raw = fh.read(int(cols["length"][row]))
        return orjson.loads(raw)

    def row_at(self, rel: str, line: int, cols: dict[str, np.ndarray]) -> int | None:
        fi = self.by_rel.get(rel)
        if fi is None:
            return None
        hits = np.flatnonzero((cols["file"] == fi) & (cols["line"] == line))
        return int(hits[0]) if len(hits) else None

    def same_id(self, row: int, cols: dict[str, np.ndarray]) -> list[int]:
        """Every row about the same record id (kept record, rejected record, rejected responses)."""
        return [int(r) for r in np.flatnonzero(cols["idh"] == cols["idh"][row])]

    def search(self, rows: np.ndarray, cols: dict[str, np.ndarray], text: str, *, want: int,
               budget_s: float = 2.0) -> tuple[list[int], int, bool]:
        """Rows (in order) whose raw JSON line holds every word of `text`, case-insensitively:
        (hits, rows scanned, finished). Stops at `want` hits or when the time budget is spent."""
        words = [w for w in text.lower().split() if w]
        needles = [orjson.dumps(w)[1:-1] for w in words]
        hits: list[int] = []
        deadline = time.monotonic() + budget_s
        scanned = 0
        handles: dict[int, Any] = {}
        try:
            for r in rows.tolist():
                fi = int(cols["file"][r])
                fh = handles.get(fi)
                if fh is None:
                    fh = handles[fi] = open(self.files[fi].path, "rb")
                fh.seek(int(cols["offset"][r]))
                raw = fh.read(int(cols["length"][r]))
                scanned += 1
                low = raw.lower() if raw.isascii() else raw.decode("utf-8", "replace").lower().encode()
                if all(n in low for n in needles):
                    hits.append(r)
                    if len(hits) >= want:
                        break
                if scanned % 256 == 0 and time.monotonic() > deadline:
                    break
        finally:
            for fh in handles.values():
                fh.close()
        return hits, scanned, scanned >= len(rows)


def _np(arr: array) -> np.ndarray:
    dtype = {"H": np.uint16, "q": np.int64, "I": np.uint32, "B": np.uint8, "Q": np.uint64}[arr.typecode]
    return np.frombuffer(arr, dtype=dtype).copy() if len(arr) else np.zeros(0, dtype=dtype)


def _lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(1-based line, byte offset, raw line) of the non-blank lines of a file."""
    offset = 0
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, offset, line
            offset += len(line)


def _postings(rec: dict[str, Any] | None, resp: dict[str, Any] | None) -> Iterator[str]:
    if rec is not None:
        labels = rec.get("labels")
        if isinstance(labels, dict):
            for k, v in labels.items():
                if isinstance(v, (str, bool)) and v != "":
                    yield f"labels.{k}={str(v).lower() if isinstance(v, bool) else v}"
        if isinstance(rec.get("route"), str):
            yield f"route={rec['route']}"
        yield from _check_keys(rec.get("checks"))
        for r in rec.get("responses") or ():
            if isinstance(r, dict):
                yield from _check_keys(r.get("checks"))
    if resp is not None:
        yield from _check_keys(resp.get("checks"))


def _check_keys(checks: Any) -> Iterator[str]:
    if isinstance(checks, dict):
        for name, c in checks.items():
            if isinstance(c, dict):
                code = c.get("code")
                yield f"check:{name}={code if code not in (None, '') else ('passed' if c.get('passed') else 'failed')}"


def _str(v: Any) -> str:
    return "" if v is None else str(v)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
