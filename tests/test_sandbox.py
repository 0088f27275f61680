"""The code sandbox contains hostile programs: each attack runs through the real code-verify stage
and the host checks afterwards that nothing escaped (processes, files, connections, secrets)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from assay.errors import AssayError
from assay.stage import StageContext, build_stage
from assay.verify.sandbox import Sandbox, SandboxUnavailable

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox is Linux only")
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make setup)")

REPO = Path(__file__).resolve().parents[1]
LIMITS = {"timeout_s": 1.0, "wall_time_factor": 2.0, "memory_mb": 256, "output_limit_mb": 1.0, "workers": 2,
          "processes": 32}


def _stage(tmp: Path, **params: Any):
    st = build_stage("code-verify", {**LIMITS, **params})
    st.setup(StageContext(cache_dir=tmp))
    return st


@pytest.fixture(scope="module", params=["default-python", "system-python"])
def stage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The stage with the interpreter running the tests (setuid mode as root: /root is private) and with
    /usr/bin/python3 (user-namespace mode: bwrap itself runs as the slot's uid)."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (make setup)")
    params: dict[str, Any] = {}
    if request.param == "system-python":
        if not Path("/usr/bin/python3").exists():
            pytest.skip("no /usr/bin/python3")
        params["python"] = "/usr/bin/python3"
    st = _stage(tmp_path_factory.mktemp("cv-cache"), **params)
    assert st._sandbox.mode in ("setuid", "userns")
    yield st
    st.teardown()


def run(stage, code: str, tests: dict[str, Any], lang: str = "python") -> dict[str, Any]:
    rec = {"id": "attack", "domain": "code", "prompt": "p", "reference": {"tests": tests}}
    resp = {"text": f"```{lang}\n{textwrap.dedent(code)}\n```"}
    return stage.check_batch([(rec, resp)])[0].to_dict()


def stdin_test(output: str, given: str = "") -> dict[str, Any]:
    return {"kind": "stdin", "cases": [{"input": given, "output": output}]}


def uid_processes(uid_from: int, uid_to: int, zombies: bool = True) -> list[psutil.Process]:
    left = []
    for p in psutil.process_iter(["uids", "status"]):
        try:
            if uid_from <= p.info["uids"].real < uid_to and (zombies or p.info["status"] != psutil.STATUS_ZOMBIE):
                left.append(p)
        except (psutil.Error, TypeError):
            pass
    return left


def sandbox_processes(stage) -> list[psutil.Process]:
    """Processes (zombies too: nothing may be left for the host's init to collect) of the stage's sandbox
    uids, and bwrap / setpriv processes under this one."""
    base = stage._sandbox.slot_uid(0)
    me = psutil.Process()
    return uid_processes(base, base + 64) + [c for c in me.children(recursive=True)
                                              if c.name() in ("bwrap", "setpriv", "sh")]


def assert_clean(stage) -> None:
    deadline = time.monotonic() + 3
    while sandbox_processes(stage) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes(stage) == []
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


def test_fork_bomb_is_contained(stage) -> None:
    started = time.monotonic()
    res = run(stage, """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """, stdin_test("x"))
    assert res["code"] in ("time_limit", "runtime_error")
    assert time.monotonic() - started < 30
    assert_clean(stage)


def test_fork_bomb_in_function_test(stage) -> None:
    res = run(stage, """
        import os
        def f(n):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """, {"kind": "function", "fn_name": "f", "cases": [{"args": [1], "expected": 1}]})
    assert res["code"] in ("time_limit", "runtime_error")
    assert_clean(stage)


def test_memory_bomb_is_a_memory_limit(stage) -> None:
    res = run(stage, "x = bytearray(8 << 30)\nprint(len(x))", stdin_test("0"))
    assert res["code"] == "memory_limit", res
    res = run(stage, """
        chunks = []
        while True:
            chunks.append(bytearray(50 << 20))
    """, stdin_test("0"))
    assert res["code"] == "memory_limit", res
    res = run(stage, "def f():\n    return len(bytearray(8 << 30))", {"kind": "function", "fn_name": "f",
                                                                         "cases": [{"args": [], "expected": 1}]})
    assert res["code"] == "memory_limit", res
    assert_clean(stage)


def test_infinite_loop_is_a_time_limit(stage) -> None:
    started = time.monotonic()
    res = run(stage, "while True:\n    pass", stdin_test("1"))
    assert res["code"] == "time_limit"
    assert "time limit" in res["reason"]
    res = run(stage, "import time\ntime.sleep(600)", stdin_test("1"))  # sleeps: the wall-clock limit
    assert res["code"] == "time_limit"
    assert time.monotonic() - started < 40
    assert_clean(stage)


def test_loop_that_swallows_the_timer_is_killed(stage) -> None:
    started = time.monotonic()
    res = run(stage, """
        def f(x):
            while True:
                try:
                    while True:
                        pass
                except BaseException:
                    pass
    """, {"kind": "function", "fn_name": "f", "cases": [{"args": [1], "expected": 1}, {"args": [2], "expected": 2}]})
    assert res["code"] == "time_limit"
    assert res["verdicts"] == "T-"
    assert time.monotonic() - started < 40
    assert_clean(stage)


def test_daemonised_grandchild_dies_with_the_sandbox(stage, tmp_path: Path) -> None:
    res = run(stage, """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for fd in (0, 1, 2):
                    os.close(fd)
                time.sleep(30)
                os._exit(0)
            os._exit(0)
        print(42)
    """, stdin_test("42"))
    assert res["code"] == "accepted"
    assert_clean(stage)


def test_no_writes_outside_the_work_dir(stage, tmp_path: Path) -> None:
    targets = [tmp_path / "pwned", REPO / "pwned-by-sandbox", Path("/usr/pwned-by-sandbox"),
               Path("/tmp/pwned-by-sandbox"), Path.home() / "pwned-by-sandbox"]
    res = run(stage, f"""
        import os
        wrote = []
        for p in {[str(t) for t in targets]!r}:
            try:
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "w") as f:
                    f.write("x")
                wrote.append(p)
            except OSError:
                pass
        with open("scratch.txt", "w") as f:  # the work dir itself is writable
            f.write("fine")
        print("ok")
    """, stdin_test("ok"))
    assert res["code"] == "accepted", res
    for t in targets:
        assert not t.exists(), t


def test_caller_files_and_environment_are_invisible(stage, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("TOPSECRET-FILE")
    monkeypatch.setenv("ASSAY_TEST_SECRET", "TOPSECRET-ENV")
    res = run(stage, f"""
        import glob, os
        seen = []
        if any("ASSAY_TEST_SECRET" in k for k in os.environ):
            seen.append("env")
        for p in glob.glob("/proc/*/environ"):
            try:
                if b"TOPSECRET" in open(p, "rb").read():
                    seen.append(p)
            except OSError:
                pass
        for p in ({str(secret_file)!r}, {str(REPO / "pyproject.toml")!r}, "/etc/shadow", "/etc/passwd"):
            try:
                open(p).read()
                seen.append(p)
            except OSError:
                pass
        # only the read-only site-packages may show (as an otherwise empty path), not the project's files
        visible = os.listdir({str(REPO)!r}) if os.path.isdir({str(REPO)!r}) else []
        if set(visible) - {{".venv"}} or os.path.exists("/home") or os.path.exists({str(REPO / "src")!r}):
            seen.append("tree")
        print(" ".join(seen) or "clean")
    """, stdin_test("clean"))
    assert res["code"] == "accepted", res


def test_no_network_to_the_host(stage) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    try:
        res = run(stage, f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2).send(b"hi")
                print("connected")
            except OSError:
                print("blocked")
        """, stdin_test("blocked"))
        assert res["code"] == "accepted", res
        with pytest.raises(socket.timeout):
            srv.accept()
    finally:
        srv.close()


