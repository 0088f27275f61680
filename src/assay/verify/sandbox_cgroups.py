"""Per-slot memory and process cgroups for the sandbox, where the host lets this process make them.

rlimits bound each process; a cgroup bounds the sandbox as a whole: the total memory of all its
processes (and of the files they keep in its tmpfs), and the number of tasks whatever their uid.
Without it, 64 processes of 1 GB each could take the host down. The sandbox joins its cgroups
before bubblewrap starts (a `sh` that writes its own pid, then execs), so nothing escapes them.

cgroup v1 (a `memory` and a `pids` hierarchy) and a delegated cgroup v2 subtree are supported;
anywhere else (no permission, no controller) the sandbox runs on rlimits alone.
Standard library only.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root within the hierarchy, fs type, super options) of cgroup mounts."""
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                parts, rparts = left.split(), right.split()
                if len(parts) < 5 or len(rparts) < 3 or rparts[0] not in ("cgroup", "cgroup2"):
                    continue
                out.append((parts[4], parts[3], rparts[0], set(rparts[2].split(","))))
    except OSError:
        pass
    return out


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path ("" key: the v2 unified path)."""
    paths: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    paths[c] = path
    except (OSError, ValueError):
        pass
    return paths


def _join(mount: str, root: str, path: str) -> Path:
    if root != "/" and path.startswith(root):
        path = path[len(root):]
    return Path(mount) / path.lstrip("/")


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


@dataclass
class SlotCgroups:
    """The cgroup directories of one slot (memory, pids; the same directory under v2)."""

    memory: Path
    pids: Path | None
    v2: bool

    def limit(self, memory_bytes: int, tasks: int) -> None:
        if self.v2:
            _write(self.memory / "memory.max", str(memory_bytes))
            if (self.memory / "memory.swap.max").exists():
                _write(self.memory / "memory.swap.max", "0")
            _write(self.memory / "pids.max", str(tasks))
            return
        _write(self.memory / "memory.limit_in_bytes", str(memory_bytes))
        if self.pids is not None:
            _write(self.pids / "pids.max", str(tasks))

    def oom_kills(self) -> int:
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            with open(self.memory / name, encoding="ascii") as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def procs_files(self) -> list[Path]:
        files = [self.memory / "cgroup.procs"]
        if self.pids is not None and self.pids != self.memory:
            files.append(self.pids / "cgroup.procs")
        return files


@dataclass
class Cgroups:
    """Slot cgroups under this process's own cgroup; `Cgroups.create` returns None where none can be made."""

    base: list[Path]
    slots: list[SlotCgroups] = field(default_factory=list)

    @classmethod
    def create(cls, slots: int, tag: str) -> Cgroups | None:
        try:
            return cls._v1(slots, tag) or cls._v2(slots, tag)
        except OSError:
            return None

    @classmethod
    def _v1(cls, slots: int, tag: str) -> Cgroups | None:
        own = _own_paths()
        dirs: dict[str, Path] = {}
        for mount, root, fstype, opts in _mounts():
            for ctrl in ("memory", "pids"):
                if fstype == "cgroup" and ctrl in opts and ctrl in own:
                    dirs[ctrl] = _join(mount, root, own[ctrl]) / tag
        if "memory" not in dirs:
            return None
        for d in dirs.values():
            _remove_stale(d.parent)
        made = []
        try:
            for d in dirs.values():
                d.mkdir(exist_ok=True)
                made.append(d)
            group = cls(made)
            for i in range(slots):
                mem = dirs["memory"] / f"slot{i}"
                mem.mkdir(exist_ok=True)
                pids = None
                if "pids" in dirs:
                    pids = dirs["pids"] / f"slot{i}"
                    pids.mkdir(exist_ok=True)
                group.slots.append(SlotCgroups(mem, pids, v2=False))
            group.slots[0].limit(64 << 20, 64)  # can the limits be written?
            return group
        except OSError:
            cls(made, []).close()
            return None

    @classmethod
    def _v2(cls, slots: int, tag: str) -> Cgroups | None:
        own = _own_paths().get("")
        mount = next((m for m in _mounts() if m[2] == "cgroup2"), None)
        if own is None or mount is None:
            return None
        parent = _join(mount[0], mount[1], own)
        top = parent / tag
        _remove_stale(parent)
        try:
            if not {"memory", "pids"} <= set((parent / "cgroup.controllers").read_text().split()):
                return None
            top.mkdir(exist_ok=True)
            group = cls([top])
            _write(top / "cgroup.subtree_control", "+memory +pids")
            for i in range(slots):
                d = top / f"slot{i}"
                d.mkdir(exist_ok=True)
                group.slots.append(SlotCgroups(d, d, v2=True))
            group.slots[0].limit(64 << 20, 64)
            return group
        except OSError:
            try:
                top.rmdir()
            except OSError:
                pass
            return None

    def join_argv(self, slot: int, argv: list[str]) -> list[str]:
        """argv run from a shell that first moves itself into the slot's cgroups."""
        writes = " && ".join(f"echo 0 > {shlex.quote(str(p))}" for p in self.slots[slot].procs_files())
        return ["/bin/sh", "-c", f'{writes} || exit 97; exec "$@"', "sh", *argv]

    def close(self, wait: float = 2.0) -> None:
        """Remove the directories (retrying briefly: a zombie that the host's init has not yet collected
        still counts as a member)."""
        dirs = [d for s in self.slots for d in (s.memory, s.pids) if d is not None] + list(self.base)
        deadline = time.monotonic() + wait
        while dirs:
            left = []
            for d in dict.fromkeys(dirs):
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(d)
            dirs = left
            if not dirs or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.slots = []


def cgroup_tag() -> str:
    return f"assay-{os.getpid()}"


def _remove_stale(parent: Path) -> None:
    """Empty cgroups left by assay processes that died without cleaning up."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for d in entries:
        m = re.match(r"assay-(\d+)-", d.name)
        if not m or not d.is_dir() or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        for sub in d.glob("slot*"):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except OSError:
            pass
