"""The in-sandbox half of code-verify: runs one candidate program against test cases, one at a time.

It runs inside the sandbox as `python -I -S` (the host passes it precompiled), so it uses only
cheap built-in modules (no json, traceback or signal imports at start-up: they double its start
time). The host writes JSON lines on fd 0: first `init` (program, test kind, limits, the uid to drop
to), then one `case` per test; the harness answers JSON lines on fd 1: `ready`, then one `result`
per case. Expected outputs of stdin and function tests never enter the sandbox: the host compares.

- stdin tests: a fork server. Each case runs in a fresh child forked from this process (Python:
  the compiled program runs as `__main__`; C++: the binary is exec'd), with the case input on
  fd 0 and its own CPU limit; when the case ends, every process it started is killed.
- function / assert tests: the program is loaded once and the cases run in this process, each
  interrupted by a timer at the time limit (the host kills the whole sandbox if that fails).

Time limits are CPU time (user + system), as online judges count them, so that a busy machine does
not turn right answers into timeouts; a wall-clock limit of `wall_factor` times as much catches
programs that sleep or block.
- compile: runs the C++ compiler on the source and sends the binary back.
"""

import _signal
import builtins
import io
import os
import resource
import select
import sys
import time

PRIVATE = ".assay"  # harness files inside the work dir, kept between cases
TAIL = 4096  # bytes of stderr kept per case
REPR = 2000  # characters of a value's repr sent back
SIGKILL = 9

PRELUDE = """\
import sys, os, io, math, cmath, re, string, heapq, bisect, itertools, functools, collections, operator, copy
import random, decimal, fractions, statistics, typing
from typing import *
from collections import *
from itertools import *
from functools import *
from heapq import *
from bisect import *
from math import (inf, nan, pi, e, sqrt, isqrt, ceil, floor, gcd, lcm, log, log2, log10, exp, factorial, comb,
                  perm, prod, fsum, hypot, sin, cos, tan, asin, acos, atan, atan2, isclose, isinf, isnan, trunc)
from fractions import Fraction
from decimal import Decimal
"""

_keep = []  # replaced stdio objects: dropping them would close fds 0-2


# ---- JSON through the C accelerator (importing `json` costs more than the rest of start-up) ----


