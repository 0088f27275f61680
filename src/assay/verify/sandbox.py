"""A bubblewrap sandbox for untrusted code: the host half of code-verify's runner.

Each session is one sandbox running `harness.py` (the in-sandbox half) under bubblewrap with new
PID, network, IPC, UTS and cgroup namespaces (and a user namespace where the kernel lets a plain
uid make one), a read-only view of /usr and of the Python installation only, a private size-capped
tmpfs as the work dir, an empty environment and `--die-with-parent`. The harness is the sandbox's
init: programs inside cannot signal it, and everything inside dies with it. It sets rlimits
(address space, processes, file size, open files, CPU) before any candidate code runs, and the
program runs as a uid of its own (one per worker slot, so the process limit counts only its
processes). Where the host allows it, each slot also has a memory and a pids cgroup, which hold
all the sandbox's processes together to the memory limit. The host keeps a wall-clock deadline
on every message and kills the whole sandbox (and with it every process inside) when one passes;
captured output is capped on both sides; if the host dies, the harness notices and ends too.

Three ways to start bubblewrap, picked automatically:
- `userns`: bwrap runs as an unprivileged uid (the current user, or as root a per-slot uid via
  setpriv) and unshares a user namespace too;
- `setuid`: as root when the Python installation is not readable by other uids (e.g. under /root):
  bwrap runs as root without a user namespace and keeps only CAP_SETUID/CAP_SETGID, which setpriv
  uses to switch to the slot uid before the harness starts (no capabilities left, no_new_privs);
- `unsafe`: no bubblewrap at all (explicit opt-in): rlimits, a temp work dir and a clean environment.

Standard library only (tests run it from a plain interpreter as an unprivileged user).
"""

from __future__ import annotations

import functools
import json
import os
import queue
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.errors import AssayError
from assay.verify.sandbox_cgroups import Cgroups, cgroup_tag

HARNESS = Path(__file__).with_name("harness.py")
# The harness goes in precompiled when the sandbox's interpreter has this one's bytecode format
# (compiling it at every start would cost as much as the interpreter's own start-up).
_BOOT = "import marshal,binascii,sys;exec(marshal.loads(binascii.a2b_base64(sys.argv[1])))"
SANDBOX_WORK = "/tmp"
INFO_FD = "{info-fd}"  # in a command: replaced by the fd where bwrap writes the host pid of the sandbox's init
UID_BASE = 3_000_000_000  # slot uids: far above any real account
TAIL = 8192


class SandboxError(AssayError):
    """The sandbox itself failed (not the program in it)."""


class SandboxUnavailable(SandboxError):
    """bubblewrap cannot start here."""


class SessionTimeout(Exception):
    """No message from the harness before the deadline."""


class SessionOverflow(Exception):
    """The harness (or the program inside it) sent more than the output cap."""


@dataclass(frozen=True)
class PythonRuntime:
    """The interpreter that runs candidates and what of the filesystem it needs."""

    executable: str  # real path
    binds: tuple[str, ...]  # directories to bind read-only at the same path
    sys_path: tuple[str, ...]  # added to sys.path in the sandbox (site-packages)
    version: tuple[int, int]
    magic: str  # bytecode magic number (hex)

    def harness_argv(self) -> list[str]:
        import importlib.util

        head = [self.executable, "-I", "-S", "-B", "-c"]
        if self.magic == importlib.util.MAGIC_NUMBER.hex():
            return [*head, _BOOT, _harness_code()]
        return [*head, _harness_source()]


@functools.cache
def _harness_source() -> str:
    return HARNESS.read_text(encoding="utf-8")


@functools.cache
def _harness_code() -> str:
    import binascii
    import marshal

    code = compile(_harness_source(), "harness.py", "exec", dont_inherit=True)
    return binascii.b2a_base64(marshal.dumps(code), newline=False).decode("ascii")


@functools.cache
def bwrap_options(bwrap: str) -> frozenset[str]:
    """The options this bubblewrap understands (older releases lack --size, --disable-userns...)."""
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(w for w in text.split() if w.startswith("--"))


