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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from assay.errors import AssayError
from assay.io.writers import atomic_write_bytes, atomic_write_json

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

    def read_marker(self, i: int) -> dict[str, Any]:
        return orjson.loads(self.marker(i).read_bytes())

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

    def write_marker(self, i: int, data: dict[str, Any], upstream: str | None) -> str:
        token = uuid.uuid4().hex
        atomic_write_bytes(self.marker(i), orjson.dumps({**data, "token": token, "upstream": upstream}))
        return token

    def done_shards(self) -> list[int]:
        d = self.path / "done"
        if not d.exists():
            return []
        return sorted(int(p.stem) for p in d.glob("*.json") if p.stem.isdigit())

    def prepare(self) -> None:
        for sub in ("shards", "rejected", "done", "invalid"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    # whole-stage markers (global stage state, end of input)
    def flag(self, name: str) -> Path:
        return self.path / f"{name}.json"


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class RunDir:
    def __init__(self, path: str | os.PathLike[str]):
        if _URL.match(str(path)):
            # Markers rely on atomic renames, which object stores do not have.
            raise AssayError(f"the run directory must be a local or mounted path (NFS, a mounted bucket), "
                             f"not a URL: {path}; inputs and cache_dir may be URLs")
        self.path = Path(path)

    @property
    def stages_root(self) -> Path:
        return self.path / "stages"

    def open(self, *, fresh: bool, config_text: str) -> None:
        p = self.path
        if p.exists() and any(p.iterdir()) and not (p / MARK).exists():
            raise AssayError(f"'{p}' exists and is not an assay run directory; choose another --out "
                             "or empty it (assay never deletes folders it did not create)")
        p.mkdir(parents=True, exist_ok=True)
        self._lock()
        if fresh and (p / MARK).exists():
            for child in p.iterdir():
                if child.name != LOCK:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        (p / MARK).write_text(FORMAT_VERSION + "\n")
        atomic_write_bytes(p / "config.yaml", config_text.encode())
        self.stages_root.mkdir(exist_ok=True)

    def _lock(self) -> None:
        """One run per directory at a time; the OS drops the lock when the process dies."""
        import fcntl

        self._lock_file = open(self.path / LOCK, "a+")  # held for the whole run
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AssayError(f"another assay run is using '{self.path}'; wait for it or choose another --out") from None

    def close(self) -> None:
        lock = getattr(self, "_lock_file", None)
        if lock is not None:
            lock.close()
            self._lock_file = None

    def stage_dir(self, index: int, label: str, fp: str) -> StageDir:
        return StageDir(self.stages_root / f"{index:02d}-{label}", fp)

    def reconcile(self, wanted: list[StageDir]) -> list[str]:
        """Delete stage folders whose fingerprint no longer matches (changed parameters upstream or
        here) and folders of stages no longer in the pipeline. Returns the labels invalidated."""
        keep = {sd.path.name: sd for sd in wanted}
        removed = []
        for child in sorted(self.stages_root.iterdir()) if self.stages_root.exists() else []:
            sd = keep.get(child.name)
            fp_file = child / "fingerprint"
            if sd is None or not fp_file.exists() or fp_file.read_text().strip() != sd.fp:
                shutil.rmtree(child)
                removed.append(child.name)
        for stale in self.path.rglob("*.tmp*"):  # temporaries of a killed run
            if stale.is_file():
                stale.unlink()
        for sd in wanted:
            sd.prepare()
            if not (sd.path / "fingerprint").exists():
                atomic_write_bytes(sd.path / "fingerprint", sd.fp.encode())
        return removed

    # ---- final outputs --------------------------------------------------------------------
    def publish(self, last: StageDir, shards: list[int], rejected_from: list[tuple[str, StageDir]],
                read: StageDir, stats: dict[str, Any], output_format: str = "jsonl") -> None:
        """(Re)build output/, rejected/, invalid/ and stats.json from the stage folders; idempotent."""
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
            _concat([sd.rejected(i) for i in shards], rej / f"{name}.jsonl")
        shutil.rmtree(self.path / "rejected", ignore_errors=True)
        os.replace(rej, self.path / "rejected")

        inv = self.path / "invalid"
        inv.mkdir(exist_ok=True)
        _concat([read.invalid(i) for i in shards], inv / "invalid.jsonl")
        atomic_write_json(self.path / "stats.json", stats)


def _concat(parts: list[Path], dst: Path) -> None:
    tmp = f"{dst}.tmp"
    with open(tmp, "wb") as out:
        for part in parts:
            if part.exists():
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
    os.replace(tmp, dst)