def test_output_flood_is_an_output_limit(stage) -> None:
    started = time.monotonic()
    res = run(stage, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", stdin_test("x"))
    assert res["code"] == "output_limit", res
    res = run(stage, "import sys\nwhile True:\n    sys.stderr.write('y' * 65536)", stdin_test("x"))
    assert res["code"] in ("time_limit", "runtime_error"), res  # stderr is only ever kept as a short tail
    assert len(json.dumps(res)) < 20_000
    res = run(stage, "def f():\n    return 'z' * (50 << 20)", {"kind": "function", "fn_name": "f",
                                                              "cases": [{"args": [], "expected": "z"}]})
    assert res["code"] in ("output_limit", "memory_limit"), res
    assert time.monotonic() - started < 40
    assert_clean(stage)


def test_killing_the_parent_does_not_reach_the_host(stage) -> None:
    host = os.getpid()
    res = run(stage, f"""
        import os, signal
        for pid in (os.getppid(), 1, {host}):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        print("done")
    """, stdin_test("done"))
    assert res["code"] in ("accepted", "runtime_error")
    res = run(stage, f"""
        import os, signal
        def f():
            for pid in (os.getppid(), 1, {host}):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            os.kill(os.getpid(), signal.SIGKILL)
    """, {"kind": "function", "fn_name": "f", "cases": [{"args": [], "expected": 1}]})
    # the harness is the sandbox's init: signals from inside do not reach it, so f just returns None
    assert res["code"] == "wrong_answer"
    assert psutil.pid_exists(host)
    assert run(stage, "print(input())", stdin_test("7", "7"))["code"] == "accepted"  # still works
    assert_clean(stage)


def test_sandbox_has_no_capabilities_and_runs_unprivileged(stage) -> None:
    res = run(stage, """
        import os
        status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
        caps = int(status["CapEff"], 16) | int(status["CapPrm"], 16)
        print("root" if os.getuid() == 0 or caps else "user", status["NoNewPrivs"].strip())
    """, stdin_test("user 1"))
    assert res["code"] == "accepted", res


def test_processes_together_are_held_to_the_memory_limit(stage) -> None:
    """Each process under its address-space limit, twenty of them far over it together: the sandbox's
    memory cgroup (where the host allows one) kills them and the verdict is memory_limit."""
    if stage._sandbox.cgroups is None:
        pytest.skip("no writable memory cgroup here")
    res = run(stage, """
        import os, time
        kids = []
        for i in range(20):
            pid = os.fork()
            if pid == 0:
                b = bytearray(100 << 20)
                for j in range(0, len(b), 4096):
                    b[j] = 1
                time.sleep(5)
                os._exit(0)
            kids.append(pid)
        for k in kids:
            os.waitpid(k, 0)
        print("done")
    """, stdin_test("done"))
    assert res["code"] == "memory_limit", res
    assert_clean(stage)


CRASH_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from assay.verify.sandbox import Limits, Sandbox
box = Sandbox(slots=1)
s = box.session(Limits(memory_mb=256))
code = ("import time\\ndef f():\\n    while True:\\n        try:\\n            time.sleep(1000)\\n"
        "        except BaseException:\\n            pass\\n")
s.start({"mode": "function", "language": "python", "program": [{"code": code}], "fn_name": "f", "time_limit": 1,
         "output_limit": 1000, "wall_factor": 2}, timeout=60)
s.send({"op": "case", "i": 0, "args": []}, 10)
print(json.dumps({"uid": box.slot_uid(0)}), flush=True)
time.sleep(600)
"""


@needs_bwrap
def test_sandbox_ends_when_the_host_process_is_killed() -> None:
    """assay killed while a program that swallows its time limit sleeps in the sandbox: the sandbox goes too."""
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(REPO / "src")], stdout=subprocess.PIPE,
                            text=True)
    try:
        uid = json.loads(proc.stdout.readline())["uid"]  # type: ignore[union-attr]
        time.sleep(1.0)
        assert uid_processes(uid, uid + 1), "the sandbox should be running"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while uid_processes(uid, uid + 1, zombies=False) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uid_processes(uid, uid + 1, zombies=False) == []


def test_refuses_without_bubblewrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    with pytest.raises(SandboxUnavailable, match="unsafe_no_sandbox"):
        Sandbox()
    st = build_stage("code-verify", dict(LIMITS))
    with pytest.raises(AssayError, match="bubblewrap"):
        st.setup(StageContext(cache_dir=tmp_path))
    unsafe = _stage(tmp_path, unsafe_no_sandbox=True)
    try:
        assert unsafe._sandbox.mode == "unsafe"
        assert run(unsafe, "print(sum(map(int, input().split())))", stdin_test("5", "2 3"))["code"] == "accepted"
    finally:
        unsafe.teardown()


NON_ROOT_SCRIPT = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from assay.verify.sandbox import Sandbox, SandboxUnavailable
from assay.verify.code_run import Judge, JudgeOptions
from assay.verify.code_extract import Candidate
from assay.verify.code_tests import TestPlan
box = Sandbox(python="/usr/bin/python3", slots=1)
try:
    box.probe()
except SandboxUnavailable as exc:
    print(json.dumps({"skip": str(exc)}))
    sys.exit(0)
judge = Judge(box, None, JudgeOptions(processes=16, wall_factor=2.0))
plan = lambda out: TestPlan("stdin", [{"input": "", "output": out}], 1.0, 256)
bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
daemon = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)\nprint(1)\n")
out = {"mode": box.mode, "uid": os.getuid(),
       "bomb": judge.judge(plan("x"), Candidate(bomb, "python", "field"), {}).verdict,
       "daemon": judge.judge(plan("1"), Candidate(daemon, "python", "field"), {}).verdict,
       "env": judge.judge(plan("clean"), Candidate("import os\nprint('leak' if any('SECRET' in k or 'SECRET' in v "
                                                    "for k, v in os.environ.items()) else 'clean')", "python", "field"),
                          {}).verdict}
print(json.dumps(out))
"""


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process as another uid")
def test_unprivileged_caller_gets_user_namespace_sandbox() -> None:
    """As a plain user (no root anywhere), bwrap makes a user namespace; the same attacks stay contained."""
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no /usr/bin/python3")
    proc = subprocess.run(["/usr/bin/python3", "-I", "-c", NON_ROOT_SCRIPT, str(REPO / "src")],
                          capture_output=True, text=True, timeout=300, user=65534, group=65534, extra_groups=[],
                          cwd="/", env={"PATH": "/usr/bin:/bin", "ASSAY_TEST_SECRET": "TOPSECRET"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(out["skip"])
    assert out["mode"] == "userns" and out["uid"] == 65534
    assert out["bomb"] in ("time_limit", "runtime_error")
    assert out["daemon"] == "accepted"
    assert out["env"] == "accepted"
    deadline = time.monotonic() + 3
    while True:
        leftover = [p for p in psutil.process_iter(["uids", "status"]) if p.info["uids"]
                    and p.info["uids"].real == 65534 and p.info["status"] != psutil.STATUS_ZOMBIE]
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert leftover == []


RIGGED = {
    "always_equal": """
        class T:
            def __eq__(self, other): return True
            def __sub__(self, other): return 0
        def add(a, b): return T()
    """,
    "int_subclass": """
        class T(int):
            def __eq__(self, other): return True
            __hash__ = int.__hash__
        def add(a, b): return T(0)
    """,
    "borrowed_method": """
        class T:
            __eq__ = object.__reduce_ex__  # returns a (truthy) tuple for an int argument
        def add(a, b): return T()
    """,
    "inside_a_list": """
        class T:
            def __eq__(self, other): return True
        def add(a, b): return [T()]
    """,
    "unbinds_its_guard": """
        class T:
            def __eq__(self, other): return True
        def cheat(a, b): return T()
        def add(a, b):
            globals()["add"] = cheat
            return a + b
    """,
}


@needs_bwrap
@pytest.mark.parametrize("style", ["mbpp", "humaneval"])
def test_objects_that_rig_comparisons_fail_assert_tests(stage, style: str) -> None:
    code = ("assert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(0, 0) == 0\n" if style == "mbpp" else
            "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert abs(candidate(2, 2) - 4) < 1e-9\n")
    tests = {"kind": "assert", "code": code, "entry_point": "add"}
    for name, program in RIGGED.items():
        res = run(stage, program, tests)
        if name == "unbinds_its_guard" and style == "humaneval":
            assert res["code"] == "accepted", res  # check() holds the first, honest function
            continue
        assert res["code"] == "wrong_answer", (name, res)
        if name != "unbinds_its_guard":
            assert "a comparison it controls proves nothing" in res["first_failure"]["error"], (name, res)
    # honest programs that return library objects, their own plain classes or recurse are unaffected
    honest = {
        "fraction": "from fractions import Fraction\ndef add(a, b): return Fraction(a) + b",
        "own_class": "class Node:\n    def __init__(self, v): self.v = v\ndef add(a, b): return Node(a).v + b",
        "recursion": "def add(a, b): return a if b == 0 else (add(a, b - 1) + 1 if b > 0 else add(a, b + 1) - 1)",
    }
    for name, program in honest.items():
        assert run(stage, program, tests)["code"] == "accepted", name
