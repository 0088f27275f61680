"""The run directory: per-stage shards, done markers and fingerprints; the final outputs.

    DIR/.assay-run              marks the folder as assay's (so --fresh never wipes user data)
    DIR/config.yaml             the config that produced the run
    DIR/stages/NN-label/        fingerprint, shards/K.jsonl, rejected/K.jsonl, done/K.json
    DIR/output/part-K.jsonl     kept records (the last stage's shards)
    DIR/rejected/NN-label.jsonl every dropped record or response, with stage and reason
    DIR/invalid/invalid.jsonl   unreadable input rows, with file, line and error
    DIR/stats.json              counts per stage

A shard's outputs are renamed into place before its done marker is written, so after a kill a
shard is either done (marker present, outputs complete) or redone from its input.

The run directory may be an object-store URL (s3://, gs://, ...): see assay.runner.remote.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from assay.errors import AssayError
from assay.io.writers import atomic_write_bytes, atomic_write_json
from assay.runner.remote import LEASE, Lease, RemoteRun

MARK = ".assay-run"
LOCK = ".lock"
FORMAT_VERSION = "1"


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def shard_name(i: int) -> str:
    return f"{i:05d}"


@dataclass
class StageDir:
    path: Path
    fp: str
    remote: RemoteRun | None = None  # set when the run directory is on an object store
    # On an object store, the driver keeps the markers it has read or written (each read is a
    # request): `preload` lists them once; a shard handed to a worker is `forget`-ten until read again.
    _known: dict[int, bytes | None] = field(default_factory=dict, repr=False, compare=False)
    _listed: bool = field(default=False, repr=False, compare=False)
    _forgotten: set[int] = field(default_factory=set, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:  # a worker's copy starts with no memory of markers
        return {"path": self.path, "fp": self.fp, "remote": self.remote}

    def __setstate__(self, state: dict[str, Any]) -> None:
        remote = state["remote"]
        # on another machine the stage folder is in that machine's own copy of the run
        self.path = remote.here(state["path"]) if remote is not None else state["path"]
        self.fp, self.remote = state["fp"], remote
        self._known, self._listed, self._forgotten = {}, False, set()

    def preload(self) -> list[int]:
        """Read every marker of this stage from the store in one batch; the shards that have one."""
        if self.remote is None:
            return []
        names = [n for n in self.remote.names(self.path / "done") if n.endswith(".json") and n[:-5].isdigit()]
        got = self.remote.cat_many([self.path / "done" / n for n in names])
        self._known = {int(p.stem): blob for p, blob in got.items()}
        self._listed, self._forgotten = True, set()
        return sorted(self._known)

    def _must_ask(self, i: int) -> bool:
        """Whether shard i's marker has to be read from the store (not known, and not known absent)."""
        return i not in self._known and (not self._listed or i in self._forgotten)

    def forget(self, i: int) -> None:
        """Shard i's marker is about to be written by another process: read it from the store next time."""
        self._known.pop(i, None)
        self._forgotten.add(i)

    def _marker_bytes(self, i: int) -> bytes:
        assert self.remote is not None
        if not self._must_ask(i):
            blob = self._known.get(i)  # None: not in the listing, and nothing wrote it since
        else:
            try:
                blob = self.remote.cat(self.marker(i))
            except FileNotFoundError:
                blob = None
            self._known[i] = blob
            self._forgotten.discard(i)
        if blob is None:
            raise FileNotFoundError(self.remote.key(self.marker(i)))
        return blob

    @property
    def shards(self) -> Path:
        return self.path / "shards"

    def shard(self, i: int) -> Path:
        return self.path / "shards" / f"{shard_name(i)}.jsonl"

    def rejected(self, i: int) -> Path:
        return self.path / "rejected" / f"{shard_name(i)}.jsonl"

    def invalid(self, i: int) -> Path:
        return self.path / "invalid" / f"{shard_name(i)}.jsonl"

    def marker(self, i: int) -> Path:
        return self.path / "done" / f"{shard_name(i)}.json"

    def parts(self, i: int) -> tuple[Path, Path, Path]:
        """The files a shard's marker stands for (those a stage writes)."""
        return self.shard(i), self.rejected(i), self.invalid(i)

    def read_marker(self, i: int) -> dict[str, Any]:
        if self.remote is not None:
            return orjson.loads(self._marker_bytes(i))
        return orjson.loads(self.marker(i).read_bytes())

    def read_markers(self, shards: list[int]) -> dict[int, dict[str, Any]]:
        """The markers of several shards at once (one batch of requests on an object store)."""
        if self.remote is not None:
            unknown = [i for i in shards if self._must_ask(i)]
            got = self.remote.cat_many([self.marker(i) for i in unknown])
            for i in unknown:
                self._known[i] = got[self.marker(i)]
                self._forgotten.discard(i)
        return {i: self.read_marker(i) for i in shards}

    def token(self, i: int) -> str | None:
        """The identity of shard i's current output (None when not written)."""
        try:
            return self.read_marker(i).get("token")
        except FileNotFoundError:
            return None

    def is_done(self, i: int, upstream: str | None) -> bool:
        """Done = a marker made from the current upstream output, with no work left to retry."""
        try:
            m = self.read_marker(i)
        except FileNotFoundError:
            return False
        return m.get("upstream") == upstream and not m.get("incomplete")

    def begin(self, i: int) -> None:
        """Shard i is about to be (re)written here: its local marker no longer describes the local files."""
        self.marker(i).unlink(missing_ok=True)

    def write_marker(self, i: int, data: dict[str, Any], upstream: str | None) -> str:
        token = uuid.uuid4().hex
        blob = orjson.dumps({**data, "token": token, "upstream": upstream})
        if self.remote is not None:  # the files first, the marker last: the marker commits them
            self.remote.put_many([part for part in self.parts(i) if part.exists()])
            self.remote.pipe(self.marker(i), blob)
            self._known[i] = blob
            self.marker(i).parent.mkdir(parents=True, exist_ok=True)  # a machine the driver did not prepare
        atomic_write_bytes(self.marker(i), blob)
        return token

    def drop_marker(self, i: int) -> None:
        self.marker(i).unlink(missing_ok=True)
        if self.remote is not None:
            self.remote.rm(self.marker(i))
            self._known[i] = None

    def local_token(self, i: int) -> str | None:
        try:
            return orjson.loads(self.marker(i).read_bytes()).get("token")
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None

    def current_here(self, i: int, token: str | None = None) -> bool:
        """Whether this machine's copy of shard i is the one the store's marker names (`token`:
        that marker's token when the caller knows it, saving the read)."""
        local = self.local_token(i)
        if local is None:
            return False
        return local == token or local == orjson.loads(self._marker_bytes(i)).get("token")

    def fetch(self, i: int, token: str | None = None) -> Path:
        """Shard i's output file on this machine: on an object store, the shard's files are
        downloaded when this machine's copy is not the one the store's marker names."""
        if self.remote is None or self.current_here(i, token):
            return self.shard(i)
        blob = self._marker_bytes(i)
        self.begin(i)
        for part in self.parts(i):
            if not self.remote.get(part):
                part.unlink(missing_ok=True)
        self.marker(i).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.marker(i), blob)
        return self.shard(i)

    def prepare(self) -> None:
        for sub in ("shards", "rejected", "done", "invalid"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    # whole-stage state (a global stage's index flag and state, partial indexes)
    def flag(self, name: str) -> Path:
        return self.path / f"{name}.json"

    def read_flag(self, name: str) -> dict[str, Any] | None:
        try:
            blob = self.remote.cat(self.flag(name)) if self.remote is not None else self.flag(name).read_bytes()
            return orjson.loads(blob)
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None

    def write_flag(self, name: str, data: dict[str, Any]) -> None:
        blob = orjson.dumps(data)
        atomic_write_bytes(self.flag(name), blob)
        if self.remote is not None:
            self.remote.pipe(self.flag(name), blob)

    def publish_file(self, path: Path) -> None:
        """A file written under this stage's folder: uploaded when the run is on an object store.
        Such files are written once under a name that says what they hold (never rewritten)."""
        if self.remote is not None:
            self.remote.put(path)

    def readable(self, i: int, part: Path, token: str | None = None) -> Path | Any:
        """One of shard i's files to read once: the local file when this machine's copy of the shard
        is current, else an opener of the store's object (nothing is downloaded to disk)."""
        if self.remote is None or self.current_here(i, token):
            return part
        remote = self.remote
        return lambda: remote.open(part)

    def drop_file(self, path: Path) -> None:
        """A file of this stage's folder that is no longer needed, here and in the store."""
        path.unlink(missing_ok=True)
        if self.remote is not None:
            self.remote.rm(path)

    def has_file(self, path: Path) -> bool:
        return self.remote.exists(path) if self.remote is not None else path.exists()

    def local_file(self, path: Path) -> Path:
        """`path` (named by the driver) on this machine, downloaded from the store when missing here."""
        if self.remote is None:
            return path
        path = self.remote.here(path)
        if not path.exists() and not self.remote.get(path):
            raise FileNotFoundError(self.remote.key(path))
        return path


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_remote(location: str | os.PathLike[str]) -> bool:
    """True for a run directory on an object store (a URL other than file://)."""
    text = str(location)
    return bool(_URL.match(text)) and not text.lower().startswith(("file://", "local://"))


class RunDir:
    """A run directory: a local (or mounted) folder, or an object-store URL with a node-local
    mirror (assay.runner.remote). `path` is always the local folder; `location` what the user named."""

    def __init__(self, location: str | os.PathLike[str]):
        text = str(location)
        self.location = text
        self.remote: RemoteRun | None = None
        if is_remote(text):
            self.remote = RemoteRun(text)
            self.path = self.remote.local
        else:
            from assay.engines.storage import plain_path

            self.path = Path(plain_path(text) or text)  # file:// and local:// URLs are paths
        self._lease: Lease | None = None

    @property
    def stages_root(self) -> Path:
        return self.path / "stages"

    def open(self, *, fresh: bool, config_text: str) -> None:
        try:
            self._open(fresh=fresh, config_text=config_text)
        except AssayError:
            self.close()
            raise
        except Exception as exc:  # an object store that refuses (no bucket, no credentials, offline)
            self.close()
            if self.remote is None:
                raise
            raise AssayError(f"cannot use run directory {self.location}: {type(exc).__name__}: {exc}") from None

    def _open(self, *, fresh: bool, config_text: str) -> None:
        p = self.path
        if self.remote is None and p.exists() and any(p.iterdir()) and not (p / MARK).exists():
            raise AssayError(f"'{p}' exists and is not an assay run directory; choose another --out "
                             "or empty it (assay never deletes folders it did not create)")
        if self.remote is not None:
            names = set(self.remote.names(p)) - {LEASE}
            if names and MARK not in names:
                raise AssayError(f"'{self.location}' holds files and is not an assay run directory; choose "
                                 "another --out or empty it (assay never deletes what it did not create)")
        p.mkdir(parents=True, exist_ok=True)
        self._lock()
        if fresh:
            if (p / MARK).exists() or self.remote is not None:
                for child in p.iterdir():
                    if child.name != LOCK:
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
            if self.remote is not None:
                for name in set(self.remote.names(p)) - {LEASE}:
                    self.remote.rm(p / name, recursive=True)
        (p / MARK).write_text(FORMAT_VERSION + "\n")
        atomic_write_bytes(p / "config.yaml", config_text.encode())
        self.push(p / MARK, p / "config.yaml")
        self.stages_root.mkdir(exist_ok=True)

    def _lock(self) -> None:
        """One run per directory at a time; the OS drops the lock when the process dies. On an
        object store, a lease object does the same across machines."""
        import fcntl

        self._lock_file = open(self.path / LOCK, "a+")  # held for the whole run
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AssayError(f"another assay run is using '{self.location}'; wait for it or choose another "
                             "--out") from None
        if self.remote is not None:
            self._lease = Lease(self.remote)
            try:
                self._lease.acquire()
            except BaseException:
                self._lease = None
                self.close()
                raise

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        lock = getattr(self, "_lock_file", None)
        if lock is not None:
            lock.close()
            self._lock_file = None

    def stage_dir(self, index: int, label: str, fp: str) -> StageDir:
        return StageDir(self.stages_root / f"{index:02d}-{label}", fp, self.remote)

    def push(self, *paths: Path) -> None:
        """Files or folders written under the run directory here: uploaded when it is on an object store."""
        if self.remote is None:
            return
        for path in paths:
            self.remote.put_tree(path) if path.is_dir() else self.remote.put(path)

    def pull(self) -> None:
        """Bring this machine's copy of a run on an object store up to date for reading (report,
        view, show, export): the published results, and the shards of the read and last stages
        (by their markers: a shard is downloaded when the local copy is not the store's). Nothing
        is downloaded when the local stats.json is the store's (this copy published it)."""
        if self.remote is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        names = self.remote.names(self.path)
        if MARK not in names:
            raise AssayError(f"'{self.location}' is not an assay run directory (no {MARK} in it)")
        try:
            published = self.remote.cat(self.path / "stats.json")
        except FileNotFoundError:
            published = None
        local = self.path / "stats.json"
        if published is not None and local.exists() and local.read_bytes() == published:
            return
        local.unlink(missing_ok=True)
        stages = [n for n in self.remote.names(self.stages_root) if n[:2].isdigit()]
        for name in {stages[0], stages[-1]} if stages else ():
            sd = StageDir(self.stages_root / name, "", self.remote)
            for i in sd.preload():
                sd.fetch(i)
        for name in names:
            if name not in ("stages", "inputs", "stats.json", LEASE):
                if self.remote.kind(self.path / name) == "file":
                    self.remote.get(self.path / name)
                else:
                    shutil.rmtree(self.path / name, ignore_errors=True)
                    self.remote.get_tree(self.path / name)
        if published is not None:  # last: its presence says the copy is whole
            atomic_write_bytes(local, published)

    def reconcile(self, wanted: list[StageDir]) -> list[str]:
        """Delete stage folders whose fingerprint no longer matches (changed parameters upstream or
        here) and folders of stages no longer in the pipeline. Returns the labels invalidated."""
        keep = {sd.path.name: sd for sd in wanted}
        removed = []
        in_store: set[str] = set()  # stage folders the store holds with the wanted fingerprint
        if self.remote is not None:
            for name in self.remote.names(self.stages_root):
                sd = keep.get(name)
                try:
                    fp = self.remote.cat(self.stages_root / name / "fingerprint").decode().strip()
                except FileNotFoundError:
                    fp = None
                if sd is not None and fp == sd.fp:
                    in_store.add(name)
                else:
                    self.remote.rm(self.stages_root / name, recursive=True)
                    removed.append(name)
        for child in sorted(self.stages_root.iterdir()) if self.stages_root.exists() else []:
            sd = keep.get(child.name)
            fp_file = child / "fingerprint"
            if sd is None or not fp_file.exists() or fp_file.read_text().strip() != sd.fp:
                shutil.rmtree(child)
                if self.remote is None:
                    removed.append(child.name)
        for stale in self.path.rglob("*.tmp*"):  # temporaries of a killed run
            if stale.is_file():
                stale.unlink()
        for sd in wanted:
            sd.prepare()
            fp_file = sd.path / "fingerprint"
            if not fp_file.exists():
                atomic_write_bytes(fp_file, sd.fp.encode())
            if self.remote is not None and sd.path.name not in in_store:
                self.push(fp_file)
        return removed

    # ---- final outputs --------------------------------------------------------------------
    def publish(self, last: StageDir, shards: list[int], rejected_from: list[tuple[str, StageDir]],
                read: StageDir, stats: dict[str, Any], output_format: str = "jsonl",
                tokens: dict[str, dict[int, str | None]] | None = None) -> None:
        """(Re)build output/, rejected/, invalid/ and stats.json from the stage folders; idempotent.
        On an object store, the shards of the last and read stages written elsewhere are downloaded
        (the output, and the report's before/after), other stages' rejected items are read from the
        store without their shards, and the results uploaded; stats.json goes last (its presence says
        the outputs are whole)."""
        tokens = tokens or {}
        if self.remote is not None:
            self.remote.rm(self.path / "stats.json")
            for sd in {id(s): s for s in (last, read)}.values():
                known = tokens.get(str(sd.path), {})
                for i in shards:
                    sd.fetch(i, known.get(i))
        out = self.path / "output"
        tmp = self.path / ".output.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for i in shards:
            src = last.shard(i)
            if output_format == "jsonl":
                dst = tmp / f"part-{shard_name(i)}.jsonl"
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copyfile(src, dst)
            else:
                from assay.io.readers import iter_records
                from assay.io.writers import open_writer

                ext = "parquet" if output_format == "parquet" else "jsonl.gz"
                with open_writer(tmp / f"part-{shard_name(i)}.{ext}") as w:
                    w.write_many(iter_records(src))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)

        rej = self.path / ".rejected.tmp"
        shutil.rmtree(rej, ignore_errors=True)
        rej.mkdir()
        for name, sd in rejected_from:
            known = tokens.get(str(sd.path), {})
            _concat([sd.readable(i, sd.rejected(i), known.get(i)) for i in shards], rej / f"{name}.jsonl")
        shutil.rmtree(self.path / "rejected", ignore_errors=True)
        os.replace(rej, self.path / "rejected")

        inv = self.path / "invalid"
        inv.mkdir(exist_ok=True)
        _concat([read.invalid(i) for i in shards], inv / "invalid.jsonl")
        atomic_write_json(self.path / "stats.json", stats)
        self.push(out, self.path / "rejected", inv, self.path / "stats.json")


def local_run(location: str | os.PathLike[str]) -> Path:
    """A run directory to read on this machine: a path as given, or, for a run on an object store,
    its local copy brought up to date with the store (only what changed is downloaded)."""
    rd = RunDir(location)
    rd.pull()
    return rd.path


def _concat(parts: list[Path | Any], dst: Path) -> None:
    """Join files (local paths, or openers of objects in the store) into `dst`."""
    tmp = f"{dst}.tmp"
    with open(tmp, "wb") as out:
        for part in parts:
            if isinstance(part, Path):
                if part.exists():
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 20)
                continue
            try:
                with part() as f:
                    shutil.copyfileobj(f, out, 1 << 20)
            except FileNotFoundError:
                pass
    os.replace(tmp, dst)