def _make_codec():
    try:
        import _json

        class _Ctx:
            strict = False
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = float
            memo = None  # the C scanner keeps its own

        scan = _json.make_scanner(_Ctx())

        def loads(text):
            return scan(text, 0)[0]

        def dumps(obj, default=repr):
            enc = _json.make_encoder({}, default, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
            return "".join(enc(obj, 0))

        dumps({"probe": [1, 2.5, "x"]})
        return loads, dumps
    except Exception:  # another interpreter: the plain module
        import json

        return json.loads, lambda obj, default=repr: json.dumps(obj, default=default, ensure_ascii=True)


loads, dumps = _make_codec()


class TimeLimit(BaseException):
    """Raised by the CPU or wall timer inside the candidate's code (`except Exception` does not catch it)."""


def _on_alarm(signum, frame):
    raise TimeLimit()


class Harness:
    def __init__(self):
        # The control and event channels move to fds the candidate does not expect; 0 and 1 become /dev/null.
        self.ctrl = open(os.dup(0), "rb")
        self.events = os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        self.init = {}
        self.work = "/tmp"
        self.wall_factor = 5.0
        self.kill_all = False
        self.ns = None
        self.units = []
        self.units_done = 0
        self.unit_error = None
        self.test_lines = []

    # ---- channel -------------------------------------------------------------------------
    def read(self):
        line = self.ctrl.readline()
        return loads(line.decode("utf-8", "surrogatepass")) if line.strip() else None

    def emit(self, obj):
        view = memoryview((dumps(obj) + "\n").encode("ascii"))
        while view:
            view = view[os.write(self.events, view):]

    # ---- set-up --------------------------------------------------------------------------
    def start(self):
        init = self.read()
        if not init or init.get("op") != "init":
            raise RuntimeError("the first message must be init")
        self.init = init
        uid = init.get("uid")
        if uid is not None and os.getuid() == 0:
            drop_privileges(int(uid))
        if init.get("require_unprivileged") and (os.getuid() == 0 or os.geteuid() == 0):
            raise RuntimeError("refusing to run candidate code as root")
        # kill(-1) reaches every process of this uid in the sandbox's own PID namespace: only there, never as root.
        self.kill_all = bool(init.get("pid_namespace")) and os.getuid() != 0
        set_limits(init["limits"])
        self.work = init["work_dir"]
        if os.getpid() == 1:
            self.watch_host()
        sys.path.extend(init.get("sys_path") or ())
        sys.dont_write_bytecode = True
        os.makedirs(os.path.join(self.work, PRIVATE), mode=0o700, exist_ok=True)
        os.chdir(self.work)
        self.wall_factor = float(init.get("wall_factor") or 5.0)
        _signal.signal(_signal.SIGALRM, _on_alarm)
        _signal.signal(_signal.SIGPROF, _on_alarm)
        try:  # exit() / quit(), which -S leaves out
            import _sitebuiltins

            builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
            builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
        except Exception:
            pass

    def watch_host(self):
        """As the namespace's init nothing from outside stops this process but a kill by pid; if the host
        goes away (its ends of the pipes close), end everything instead of running on unattended."""
        import _thread

        ctrl, events = self.ctrl.fileno(), self.events

        def watch():
            poll = select.poll()
            poll.register(ctrl, select.POLLHUP | select.POLLERR)
            poll.register(events, select.POLLERR | select.POLLHUP)
            while True:
                for _fd, ev in poll.poll():
                    if ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                        os._exit(99)

        _thread.start_new_thread(watch, ())

    def run(self):
        self.start()
        mode = self.init["mode"]
        if mode == "compile":
            self.emit(self.compile())
            return
        self.emit(self.prepare())
        while True:
            msg = self.read()
            if msg is None:
                break
            if mode == "stdin":
                res = self.stdin_case(msg)
            elif mode == "function":
                res = self.function_case(msg)
            else:
                res = self.assert_case(msg)
            res["i"] = msg["i"]
            self.emit(res)

    def prepare(self):
        """Compile or load the program; `ready` with a status when it cannot run at all."""
        init = self.init
        if init["mode"] != "stdin":
            return self.load_module()
        if init["language"] == "cpp":
            import binascii

            path = os.path.join(self.work, PRIVATE, "prog")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
            with open(fd, "wb") as f:
                f.write(binascii.a2b_base64(init["binary"]))
            self.target = path
            return {"ev": "ready"}
        try:
            self.code = compile(init["code"], "main.py", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            return {"ev": "ready", "status": "compile_error", "error": _exc_line(exc)}
        return {"ev": "ready"}

    # ---- stdin tests: fork server ----------------------------------------------------------
    def stdin_case(self, msg):
        data = msg["input"].encode("utf-8", "surrogateescape")
        limit = float(msg.get("time_limit") or self.init["time_limit"])
        child = self.child_python if self.init["language"] == "python" else self.child_exec
        res = self.run_child(data, limit, int(self.init["output_limit"]), child)
        self.clean_work()
        return res

    def run_child(self, data, limit, out_cap, child):
        in_fd = _input_fd(data, os.path.join(self.work, PRIVATE))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        cpu = max(1, int(limit + 0.999))  # RLIMIT_CPU counts whole seconds; the exact check is below
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            status = 70
            try:
                if self.kill_all:
                    os.setsid()
                else:
                    os.setpgid(0, 0)
                os.dup2(in_fd, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.closerange(3, 65536)
                resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
                _signal.signal(_signal.SIGALRM, _signal.SIG_DFL)
                _signal.signal(_signal.SIGPROF, _signal.SIG_DFL)
                status = child()
            except BaseException:
                status = 70
            os._exit(status)
        for fd in (in_fd, out_w, err_w):
            os.close(fd)
        out, err = bytearray(), bytearray()
        verdict = None
        deadline = start + limit * self.wall_factor
        poll = select.poll()
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
            poll.register(fd, select.POLLIN)
        pidfd = _pidfd(pid)
        if pidfd is not None:
            poll.register(pidfd, select.POLLIN)
        status = usage = None
        try:
            while status is None:
                now = time.monotonic()
                if now >= deadline:
                    verdict = "timeout"
                    break
                wait = deadline - now if pidfd is not None else min(deadline - now, 0.005)
                for fd, _ in poll.poll(max(1, int(wait * 1000) + 1)):
                    if fd == pidfd:
                        continue
                    chunk = _read(fd)
                    if chunk is None:
                        continue
                    if not chunk:
                        poll.unregister(fd)
                    elif fd == out_r:
                        out += chunk
                    else:
                        err = (err + chunk)[-TAIL:]
                if len(out) > out_cap:
                    verdict = "output"
                    break
                got, st, ru = os.wait4(pid, os.WNOHANG)
                if got:
                    status, usage = st, ru
        finally:
            if status is None:
                _kill(pid)
                _, status, usage = os.wait4(pid, 0)
            self.kill_rest(pid)
            out += _drain(out_r, out_cap + 1 - len(out))
            err = (err + _drain(err_r, TAIL))[-TAIL:]
            for fd in (out_r, err_r) + ((pidfd,) if pidfd is not None else ()):
                os.close(fd)
        wall = time.monotonic() - start
        cpu_used = usage.ru_utime + usage.ru_stime if usage else None
        if verdict is None and len(out) > out_cap:
            verdict = "output"
        code = os.waitstatus_to_exitcode(status)
        if verdict is None and cpu_used is not None and cpu_used > limit:
            verdict = "timeout"
        if verdict is None:
            verdict = classify(code, bytes(err), cpu_used, cpu)
        res = {"status": verdict, "out": _text(bytes(out[:out_cap])), "err": _text(bytes(err)),
               "exit": code, "time": round(wall, 4), "cpu": round(cpu_used, 4) if cpu_used is not None else None}
        if verdict == "timeout":
            res["limit"] = limit
            if cpu_used is not None and cpu_used <= limit:
                res["wall"] = True  # it slept or blocked
        return res

    def kill_rest(self, pid):
        """Kill whatever the case started (daemons included) before the next one runs."""
        try:
            if self.kill_all:
                os.kill(-1, SIGKILL)
            else:
                os.killpg(pid, SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if os.getpid() == 1:
            _reap_orphans()

    def child_python(self):
        _fresh_stdio()
        main = type(sys)("__main__")
        main.__dict__["__builtins__"] = builtins
        main.__dict__["__file__"] = os.path.join(self.work, "main.py")
        sys.modules["__main__"] = main
        sys.argv = ["main.py"]
        try:
            exec(self.code, main.__dict__)
            status = 0
        except SystemExit as exc:
            status = _exit_status(exc)
        except BaseException:
            import traceback

            traceback.print_exc()
            status = 1
        return _finish(status)

    def child_exec(self):
        for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):  # Python ignores these; a fresh program must not
            _signal.signal(sig, _signal.SIG_DFL)
        os.execv(self.target, [self.target])
        return 127

    def clean_work(self):
        try:
            entries = [e for e in os.scandir(self.work) if e.name != PRIVATE]
        except OSError:
            return
        if entries:
            import shutil

            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        shutil.rmtree(e.path, ignore_errors=True)
                    else:
                        os.unlink(e.path)
                except OSError:
                    pass

    # ---- compile (C++) ---------------------------------------------------------------------
    def compile(self):
        import binascii

        init = self.init
        private = os.path.join(self.work, PRIVATE)
        src = os.path.join(private, "main.cpp")
        out = os.path.join(private, "prog")
        with open(src, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(init["source"])
        argv = [init["cxx"], *init["flags"], "-o", out, src]

        def run():
            os.chdir(private)
            for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
                _signal.signal(sig, _signal.SIG_DFL)
            os.execv(argv[0], argv)
            return 127

        res = self.run_child(b"", float(init["time_limit"]), 1 << 20, run)
        log = ((res.get("err") or "") + (res.get("out") or "")).replace(private + "/", "")
        if res["status"] != "ok" or not os.path.exists(out):
            return {"ev": "compiled", "ok": False, "status": res["status"], "log": log[-TAIL:]}
        with open(out, "rb") as f:
            binary = f.read()
        return {"ev": "compiled", "ok": True, "binary": binascii.b2a_base64(binary, newline=False).decode("ascii"),
                "log": log[-TAIL:]}

    # ---- function and assert tests: in this process -----------------------------------------
    def load_module(self):
        init = self.init
        _quiet_stdio()
        mod = type(sys)("solution")
        ns = mod.__dict__
        ns["__builtins__"] = builtins
        ns["__file__"] = os.path.join(self.work, "solution.py")
        sys.modules["solution"] = mod
        sys.argv = ["solution.py"]
        if init.get("prelude"):
            exec(compile(PRELUDE, "<prelude>", "exec", dont_inherit=True), ns)
        codes = []
        for part in init["program"]:  # [{"code": str, "optional": bool}]
            try:
                codes.append((compile(part["code"], "solution.py", "exec", dont_inherit=True), part))
            except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
                if part.get("optional"):
                    continue
                return {"ev": "ready", "status": "compile_error", "error": _exc_line(exc)}
        limit = float(init["time_limit"])
        for code, part in codes:
            res = self.guarded(lambda code=code: exec(code, ns), limit)
            if res is not None and not part.get("optional"):
                res.pop("test_line", None)
                res["ev"] = "ready"
                res["error"] = "while loading the program: " + res.get("error", res["status"])
                return res
        self.ns = ns
        if init["mode"] == "assert":
            self.test_lines = init.get("test_code", "").splitlines()
            self.units = init["units"]
            self.guards = {}
        return {"ev": "ready"}

    def guarded(self, fn, limit):
        """Run fn under the time limit; None when it returned, else a result describing the failure."""
        cpu0 = time.process_time()
        try:
            _signal.setitimer(_signal.ITIMER_PROF, max(limit, 0.001))
            _signal.setitimer(_signal.ITIMER_REAL, max(limit * self.wall_factor, 0.001))
            try:
                fn()
            finally:
                _signal.setitimer(_signal.ITIMER_REAL, 0)
                _signal.setitimer(_signal.ITIMER_PROF, 0)
        except TimeLimit:
            used = time.process_time() - cpu0
            return {"status": "timeout", "limit": limit, "cpu": round(used, 4), "wall": used < limit}
        except MemoryError:
            return {"status": "memory", "error": "MemoryError"}
        except SystemExit as exc:
            return {"status": "error", "error": f"SystemExit: {exc.code!r} (the program called exit())"}
        except BaseException as exc:
            test_line, program_line = _where(exc)
            error = _exc_line(exc) + (f" (solution.py line {program_line})" if program_line else "")
            return {"status": "error", "error": error, "test_line": test_line}
        if time.process_time() - cpu0 > limit:
            return {"status": "timeout", "limit": limit, "cpu": round(time.process_time() - cpu0, 4)}
        return None

    def function_case(self, msg):
        init = self.init
        limit = float(msg.get("time_limit") or init["time_limit"])
        box = {}

        def call():
            fn = self.resolve(init["fn_name"], init.get("class_name"))
            box["value"] = encode_value(fn(*msg["args"]), int(init["output_limit"]))

        start = time.monotonic()
        res = self.guarded(call, limit)
        elapsed = round(time.monotonic() - start, 4)
        if res is not None:
            res.pop("test_line", None)
            res["time"] = elapsed
            return res
        if box["value"] is None:
            return {"status": "output", "time": elapsed}
        return {"status": "ok", "value": box["value"], "time": elapsed}

    def resolve(self, fn_name, class_name):
        ns = self.ns
        if class_name:
            cls = ns.get(class_name)
            if isinstance(cls, type):
                return getattr(cls(), fn_name)
            if not callable(ns.get(fn_name)):  # a plain function of that name will do
                raise NameError(f"class {class_name} is not defined")
        fn = ns.get(fn_name)
        if fn is None:
            cls = ns.get("Solution")
            if isinstance(cls, type) and hasattr(cls, fn_name):
                return getattr(cls(), fn_name)
            raise NameError(f"function {fn_name} is not defined")
        return fn

    def assert_case(self, msg):
        """Run the test units up to case msg['unit'] (the set-up statements before it run first)."""
        limit = float(msg.get("time_limit") or self.init["time_limit"])
        target = int(msg["unit"])
        start = time.monotonic()
        guard_program(self.ns, self.guards)  # again: a program may unbind its guard while a test runs
        while self.units_done < target and self.unit_error is None:
            unit = self.units[self.units_done]
            self.units_done += 1
            if unit.get("case"):  # an earlier test, skipped when a restarted sandbox catches up
                continue
            res = self.guarded(lambda unit=unit: exec(_compile(unit, "code", "exec"), self.ns), limit)
            if res is not None:
                res.pop("test_line", None)
                res["error"] = "in the test set-up: " + res.get("error", res["status"])
                res["line"] = unit["code"].strip().split("\n")[0][:REPR]
                self.unit_error = res
        if self.unit_error is not None:
            return dict(self.unit_error, time=round(time.monotonic() - start, 4))
        unit = self.units[target]
        self.units_done = target + 1
        box = {}
        res = self.guarded(lambda: box.update(run_assert(unit, self.ns)), limit)
        elapsed = round(time.monotonic() - start, 4)
        line = unit["code"].strip()[:REPR]
        if res is not None:
            test_line = res.pop("test_line", None)
            if test_line and 0 < test_line <= len(self.test_lines):
                line = self.test_lines[test_line - 1].strip()[:REPR]
            res.update(time=elapsed, line=line)
            if res["status"] == "error" and res.get("error", "").startswith("AssertionError"):
                res["status"] = "fail"
            return res
        if box.get("ok"):
            return {"status": "ok", "time": elapsed}
        return {"status": "fail", "time": elapsed, "line": line, "got": box.get("got"), "expected": box.get("expected")}


# ---- values the program hands to assert tests ---------------------------------------------------
# Assert tests compare inside the sandbox, so a program could return an object whose `__eq__` (or
# `__bool__`, `__sub__`, ...) always agrees. The program's functions are wrapped: a value returned
# to test code is checked (never changed) for classes whose comparison, truth or arithmetic methods
# are the program's own code, and such a value fails the test. Function and stdin tests need none of
# this: their values are compared on the host.

_FUNCTION = type(lambda: None)
_METHOD_KINDS = (staticmethod, classmethod)
_HEAPTYPE = 1 << 9  # classes made at run time (Python classes); built-in static types are trusted
_RIGGABLE = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__abs__",
             "__sub__", "__rsub__", "__add__", "__radd__", "__float__", "__int__", "__index__", "__round__",
             "__contains__", "__getattribute__", "__getattr__")
_PLAIN = frozenset((bool, int, float, complex, str, bytes, type(None)))
_MAX_VISIT = 200_000


def _program_code(code):
    name = code.co_filename
    return name == "solution.py" or name.startswith("<")


def rigged_method(cls):
    """The first comparison / truth / arithmetic method that the program's own code gives cls (or that
    it borrowed from another class), else None."""
    for klass in cls.__mro__[:-1]:
        if not klass.__flags__ & _HEAPTYPE:
            continue
        attrs = klass.__dict__
        for name in _RIGGABLE:
            if name not in attrs or attrs[name] is None:
                continue
            f = attrs[name]
            if type(f) is _FUNCTION and not _program_code(f.__code__):
                continue  # a library class written in Python (fractions.Fraction, ...)
            if getattr(f, "__objclass__", None) is klass:
                continue  # the class's own C implementation
            return f"{klass.__name__}.{name}"
    return None


def check_value(value):
    """Raise AssertionError when value, or anything inside it, is of a rigged class."""
    stack, seen, visits = [value], set(), 0
    while stack and visits < _MAX_VISIT:
        v = stack.pop()
        visits += 1
        t = type(v)
        if t in _PLAIN:
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        method = rigged_method(t)
        if method is not None:
            raise AssertionError(f"the program returned a {t.__name__} object with its own {method.split('.')[-1]}"
                                 f" ({method}): a comparison it controls proves nothing")
        if isinstance(v, (list, tuple, set, frozenset)):  # the storage, not an overridden __iter__
            base = list if isinstance(v, list) else tuple if isinstance(v, tuple) else set \
                if isinstance(v, set) else frozenset
            stack.extend(base.__iter__(v))
        elif isinstance(v, dict):
            for k, x in dict.items(v):
                stack.append(k)
                stack.append(x)
        else:
            try:
                attrs = object.__getattribute__(v, "__dict__")
            except (AttributeError, TypeError):
                continue
            if type(attrs) is dict:
                stack.extend(dict.values(attrs))


def _guarded(fn):
    def guarded(*args, **kwargs):
        value = fn(*args, **kwargs)
        if sys._getframe(1).f_code.co_filename == "tests.py":  # the program's own calls go unchecked
            check_value(value)
        return value

    guarded.__name__ = getattr(fn, "__name__", "function")
    guarded.__qualname__ = getattr(fn, "__qualname__", guarded.__name__)
    guarded.__doc__ = getattr(fn, "__doc__", None)
    guarded._assay_original = fn
    return guarded


def _is_program_function(f):
    return type(f) is _FUNCTION and f.__code__.co_filename == "solution.py"


def guard_program(ns, guards):
    """Wrap the program's functions and its classes' methods (guards: id of a wrapper -> original)."""
    for name, v in list(ns.items()):
        if _is_program_function(v):
            ns[name] = _guarded(v)
        elif isinstance(v, type) and v.__flags__ & _HEAPTYPE and id(v) not in guards:
            guards[id(v)] = v
            for attr, m in list(v.__dict__.items()):
                if attr.startswith("__"):
                    continue
                if _is_program_function(m):
                    setattr(v, attr, _guarded(m))
                elif isinstance(m, _METHOD_KINDS) and _is_program_function(m.__func__):
                    setattr(v, attr, type(m)(_guarded(m.__func__)))


# ---- helpers ---------------------------------------------------------------------------------


def drop_privileges(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    try:  # a uid change clears the parent-death signal: re-arm it so that the sandbox dies with bwrap
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    for key in ("CapEff", "CapPrm", "CapAmb"):
        if int(status.get(key, "0").strip() or "0", 16):
            raise RuntimeError(f"capabilities left after dropping to uid {uid}: {key}")
    if os.getuid() != uid or os.geteuid() != uid:
        raise RuntimeError("could not drop privileges")


def set_limits(limits):
    table = {"as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE,
             "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE, "stack": resource.RLIMIT_STACK,
             "cpu": resource.RLIMIT_CPU}
    for key, res in table.items():
        if limits.get(key) is None:
            continue
        value = int(limits[key])
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, value))


def _input_fd(data, scratch):
    """A file descriptor that reads `data` from its start (a memfd: no disk, no writer to keep alive)."""
    try:
        fd = os.memfd_create("stdin", 0)
    except (AttributeError, OSError):
        path = os.path.join(scratch, "stdin")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.unlink(path)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _pidfd(pid):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _read(fd):
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _drain(fd, cap):
    """What is left in a pipe once its writers are dead (stops at EOF, at cap, or after 1 s)."""
    buf = bytearray()
    deadline = time.monotonic() + 1.0
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    while len(buf) <= cap and time.monotonic() < deadline:
        if not poll.poll(50):
            continue
        chunk = _read(fd)
        if chunk is None:
            continue
        if not chunk:
            break
        buf += chunk
    return bytes(buf[: max(cap, 0)])


def _reap_orphans():
    """As the namespace's init, collect what was killed (zombies count against the process limits)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.001)


def _kill(pid):
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass


def classify(code, err, cpu_used, cpu_limit):
    if code == 0:
        return "ok"
    if code == -_signal.SIGXCPU or (code == -SIGKILL and cpu_used is not None and cpu_used >= cpu_limit):
        return "timeout"
    tail = err[-600:]
    if b"MemoryError" in tail or b"bad_alloc" in tail or b"Cannot allocate memory" in tail:
        return "memory"
    return "error"


def _text(data):
    return data.decode("utf-8", "replace")


def _exc_line(exc):
    try:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception:
        text = type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.lineno:
        text = f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    return text[:REPR]


def _where(exc):
    """Line numbers of the innermost frames of the test code and of the program that raised exc."""
    test_line = program_line = None
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name == "tests.py":
            test_line = tb.tb_lineno
        elif name == "solution.py":
            program_line = tb.tb_lineno
        tb = tb.tb_next
    return test_line, program_line


def _exit_status(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def _finish(status):
    """What the interpreter does at exit: join threads, run atexit, flush stdout."""
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            status = status or 120
    return status


def _fresh_stdio():
    """Standard streams as a fresh interpreter sets them up for pipes (fds 0-2 are already in place)."""
    _keep.extend((sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__))
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                                 encoding="utf-8", errors="strict", newline="\n")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                                   encoding="utf-8", errors="strict", newline="\n")
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                                   encoding="utf-8", errors="backslashreplace", newline="\n",
                                                   line_buffering=True)


class _Sink(io.TextIOBase):
    """stdout for in-process tests: the program may print; the text goes nowhere."""

    def writable(self):
        return True

    def write(self, s):
        return len(s)


def _quiet_stdio():
    _keep.extend((sys.stdin, sys.stdout))
    sys.stdin = io.StringIO("")
    sys.stdout = _Sink()


def _short_repr(obj):
    try:
        text = repr(obj)
    except Exception:
        return "<unprintable>"
    return text if len(text) <= REPR else text[:REPR] + "..."


def _tag(obj):
    return {"__py__": type(obj).__name__, "repr": _short_repr(obj)}


def encode_value(value, cap):
    """A return value as JSON text for the host (tuples become lists; other objects a tagged repr);
    None when it is larger than cap."""
    try:
        text = dumps(value, _tag)
    except (TypeError, ValueError, RecursionError, OverflowError):  # odd dict keys, cycles, huge ints
        text = dumps(_tag(value))
    return None if len(text) > cap else {"json": text}


def _compile(unit, key, mode):
    return compile("\n" * (unit["line"] - 1) + unit[key], "tests.py", mode, dont_inherit=True)


def run_assert(unit, ns):
    """Run one test statement. The host splits `assert a == b` into its sides so that a failure shows both."""
    if unit.get("left") is not None:
        left = eval(_compile(unit, "left", "eval"), ns)
        right = eval(_compile(unit, "right", "eval"), ns)
        if left == right:
            return {"ok": True}
        return {"ok": False, "got": _short_repr(left), "expected": _short_repr(right)}
    exec(_compile(unit, "code", "exec"), ns)
    return {"ok": True}


def main():
    harness = Harness()
    try:
        harness.run()
    except BaseException as exc:  # a harness failure (not the candidate's): the host reports sandbox_error
        try:
            import traceback

            harness.emit({"ev": "fatal", "error": "".join(traceback.format_exception(exc))[-TAIL:]})
        except BaseException:
            pass
        os._exit(3)
    os._exit(0)


if __name__ == "__main__":
    main()
