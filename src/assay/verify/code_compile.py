"""C++ candidates: compiled once per source (in the sandbox: the compiler reads untrusted code too),
binaries cached by the hash of compiler, flags and source, in memory and under the cache dir."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from assay.verify.sandbox import Limits, Sandbox, SessionOverflow, SessionTimeout


@dataclass(frozen=True)
class Compiled:
    ok: bool
    binary_b64: str | None  # base64 of the executable
    log: str
    status: str = "ok"  # ok | compile_error | sandbox_error
    cached: bool = False


class CxxCompiler:
    def __init__(self, sandbox: Sandbox, cache_dir: Path | None, cxx: str = "g++",
                 flags: tuple[str, ...] = ("-std=c++17", "-O2", "-pipe"), timeout_s: float = 60.0,
                 memory_mb: int = 2048, keep_in_memory: int = 64):
        self.sandbox = sandbox
        self.path = shutil.which(cxx)
        self.flags = tuple(flags)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.dir = cache_dir / "code-verify" / "cxx" if cache_dir else None
        self._mem: OrderedDict[str, Compiled] = OrderedDict()
        self._keep = keep_in_memory
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.hits = self.misses = 0
        self.identity = ""
        if self.path:
            real = os.path.realpath(self.path)
            st = os.stat(real)
            self.identity = f"{real}:{st.st_size}:{int(st.st_mtime)}"

    def key(self, source: str) -> str:
        h = hashlib.sha256()
        for part in (self.identity, "\0".join(self.flags), source):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        return h.hexdigest()

    def compile(self, source: str) -> Compiled:
        if not self.path:
            return Compiled(False, None, "no C++ compiler (g++) on this machine", status="sandbox_error")
        key = self.key(source)
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:  # the same source compiles once even when several workers want it
            found = self._lookup(key)
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
            result = self._compile(source)
            if result.status != "sandbox_error":
                self._store(key, result)
            return result

    def _lookup(self, key: str) -> Compiled | None:
        with self._lock:
            if key in self._mem:
                self._mem.move_to_end(key)
                hit = self._mem[key]
                return Compiled(hit.ok, hit.binary_b64, hit.log, hit.status, cached=True)
        if self.dir is None:
            return None
        base = self.dir / key[:2] / key
        try:
            if base.with_suffix(".bin").exists():
                data = base.with_suffix(".bin").read_bytes()
                log = base.with_suffix(".log").read_text(encoding="utf-8") if base.with_suffix(".log").exists() else ""
                found = Compiled(True, base64.b64encode(data).decode("ascii"), log, cached=True)
            elif base.with_suffix(".err").exists():
                found = Compiled(False, None, base.with_suffix(".err").read_text(encoding="utf-8"),
                                 status="compile_error", cached=True)
            else:
                return None
        except OSError:
            return None
        self._remember(key, found)
        return found

    def _store(self, key: str, result: Compiled) -> None:
        self._remember(key, result)
        if self.dir is None:
            return
        base = self.dir / key[:2] / key
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            if result.ok and result.binary_b64 is not None:
                _atomic(base.with_suffix(".log"), result.log.encode("utf-8"))
                _atomic(base.with_suffix(".bin"), base64.b64decode(result.binary_b64))
            else:
                _atomic(base.with_suffix(".err"), result.log.encode("utf-8"))
        except OSError:
            pass  # a read-only cache only costs recompiles

    def _remember(self, key: str, result: Compiled) -> None:
        with self._lock:
            self._mem[key] = result
            self._mem.move_to_end(key)
            while len(self._mem) > self._keep:
                self._mem.popitem(last=False)

    def _compile(self, source: str) -> Compiled:
        limits = Limits(memory_mb=self.memory_mb, processes=64, file_mb=256, cpu_s=int(self.timeout_s) + 5)
        with self.sandbox.session(limits) as s:
            try:
                res = s.start({"mode": "compile", "source": source, "cxx": self.path, "flags": list(self.flags),
                               "time_limit": self.timeout_s}, timeout=self.timeout_s + 30)
            except (SessionTimeout, SessionOverflow):
                s.kill()
                return Compiled(False, None, f"the compiler ran over {self.timeout_s:g} s", status="compile_error")
            if not res or res.get("ev") != "compiled":
                why = (res or {}).get("error") or s.stderr_tail() or "the sandbox ended early"
                return Compiled(False, None, f"compile failed in the sandbox: {why}"[-2000:], status="sandbox_error")
            if res.get("ok"):
                return Compiled(True, res["binary"], res.get("log", ""))
            log = res.get("log") or ""
            if res.get("status") == "timeout":
                log = f"the compiler ran over {self.timeout_s:g} s\n" + log
            elif res.get("status") == "memory":
                log = f"the compiler ran out of memory ({self.memory_mb} MB)\n" + log
            return Compiled(False, None, log, status="compile_error")


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
