"""A run directory on an object store (s3://, gs://, az://, ...), through fsspec.

Object stores have no rename and no lock, so a remote run directory works like this:
- every process writes into a node-local mirror of the run directory (see `mirror_path`) exactly as
  it would locally, then uploads each finished file whole; a shard's done marker is uploaded last,
  so a marker in the store is the commit of the files it stands for;
- the store is the truth: markers are read from it, and a process that needs a shard's files
  downloads them when its own copy's marker is not the store's (a shard written on another node,
  or by an earlier run);
- a lease object (`.lease.json`: host, pid, heartbeat) stands in for the lock file: a run that sees
  a lease renewed within `LEASE_SECONDS` by another live run refuses to start.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from assay.errors import AssayError

T = TypeVar("T")
LEASE = ".lease.json"
LEASE_SECONDS = float(os.environ.get("ASSAY_LEASE_SECONDS", "90"))  # a lease not renewed this long is free
READ_ONLY = ("http", "https")


def mirror_path(url: str) -> Path:
    """The node-local copy of the run directory at `url`: `$ASSAY_RUN_MIRROR/<hash>-<name>`
    (default `~/.cache/assay/runs`). The same on every node that has the same home layout; it only
    has to be private to the node, not shared."""
    root = Path(os.environ.get("ASSAY_RUN_MIRROR") or Path.home() / ".cache" / "assay" / "runs")
    name = url.rstrip("/").rsplit("/", 1)[-1] or "run"
    return root / f"{hashlib.sha256(url.rstrip('/').encode()).hexdigest()[:12]}-{name}"


class StoreError(AssayError):
    """The object store refused an operation (credentials, permissions, network)."""


def _store_op(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn a backend's exception into one sentence naming the operation and the object;
    FileNotFoundError stays (callers use it to mean 'not there')."""

    @functools.wraps(fn)
    def wrapper(self: RemoteRun, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(self, *args, **kwargs)
        except (FileNotFoundError, AssayError):
            raise
        except Exception as exc:
            what = args[0] if args else ""
            where = self.key(what) if isinstance(what, Path) else self.url
            raise StoreError(f"the object store refused {fn.__name__} of {self.url.split('://')[0]}://{where}: "
                             f"{type(exc).__name__}: {exc}") from None

    return wrapper


class RemoteRun:
    """The store side of a run directory whose local mirror is `local`; paths are given as local
    paths under the mirror and mapped to keys under the URL. Picklable (the filesystem is rebuilt
    in each process)."""

    def __init__(self, url: str, local: Path | None = None):
        self.url = url.rstrip("/")
        self.local = Path(local) if local is not None else mirror_path(self.url)
        self.sent_from = self.local  # the copy of the process that sent this one (see `here`)
        self._fs: Any = None
        self._root = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "local": self.local}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # another process, maybe on another machine: its own local copy (its $ASSAY_RUN_MIRROR or
        # home), not the sender's, which may not exist or be writable here
        self.__init__(state["url"])  # type: ignore[misc]
        self.sent_from = Path(state["local"])

    def here(self, path: str | os.PathLike[str]) -> Path:
        """A path of the sender's copy, as a path of this process's copy (others unchanged)."""
        path = Path(path)
        if self.sent_from == self.local:
            return path
        try:
            return self.local / path.relative_to(self.sent_from)
        except ValueError:
            return path

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec
            from fsspec.utils import get_protocol

            proto = get_protocol(self.url)
            if proto in READ_ONLY:
                raise AssayError(f"the run directory cannot be on {proto}:// (read-only); use a local path, "
                                 "a mounted folder or an object store (s3://, gs://, az://)")
            try:
                # no listing cache: other processes and nodes write here too
                self._fs, root = fsspec.core.url_to_fs(self.url, use_listings_cache=False)
            except (ImportError, ValueError) as exc:
                raise AssayError(f"cannot open run directory {self.url!r}: {exc} (install the fsspec "
                                 f"backend for {proto}://, e.g. s3fs or gcsfs)") from None
            self._root = root.rstrip("/")
        return self._fs

    @property
    def root(self) -> str:
        """The run directory's path inside the filesystem (the URL without its protocol)."""
        if self._fs is None:
            _ = self.fs
        return self._root

    def key(self, path: str | os.PathLike[str]) -> str:
        rel = self.here(path).relative_to(self.local).as_posix()
        return self.root if rel == "." else f"{self.root}/{rel}"

    # ---- whole objects ------------------------------------------------------------------------
    @_store_op
    def cat(self, path: Path) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""
        return self.fs.cat_file(self.key(path))

    @_store_op
    def cat_many(self, paths: list[Path]) -> dict[Path, bytes | None]:
        """Several objects at once (concurrent requests where the backend can); None when missing."""
        if not paths:
            return {}
        keys = [self.key(p) for p in paths]
        got = self.fs.cat(keys, on_error="return")
        if not isinstance(got, dict):  # one path: fsspec returns its bytes
            got = {keys[0]: got}
        out: dict[Path, bytes | None] = {}
        for p, k in zip(paths, keys, strict=True):
            v = got.get(k)
            if isinstance(v, FileNotFoundError) or v is None:
                out[p] = None
            elif isinstance(v, BaseException):
                raise v
            else:
                out[p] = v
        return out

    @_store_op
    def put(self, path: Path) -> None:
        self.fs.put_file(str(path), self.key(path))

    @_store_op
    def put_many(self, paths: list[Path]) -> None:
        """Upload several files (concurrently where the backend can)."""
        if len(paths) == 1:
            self.put(paths[0])
        elif paths:
            self.fs.put([str(p) for p in paths], [self.key(p) for p in paths])

    @_store_op
    def pipe(self, path: Path, data: bytes) -> None:
        self.fs.pipe_file(self.key(path), data)

    @_store_op
    def get(self, path: Path) -> bool:
        """Download the object to its local path (whole, then renamed); False when there is none."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}-{uuid.uuid4().hex[:6]}"
        try:
            self.fs.get_file(self.key(path), tmp)
        except FileNotFoundError:
            Path(tmp).unlink(missing_ok=True)
            return False
        os.replace(tmp, path)
        return True

    @_store_op
    def exists(self, path: Path) -> bool:
        return self.kind(path) is not None

    @_store_op
    def kind(self, path: Path) -> str | None:
        """'file', 'directory' (a prefix holding objects), or None when there is nothing."""
        try:
            return self.fs.info(self.key(path)).get("type")
        except FileNotFoundError:
            return None

    @_store_op
    def rm(self, path: Path, recursive: bool = False) -> None:
        key = self.key(path)
        try:
            if recursive:
                found = self.fs.find(key)
                if found:
                    self.fs.rm(found)
                try:  # object stores have no folders left; other filesystems may
                    self.fs.rm(key, recursive=True)
                except (FileNotFoundError, OSError):
                    pass
            else:
                self.fs.rm_file(key)
        except FileNotFoundError:
            pass

    @_store_op
    def names(self, path: Path) -> list[str]:
        """Names directly under a folder (files and sub-folders); [] when there is none."""
        key = self.key(path)
        try:
            entries = self.fs.ls(key, detail=False)
        except FileNotFoundError:
            return []
        prefix = key.rstrip("/") + "/"
        return sorted({e.rstrip("/")[len(prefix):].split("/", 1)[0] for e in entries if e.startswith(prefix)} - {""})

    @_store_op
    def put_tree(self, folder: Path) -> None:
        """Upload every file under a local folder (replacing what the store held there)."""
        self.rm(folder, recursive=True)
        self.put_many([f for f in sorted(folder.rglob("*")) if f.is_file() and ".tmp" not in f.name])

    @_store_op
    def open(self, path: Path) -> Any:
        """The object, opened for reading (streamed, not downloaded)."""
        return self.fs.open(self.key(path), "rb")

    @_store_op
    def get_tree(self, folder: Path) -> None:
        """Download every object under `folder` into the local copy (concurrently where it can)."""
        key = self.key(folder)
        try:
            found = self.fs.find(key, detail=True)
        except FileNotFoundError:
            return
        keys, targets = [], []
        for k, meta in found.items():
            target = self.local / k[len(self.root):].lstrip("/")
            if meta.get("type") != "directory" and target.name != LEASE:
                target.parent.mkdir(parents=True, exist_ok=True)
                keys.append(k)
                targets.append(str(target))
        if keys:
            self.fs.get(keys, targets)


class Lease:
    """One run per remote run directory: a lease object the holder renews from a thread; one
    written by a process of this machine that is gone, or not renewed for LEASE_SECONDS, is free."""

    def __init__(self, remote: RemoteRun):
        self.remote = remote
        self.path = remote.local / LEASE
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return orjson.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                             "renewed": time.time()})

    def acquire(self) -> None:
        try:
            held = orjson.loads(self.remote.cat(self.path))
        except (FileNotFoundError, orjson.JSONDecodeError):
            held = None
        if held and held.get("owner") != self.owner and not _free(held):
            age = time.time() - float(held.get("renewed", 0))
            raise AssayError(f"another assay run (host {held.get('host')}, pid {held.get('pid')}) holds "
                             f"{self.remote.url}: its lease was renewed {age:.0f}s ago; wait for it or choose "
                             f"another --out (a lease not renewed for {LEASE_SECONDS:.0f}s is taken over)")
        self.remote.pipe(self.path, self._body())
        time.sleep(0.05)
        held = orjson.loads(self.remote.cat(self.path))
        if held.get("owner") != self.owner:  # another run wrote its lease at the same moment
            raise AssayError(f"another assay run (host {held.get('host')}, pid {held.get('pid')}) started on "
                             f"{self.remote.url} at the same time; wait for it or choose another --out")
        self._thread = threading.Thread(target=self._renew, name="assay-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 4):
            try:
                self.remote.pipe(self.path, self._body())
            except Exception:  # a missed renewal is retried; the lease lasts four periods
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            try:
                held = orjson.loads(self.remote.cat(self.path))
                if held.get("owner") == self.owner:
                    self.remote.rm(self.path)
            except (FileNotFoundError, orjson.JSONDecodeError):
                pass


def _free(held: dict[str, Any]) -> bool:
    if time.time() - float(held.get("renewed", 0)) > LEASE_SECONDS:
        return True
    if held.get("host") == socket.gethostname() and isinstance(held.get("pid"), int):
        try:
            os.kill(held["pid"], 0)
        except ProcessLookupError:
            return True  # a killed run of this machine: resume at once
        except PermissionError:
            return False
    return False
