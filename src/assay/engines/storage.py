"""Paths through fsspec: inputs that live on object stores or web servers.

An input given as a URL (s3://, gs://, az://, http(s)://, hf://, memory://) is copied once into
`DEST/<hash>-<name>` with a sidecar `.source.json` naming what was copied (size, ETag or mtime of
every file); a later run reuses the copy while the source is unchanged, so its fingerprint, and
therefore resume, stays the same. `file://` URLs are plain paths. The copy is written under a
temporary name and renamed, and the sidecar is written last, so a killed copy is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from assay.config import InputSpec
from assay.errors import AssayError

IDENTITY_KEYS = ("size", "ETag", "etag", "md5", "LastModified", "last_modified", "mtime", "generation",
                 "version_id", "created")


def is_url(path: str) -> bool:
    return "://" in path


def protocol(path: str) -> str:
    from fsspec.utils import get_protocol

    return get_protocol(path)


def plain_path(path: str) -> str | None:
    """The local path of `path` when it is one (a plain path or a file:// URL), else None."""
    if not is_url(path):
        return path
    if protocol(path) in ("file", "local"):
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem._strip_protocol(path)
    return None


def _filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise AssayError(f"cannot open {url!r}: {exc} (install the fsspec backend for "
                         f"{protocol(url)}://, e.g. s3fs or gcsfs)") from None


def _identity(info: dict[str, Any]) -> dict[str, str]:
    return {k: str(info[k]) for k in IDENTITY_KEYS if info.get(k) is not None}


def source_identity(url: str) -> dict[str, Any]:
    """What a copy of `url` is a copy of: its files with size and version markers."""
    fs, path = _filesystem(url)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise AssayError(f"input '{url}' does not exist") from None
    if info.get("type") != "directory":
        return {"url": url, "files": {"": _identity(info)}}
    found = fs.find(path, detail=True)
    root = path.rstrip("/") + "/"
    files = {name[len(root):] if name.startswith(root) else name: _identity(meta)
             for name, meta in sorted(found.items()) if meta.get("type") != "directory"}
    if not files:
        raise AssayError(f"input '{url}' is an empty folder")
    return {"url": url, "files": files}


def local_copy(url: str, dest: Path) -> Path:
    """A local copy of the file or folder at `url` under `dest`, fetched only when it changed."""
    identity = source_identity(url)
    name = url.rstrip("/").rsplit("/", 1)[-1] or "input"
    target = Path(dest) / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"
    sidecar = target.with_name(target.name + ".source.json")
    if target.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == identity:
        return target
    fs, path = _filesystem(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar.unlink(missing_ok=True)
    tmp = target.with_name(f".{target.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        if list(identity["files"]) == [""]:
            fs.get_file(path, str(tmp))
        else:
            tmp.mkdir()
            for rel in identity["files"]:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{path.rstrip('/')}/{rel}", str(tmp / rel))
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    sidecar.write_text(json.dumps(identity, sort_keys=True))
    return target


def stage_inputs(inputs: list[InputSpec], dest: Path) -> list[InputSpec]:
    """The inputs with every URL replaced by a local path (copied under `dest` when remote)."""
    out = []
    for spec in inputs:
        local = plain_path(spec.path)
        if local is None:
            local = str(local_copy(spec.path, dest))
        out.append(spec if local == spec.path else spec.model_copy(update={"path": local}))
    return out