def find_python(python: str | None = None, site_packages: bool = True) -> PythonRuntime:
    """Describe `python` (default: the interpreter running assay) for binding into the sandbox."""
    if python is None:
        import importlib.util
        import site

        info = {"base_prefix": sys.base_prefix, "executable": sys.executable,
                "site": site.getsitepackages() if hasattr(site, "getsitepackages") else [],
                "version": list(sys.version_info[:2]), "magic": importlib.util.MAGIC_NUMBER.hex()}
    else:
        exe = shutil.which(python) or python
        probe = ("import json, site, sys, importlib.util; print(json.dumps({'base_prefix': sys.base_prefix, "
                 "'executable': sys.executable, 'site': site.getsitepackages(), 'version': list(sys.version_info[:2]), "
                 "'magic': importlib.util.MAGIC_NUMBER.hex()}))")
        try:
            out = subprocess.run([exe, "-I", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
            info = json.loads(out.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise SandboxUnavailable(f"cannot use {python!r} as the sandbox's Python ({exc})") from None
    executable = os.path.realpath(info["executable"])
    binds = [os.path.realpath(info["base_prefix"]), os.path.dirname(executable)]
    extra = [os.path.realpath(p) for p in info["site"] if os.path.isdir(p)] if site_packages else []
    return PythonRuntime(executable, tuple(_outermost(binds + extra)), tuple(extra), tuple(info["version"]),
                         info["magic"])


def _outermost(paths: list[str]) -> list[str]:
    """Paths not under /usr (bound anyway) nor under another path of the list."""
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if p == "/usr" or p.startswith("/usr/") or any(p == q or p.startswith(q + "/") for q in out):
            continue
        out.append(p)
    return out


def readable_by_others(path: str) -> bool:
    """True when a uid with no relation to the owner can reach and read `path` (mode bits only)."""
    p = Path(path)
    try:
        for parent in reversed(p.parents):
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(p).st_mode
    except OSError:
        return False
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


def _processes_of(uid: int) -> int:
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _await_no_processes(uid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = False
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid and not _is_zombie(entry.path):
                        alive = True
                        break
                except OSError:
                    pass
        if not alive:
            return
        time.sleep(0.01)


def _is_zombie(proc_dir: str) -> bool:
    try:
        with open(f"{proc_dir}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


@dataclass
class Limits:
    """Per-process limits inside the sandbox (the harness applies them before the program runs)."""

    memory_mb: int = 1024
    processes: int = 64
    file_mb: int = 64
    open_files: int = 256
    cpu_s: int = 600
    stack_mb: int = 256

    def rlimits(self, extra_processes: int = 0) -> dict[str, int]:
        mem = self.memory_mb << 20
        return {"as": mem, "nproc": self.processes + extra_processes, "fsize": self.file_mb << 20,
                "nofile": self.open_files, "core": 0, "stack": min(self.stack_mb << 20, mem), "cpu": self.cpu_s}


@dataclass
class Sandbox:
    """Starts sessions (one sandbox each); `slots` bounds how many run at once (one uid each)."""

    python: str | None = None
    unsafe: bool = False
    slots: int = 2
    tmp_mb: int = 64
    site_packages: bool = True
    use_cgroups: bool = True
    mode: str = field(default="", init=False)
    cgroups: Cgroups | None = field(default=None, init=False)
    runtime: PythonRuntime = field(init=False)
    _free: queue.Queue[int] = field(init=False, repr=False)
    _uid_base: int = field(init=False, repr=False)
    _own_procs: tuple[float, int] = field(default=(0.0, 0), init=False, repr=False)

    def __post_init__(self) -> None:
        self.runtime = find_python(self.python, self.site_packages)
        self._uid_base = UID_BASE + (os.getpid() % 100_000) * 64
        self._free = queue.Queue()
        for i in range(max(1, self.slots)):
            self._free.put(i)
        self.bwrap = shutil.which("bwrap")
        self.setpriv = shutil.which("setpriv")
        self._lock = threading.Lock()
        if self.unsafe:
            self.mode = "unsafe"
        elif self.bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed, so untrusted code cannot be isolated; install it "
                "(apt-get install bubblewrap) or pass unsafe_no_sandbox=true to run code without isolation")
        elif os.geteuid() != 0:
            self.mode = "userns"
        elif self.setpriv and all(readable_by_others(p) for p in self.runtime.binds):
            self.mode = "userns"
        else:
            self.mode = "setuid"
        if self.use_cgroups:
            self.cgroups = Cgroups.create(max(1, self.slots), f"{cgroup_tag()}-{id(self):x}")
            if self.cgroups is not None:  # removed at close(), or when this object goes or the process exits
                self._finalizer = weakref.finalize(self, self.cgroups.close)

    def close(self) -> None:
        """Remove the slot cgroups (sessions must be closed)."""
        if self.cgroups is not None:
            self.cgroups.close()
            self.cgroups = None

    # ---- start-up check ----------------------------------------------------------------------
    def probe(self) -> None:
        """Run `print(6*7)` in a sandbox; raise SandboxUnavailable (saying why) when that fails.
        As root, a failing user-namespace start falls back to the setuid mode."""
        try:
            self._probe_once()
        except SandboxUnavailable:
            if self.mode != "userns" or os.geteuid() != 0:
                raise
            self.mode = "setuid"
            self._probe_once()

    def _probe_once(self) -> None:
        problem = ""
        try:
            with self.session(Limits(memory_mb=512, cpu_s=30)) as s:
                ready = s.start({"mode": "stdin", "language": "python", "code": "print(6*7)", "time_limit": 10,
                                 "output_limit": 1024}, timeout=30)
                if ready and ready.get("ev") == "ready" and not ready.get("status"):
                    s.send({"op": "case", "i": 0, "input": ""}, timeout=10)
                    res = s.recv(timeout=30)
                    if res and res.get("status") == "ok" and res.get("out") == "42\n":
                        return
                    problem = f"unexpected result {res!r}"
                else:
                    problem = f"unexpected start {ready!r}"
                problem += "; " + s.stderr_tail()
        except (OSError, SessionTimeout, SessionOverflow, SandboxError) as exc:
            problem = str(exc)
        what = "the code sandbox" if self.mode == "unsafe" else f"a bubblewrap sandbox ({self.mode} mode)"
        raise SandboxUnavailable(
            f"cannot start {what}: {problem.strip()[:600]}; check that bubblewrap works here (user namespaces "
            "allowed, or run as root), or pass unsafe_no_sandbox=true to run code without isolation")

    # ---- sessions ------------------------------------------------------------------------------
    def session(self, limits: Limits) -> Session:
        slot = self._free.get()
        try:
            return Session(self, slot, limits)
        except BaseException:
            self._free.put(slot)
            raise

    def slot_uid(self, slot: int) -> int:
        return self._uid_base + slot

    def release(self, slot: int) -> None:
        self._free.put(slot)

    def extra_processes(self) -> int:
        """Processes the uid already has when it is shared with the host (non-root userns mode)."""
        if os.geteuid() == 0:
            return 0
        with self._lock:
            stamp, n = self._own_procs
            if time.monotonic() - stamp > 5:
                n = _processes_of(os.getuid())
                self._own_procs = (time.monotonic(), n)
        return n

    def environment(self, work: str) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def command(self, slot: int) -> tuple[list[str], dict[str, Any]]:
        """(argv, init fields) for a session in `slot`."""
        argv, init = self._command(slot)
        if self.cgroups is not None:
            argv = self.cgroups.join_argv(slot, argv)
        return argv, init

    def _command(self, slot: int) -> tuple[list[str], dict[str, Any]]:
        py = self.runtime.harness_argv()
        if self.mode == "unsafe":
            return py, {}
        # --as-pid-1: the harness is the namespace's init, so programs inside cannot signal it and everything
        # dies when it exits (bwrap's own init would outlive bwrap as an orphan on every run). The parent-death
        # signal never reaches a namespace's init, so the host kills it by the pid --info-fd reports, and the
        # harness exits by itself when the host's end of its pipes goes away.
        known = bwrap_options(self.bwrap)
        args = [self.bwrap, "--die-with-parent", "--new-session", "--as-pid-1", "--info-fd", INFO_FD,
                "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox"]
        if "--unshare-cgroup-try" in known:
            args.append("--unshare-cgroup-try")
        if "--clearenv" in known:  # (older bwrap: the environment Popen gives bwrap is already clean)
            args.append("--clearenv")
        for key, value in self.environment(SANDBOX_WORK).items():
            args += ["--setenv", key, value]
        args += ["--ro-bind", "/usr", "/usr"]
        for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += ["--ro-bind", d, d]
        for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/alternatives"):
            args += ["--ro-bind-try", f, f]
        perms = ["--perms", "0755"] if "--perms" in known else []
        made: set[str] = {"/", "/usr", "/tmp", "/proc", "/dev"}
        for path in self.runtime.binds:
            for parent in reversed(Path(path).parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    args += [*perms, "--dir", str(parent)]
            args += ["--ro-bind", path, path]

        def tmpfs(path: str, mb: int) -> list[str]:
            # --size caps what the program can keep in memory through files (bwrap >= 0.8)
            size = ["--size", str(mb << 20)] if "--size" in known else []
            return [*(["--perms", "1777"] if perms else []), *size, "--tmpfs", path]

        args += ["--proc", "/proc", "--dev", "/dev", *tmpfs(SANDBOX_WORK, self.tmp_mb), *tmpfs("/dev/shm", 8),
                 "--chdir", SANDBOX_WORK]
        init: dict[str, Any] = {"pid_namespace": True, "work_dir": SANDBOX_WORK}
        if self.mode == "userns":
            args += ["--unshare-user"] + (["--disable-userns"] if "--disable-userns" in known else [])
            if os.geteuid() == 0:
                uid = str(self.slot_uid(slot))
                args = [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *args]
        else:  # setuid: root bwrap; the slot uid is taken before the harness starts
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            init["require_unprivileged"] = True
            if self.setpriv:
                # --pdeathsig keep: a uid change clears the parent-death signal, which must survive so
                # that the sandbox dies with bwrap
                uid = str(self.slot_uid(slot))
                py = [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                      "--pdeathsig=keep", "--", *py]
            else:  # the harness drops root itself and re-arms the parent-death signal
                init["uid"] = self.slot_uid(slot)
        return [*args, "--", *py], init


class Session:
    """One sandbox: send JSON messages to the harness, read its answers, kill it on a deadline."""

    def __init__(self, box: Sandbox, slot: int, limits: Limits):
        self.box = box
        self.slot = slot
        self.limits = limits
        self.killed = False
        self._closed = False
        self._buf = bytearray()
        self._err = bytearray()
        self._eof = False
        self.max_line = 64 << 20
        argv, self.init_fields = box.command(slot)
        self.tmp: str | None = None
        cwd = None
        env = {"PATH": "/usr/bin:/bin"}
        if box.mode == "unsafe":
            self.tmp = cwd = tempfile.mkdtemp(prefix="assay-unsafe-")
            env = box.environment(self.tmp)
            self.init_fields = {"pid_namespace": False, "work_dir": self.tmp}
            if os.geteuid() == 0:  # still drop root, so that the process limit is enforced
                uid = box.slot_uid(slot)
                os.chown(self.tmp, uid, uid)
                self.init_fields["uid"] = uid
        self.cgroup = box.cgroups.slots[slot] if box.cgroups is not None else None
        if self.cgroup is not None:
            # the whole sandbox: the program's memory plus its tmpfs files, and the harness's share
            total = (limits.memory_mb + box.tmp_mb + 8 + 128) << 20
            try:
                self.cgroup.limit(total, limits.processes + 16)
            except OSError:
                self.cgroup = None
        self.started = time.monotonic()
        self._info_r: int | None = None
        self.init_pid: int | None = None
        pass_fds: tuple[int, ...] = ()
        if box.mode != "unsafe":
            self._info_r, info_w = os.pipe()
            os.set_blocking(self._info_r, False)
            pass_fds = (info_w,)
            argv = [str(info_w) if a == INFO_FD else a for a in argv]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         cwd=cwd, env=env, start_new_session=True, close_fds=True, bufsize=0,
                                         pass_fds=pass_fds)
        finally:
            for fd in pass_fds:
                os.close(fd)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._in, self._out, self._errfd = (self.proc.stdin.fileno(), self.proc.stdout.fileno(),
                                            self.proc.stderr.fileno())
        for fd in (self._in, self._out, self._errfd):
            os.set_blocking(fd, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self._out, selectors.EVENT_READ)
        self.sel.register(self._errfd, selectors.EVENT_READ)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- protocol ---------------------------------------------------------------------------------
    def start(self, init: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send the init message; return the harness's first answer (None if it died first)."""
        extra = self.box.extra_processes()
        msg = {"op": "init", **init, **self.init_fields, "limits": self.limits.rlimits(extra),
               "sys_path": list(self.box.runtime.sys_path)}
        if not self.send(msg, timeout):
            return None
        return self.recv(timeout)

    def send(self, obj: dict[str, Any], timeout: float) -> bool:
        """Write one message; False when the harness is gone. Raises SessionTimeout."""
        data = memoryview((json.dumps(obj) + "\n").encode("utf-8", "surrogatepass"))
        deadline = time.monotonic() + timeout
        key = self.sel.register(self._in, selectors.EVENT_WRITE)
        try:
            while data:
                try:
                    n = os.write(self._in, data)
                    data = data[n:]
                    continue
                except BlockingIOError:
                    pass
                except (BrokenPipeError, OSError):
                    return False
                self._wait(deadline)
        finally:
            self.sel.unregister(key.fd)
        return True

    def recv(self, timeout: float) -> dict[str, Any] | None:
        """The next message; None at end of stream. Raises SessionTimeout / SessionOverflow."""
        deadline = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                try:
                    return json.loads(line)
                except ValueError:
                    raise SandboxError("the sandbox sent a malformed message") from None
            if len(self._buf) > self.max_line:
                raise SessionOverflow()
            if self._eof:
                return None
            self._wait(deadline)

    def _wait(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SessionTimeout()
        for key, _ in self.sel.select(remaining):
            if key.fd == self._out:
                chunk = self._read(self._out)
                if chunk == b"":
                    self._eof = True
                    self.sel.unregister(self._out)
                elif chunk:
                    self._buf += chunk
            elif key.fd == self._errfd:
                chunk = self._read(self._errfd)
                if chunk == b"":
                    self.sel.unregister(self._errfd)
                elif chunk:
                    self._err = (self._err + chunk)[-TAIL:]

    @staticmethod
    def _read(fd: int) -> bytes | None:
        try:
            return os.read(fd, 1 << 20)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def oom_kills(self) -> int:
        """How many processes the slot's memory cgroup has killed so far (0 without cgroups)."""
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    def stderr_tail(self) -> str:
        return self._err.decode("utf-8", "replace").strip()[-2000:]

    # ---- ending ----------------------------------------------------------------------------------
    def kill(self) -> None:
        """Kill the sandbox and everything in it: its init (the harness) takes the PID namespace along."""
        self.killed = True
        pid = self._init_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            else:  # bwrap collects its child and exits; killing it first would orphan the dead init
                try:
                    self.proc.wait(1.0)
                    return
                except subprocess.TimeoutExpired:
                    pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass

    def _init_pid(self) -> int | None:
        """The host pid of the sandbox's init, from bwrap's --info-fd (None before bwrap wrote it)."""
        if self.init_pid is None and self._info_r is not None:
            try:
                data = os.read(self._info_r, 4096)
            except (BlockingIOError, OSError):
                data = b""
            m = re.search(rb'"child-pid"\s*:\s*(\d+)', data)
            if m:
                self.init_pid = int(m.group(1))
        return self.init_pid

    def exit_status(self, timeout: float = 5.0) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> int | None:
        """End the session: EOF to the harness, wait briefly, kill what is left; free the slot."""
        if self._closed:
            return self.proc.returncode
        self._closed = True
        try:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            self._init_pid()  # read while it is there
            code = self.exit_status(2.0)
            if code is None:
                self.kill()
                code = self.exit_status(10.0)
            if self.box.mode == "unsafe":
                self._reap_unsafe()
            elif self.killed and os.geteuid() == 0:
                # a killed bwrap returns before its namespace is torn down: wait for the slot's uid to be free
                _await_no_processes(self.box.slot_uid(self.slot), 5.0)
            return code
        finally:
            self.sel.close()
            for f in (self.proc.stdout, self.proc.stderr):
                try:
                    f.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            if self.tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
            if self._info_r is not None:
                os.close(self._info_r)
                self._info_r = None
            self.box.release(self.slot)

    def _reap_unsafe(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
