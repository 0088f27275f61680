"""Judging one candidate: run its tests in sandbox sessions, compare, and sum up a verdict.

One session serves all the tests of a candidate; the host sends one case at a time, so it can stop
at the first failure and keeps a deadline on each. When a case runs over (or the program kills the
harness), the sandbox is killed and, if all tests were asked for, a fresh one goes on from the
next case.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from assay.verify.code_compare import first_difference, return_value_matches, tokens_equal
from assay.verify.code_compile import CxxCompiler
from assay.verify.code_extract import Candidate
from assay.verify.code_tests import TestPlan, program_parts
from assay.verify.sandbox import Limits, Sandbox, SandboxError, Session, SessionOverflow, SessionTimeout

VERDICTS = ("accepted", "wrong_answer", "time_limit", "runtime_error", "memory_limit", "output_limit",
            "compile_error", "no_code", "no_tests", "sandbox_error")
LETTER = {"accepted": "A", "wrong_answer": "W", "time_limit": "T", "runtime_error": "R", "memory_limit": "M",
          "output_limit": "O", "compile_error": "C", "sandbox_error": "S"}
STATUS = {"timeout": "time_limit", "memory": "memory_limit", "output": "output_limit", "error": "runtime_error",
          "fail": "wrong_answer", "compile_error": "compile_error"}
SHOW = 1000  # characters of input / expected / got kept in the first failure
STARTUP_S = 20.0  # allowance for starting a sandbox on a busy machine
OOM = "its processes together ran over the memory limit (killed by the sandbox's memory cgroup)"


@dataclass
class JudgeOptions:
    tolerance: float = 1e-6
    stop_at_first_failure: bool = True
    max_total_s: float = 120.0
    output_limit: int = 8 << 20
    processes: int = 64
    prelude: bool = True
    wall_factor: float = 5.0  # wall-clock limit = this x the CPU time limit


@dataclass
class CaseResult:
    verdict: str
    time: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Judgement:
    verdict: str
    tests: int = 0
    results: list[CaseResult | None] = field(default_factory=list)
    reason: str = ""
    language: str | None = None
    seconds: float = 0.0
    sandboxes: int = 0
    failure: dict[str, Any] | None = None

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r is not None and r.verdict == "accepted")

    @property
    def score(self) -> float:
        return self.passed / self.tests if self.tests else 0.0

    def letters(self) -> str:
        return "".join(LETTER.get(r.verdict, "?") if r else "-" for r in self.results)


class Judge:
    def __init__(self, sandbox: Sandbox, compiler: CxxCompiler | None, options: JudgeOptions):
        self.sandbox = sandbox
        self.compiler = compiler
        self.opts = options

    def judge(self, plan: TestPlan, cand: Candidate, record: dict[str, Any]) -> Judgement:
        started = time.monotonic()
        out = Judgement("accepted", tests=len(plan.cases), results=[None] * len(plan.cases), language=cand.language)
        try:
            init = self._init(plan, cand, record, out)
            if init is not None:
                self._run(plan, init, out, started + self.opts.max_total_s)
        except SandboxError as exc:
            out.verdict, out.reason = "sandbox_error", str(exc)
        out.seconds = round(time.monotonic() - started, 4)
        if not out.reason:
            out.reason = self._reason(plan, out)
        return out

    # ---- set-up ----------------------------------------------------------------------------------
    def _init(self, plan: TestPlan, cand: Candidate, record: dict[str, Any], out: Judgement) -> dict[str, Any] | None:
        init: dict[str, Any] = {"mode": plan.kind, "language": cand.language, "time_limit": plan.time_limit,
                                "output_limit": self._output_limit(plan), "wall_factor": self.opts.wall_factor}
        if cand.language == "cpp":
            if plan.kind != "stdin":
                out.verdict = "no_code"
                out.reason = f"C++ code can only be judged on stdin/stdout tests (these are {plan.kind} tests)"
                return None
            if self.compiler is None:
                out.verdict, out.reason = "sandbox_error", "C++ is not enabled"
                return None
            compiled = self.compiler.compile(cand.code)
            if not compiled.ok:
                out.verdict = compiled.status
                out.reason = f"compile error: {_first_error(compiled.log)}" if compiled.status == "compile_error" \
                    else compiled.log
                out.failure = {"error": compiled.log[-SHOW:]}
                return None
            init["binary"] = compiled.binary_b64
            return init
        if plan.kind == "stdin":
            init["code"] = cand.code
            return init
        init["program"] = program_parts(cand.code, record, plan.kind)
        init["prelude"] = self.opts.prelude and plan.kind == "function"
        if plan.kind == "function":
            init["fn_name"], init["class_name"] = plan.fn_name, plan.class_name
        else:
            init["units"], init["test_code"] = plan.units, plan.test_code
        return init

    def _output_limit(self, plan: TestPlan) -> int:
        """The output cap, raised for tests whose expected output is itself larger."""
        if plan.kind != "stdin":
            return self.opts.output_limit
        biggest = max((len(c.get("output", "")) for c in plan.cases), default=0)
        return max(self.opts.output_limit, 2 * biggest + 4096)

    def _limits(self, plan: TestPlan) -> Limits:
        remaining = plan.time_limit * (len(plan.cases) + 1)
        cpu = int(min(remaining, self.opts.max_total_s) + plan.time_limit + 5)  # a backstop for the whole session
        biggest = max((len(c.get("input", "")) for c in plan.cases), default=0) if plan.kind == "stdin" else 0
        return Limits(memory_mb=plan.memory_mb, processes=self.opts.processes, cpu_s=cpu,
                      file_mb=max(64, (2 * biggest >> 20) + 1))

    # ---- the loop --------------------------------------------------------------------------------
    def _run(self, plan: TestPlan, init: dict[str, Any], out: Judgement, budget_end: float) -> None:
        n, i = len(plan.cases), 0
        wall = plan.time_limit * self.opts.wall_factor
        grace = 2.0 + 0.5 * wall
        while i < n:
            if time.monotonic() > budget_end:
                break
            with self.sandbox.session(self._limits(plan)) as s:
                s.max_line = 8 * self._output_limit(plan) + (1 << 20)  # an output as escaped JSON
                out.sandboxes += 1
                oom = s.oom_kills()
                try:
                    ready = s.start(init, timeout=STARTUP_S + wall + grace)
                except SessionTimeout:
                    s.kill()
                    self._fail_rest(out, i, CaseResult("time_limit", info={"error": "the program did not finish "
                                                       f"loading within {plan.time_limit:g} s"}))
                    return
                except SessionOverflow:
                    s.kill()
                    self._fail_rest(out, i, CaseResult("output_limit"))
                    return
                if s.oom_kills() > oom:
                    self._fail_rest(out, i, CaseResult("memory_limit", info={"error": OOM}))
                    return
                if ready is None or ready.get("ev") == "fatal":
                    self._died(s, ready, out, i, loading=True)
                    return
                if ready.get("status"):
                    verdict = STATUS.get(ready["status"], "runtime_error")
                    self._fail_rest(out, i, CaseResult(verdict, info={"error": ready.get("error", "")}))
                    return
                i, stop = self._cases(s, plan, out, i, wall + grace, budget_end)
                if stop:
                    return

    def _cases(self, s: Session, plan: TestPlan, out: Judgement, i: int, deadline_s: float,
               budget_end: float) -> tuple[int, bool]:
        """Run cases from i in this session; (next case, stop) — stop when judging is over."""
        n = len(plan.cases)
        while i < n:
            if time.monotonic() > budget_end:
                return i, True
            case = plan.cases[i]
            msg: dict[str, Any] = {"op": "case", "i": i}
            if plan.kind == "stdin":
                msg["input"] = case["input"]
            elif plan.kind == "function":
                msg["args"] = case["args"]
            else:
                msg["unit"] = case["unit"]
            oom = s.oom_kills()
            try:
                if not s.send(msg, timeout=STARTUP_S):
                    self._died(s, None, out, i, oom=s.oom_kills() > oom)
                    return i + 1, self._stop(out, i)
                res = s.recv(timeout=deadline_s)
            except SessionTimeout:
                s.kill()
                out.results[i] = CaseResult("time_limit", plan.time_limit,
                                            {"error": f"ran over the time limit ({plan.time_limit:g} s)"})
                return i + 1, self._stop(out, i)
            except SessionOverflow:
                s.kill()
                out.results[i] = CaseResult("output_limit")
                return i + 1, self._stop(out, i)
            if res is None or res.get("ev") == "fatal":
                self._died(s, res, out, i, oom=s.oom_kills() > oom)
                return i + 1, self._stop(out, i)
            out.results[i] = self.compare(plan, case, res)
            if s.oom_kills() > oom:  # the cgroup killed one of its processes: over the limit, whatever it printed
                out.results[i] = CaseResult("memory_limit", res.get("time"), {"error": OOM})
            if self._stop(out, i):
                return i + 1, True
            i += 1
        return i, True

    def _stop(self, out: Judgement, i: int) -> bool:
        r = out.results[i]
        return self.opts.stop_at_first_failure and (r is None or r.verdict != "accepted")

    def _died(self, s: Session, res: dict[str, Any] | None, out: Judgement, i: int, loading: bool = False,
              oom: bool = False) -> None:
        """The harness ended without answering: the program killed it, crashed it, or the sandbox broke."""
        if oom:
            out.results[i] = CaseResult("memory_limit", info={"error": OOM})
            return
        if res is not None and res.get("ev") == "fatal":
            out.verdict, out.reason = "sandbox_error", "the sandbox failed: " + str(res.get("error", ""))[-500:]
            out.results[i] = CaseResult("sandbox_error")
            return
        code = s.exit_status()
        sig = -code if code is not None and code < 0 else (code - 128 if code and code > 128 and
                                                            self.sandbox.mode != "unsafe" else None)
        if loading and out.sandboxes == 1 and self.sandbox.mode != "unsafe" and code in (1, 127, 255):
            tail = s.stderr_tail()
            if "bwrap" in tail or "setpriv" in tail:
                out.verdict, out.reason = "sandbox_error", f"the sandbox did not start: {tail[-500:]}"
                return
        if sig == 24:  # SIGXCPU: the CPU limit
            result = CaseResult("time_limit", info={"error": "ran over the CPU time limit"})
        elif sig is not None:
            result = CaseResult("runtime_error", info={"error": f"the program's process died (signal {sig})"})
        else:
            result = CaseResult("runtime_error", info={"error": f"the program ended its process (exit code {code})"})
        if loading:
            self._fail_rest(out, i, result)
        else:
            out.results[i] = result

    def _fail_rest(self, out: Judgement, i: int, result: CaseResult) -> None:
        """A failure before any test could run: the first remaining test carries it, the rest are not run."""
        if i < len(out.results):
            out.results[i] = result

    # ---- comparing -------------------------------------------------------------------------------
    def compare(self, plan: TestPlan, case: dict[str, Any], res: dict[str, Any]) -> CaseResult:
        status = res.get("status")
        t = res.get("time")
        if status == "ok":
            if plan.kind == "stdin":
                got = res.get("out", "")
                if tokens_equal(got, case["output"], self.opts.tolerance):
                    return CaseResult("accepted", t)
                return CaseResult("wrong_answer", t, {"got": got, "note": first_difference(got, case["output"])})
            if plan.kind == "function":
                try:
                    value = json.loads(res["value"]["json"])
                except (ValueError, KeyError, TypeError):
                    return CaseResult("wrong_answer", t, {"got": str(res.get("value"))[:SHOW]})
                if return_value_matches(value, case["expected"], self.opts.tolerance):
                    return CaseResult("accepted", t)
                return CaseResult("wrong_answer", t, {"got": _show_value(value)})
            return CaseResult("accepted", t)
        verdict = STATUS.get(str(status), "runtime_error")
        info: dict[str, Any] = {}
        if res.get("error") or res.get("err"):
            info["error"] = (res.get("error") or _last_lines(res.get("err", "")))[-SHOW:]
        elif isinstance(res.get("exit"), int) and res["exit"]:
            code = res["exit"]
            info["error"] = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if status == "timeout":
            limit = res.get("limit", plan.time_limit)
            # no measured times in a check: a rerun must write the same record
            info["error"] = (f"ran over the wall-clock limit ({limit * self.opts.wall_factor:g} s) before its CPU "
                             "limit: it sleeps or waits, or the machine is overloaded" if res.get("wall")
                             else f"ran over the time limit ({limit:g} s of CPU time)")
        for key in ("got", "expected", "line"):
            if res.get(key) is not None:
                info[key] = res[key]
        if plan.kind == "stdin" and res.get("out"):
            info["got"] = res["out"]
        return CaseResult(verdict, t, info)

    # ---- summing up ------------------------------------------------------------------------------
    def _reason(self, plan: TestPlan, out: Judgement) -> str:
        n = out.tests
        first = next(((k, r) for k, r in enumerate(out.results) if r is not None and r.verdict != "accepted"), None)
        if first is None:
            if out.passed == n:
                out.verdict = "accepted"
                return f"passed {n}/{n} tests"
            out.verdict = "time_limit"
            return f"ran over the total time budget ({self.opts.max_total_s:g} s) after {out.passed}/{n} tests"
        k, r = first
        out.verdict = r.verdict
        out.failure = self._failure(plan, k, r)
        what = {"wrong_answer": "wrong answer", "time_limit": "time limit", "runtime_error": "runtime error",
                "memory_limit": "memory limit", "output_limit": "output limit", "compile_error": "compile error",
                "sandbox_error": "sandbox error"}.get(r.verdict, r.verdict)
        detail = r.info.get("note") or r.info.get("error") or ""
        if r.verdict == "wrong_answer" and plan.kind == "function":
            detail = f"expected {_show_value(plan.cases[k]['expected'])[:80]}, got {str(r.info.get('got'))[:80]}"
        elif r.verdict == "wrong_answer" and plan.kind == "assert":
            got, exp = r.info.get("got"), r.info.get("expected")
            detail = f"{str(r.info.get('line', ''))[:120]}" + (f" (expected {exp[:60]}, got {got[:60]})" if got else "")
        detail = " ".join(str(detail).split())[:300]
        return f"{what} on test {k + 1}/{n}" + (f": {detail}" if detail else "")

    def _failure(self, plan: TestPlan, k: int, r: CaseResult) -> dict[str, Any]:
        case = plan.cases[k]
        if plan.kind == "stdin":
            shown = {"input": case["input"], "expected": case["output"]}
        elif plan.kind == "function":
            shown = {"input": _show_value(case["args"]), "expected": _show_value(case["expected"])}
        else:
            shown = {"input": r.info.get("line") or case["text"]}
            if r.info.get("expected") is not None:
                shown["expected"] = r.info["expected"]
        if "got" in r.info:
            shown["got"] = r.info["got"] if isinstance(r.info["got"], str) else _show_value(r.info["got"])
        truncated = False
        failure: dict[str, Any] = {"test": k, "verdict": r.verdict}
        for key, value in shown.items():
            text = str(value)
            if len(text) > SHOW:
                text, truncated = text[:SHOW], True
            failure[key] = text
        if r.info.get("error"):
            failure["error"] = str(r.info["error"])[-SHOW:]
        failure["truncated"] = truncated
        return failure


def _show_value(value: Any) -> str:
    if isinstance(value, dict) and "__py__" in value:
        return f"{value.get('repr')} ({value['__py__']})"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _last_lines(text: str, n: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if "error" in line:
            return " ".join(line.split())[:200]
    return " ".join(log.split())[:200] or "the compiler failed"
