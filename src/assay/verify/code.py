"""Stage `code-verify`: run each response's code against the record's tests in a sandbox."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr

from assay.record import Record, Response, Verdict
from assay.stage import Execution, ResponseCheck, StageContext, stage
from assay.verify.code_extract import Candidate, extract_candidate
from assay.verify.code_tests import TestPlan, plan_tests


@stage("code-verify")
class CodeVerify(ResponseCheck):
    """Runs each response's code (its last fenced code block, or a `code` field; Python, or C++ for
    stdin tests) against the record's tests (stdin/stdout, function calls, assert code) in a
    bubblewrap sandbox, and writes the verdict, the pass fraction and the first failing test.

    Every process of a candidate runs without network, with its own PID namespace, a read-only
    view of /usr and the Python installation, a private tmpfs work dir, an empty environment and
    rlimits; a wall-clock deadline kills the whole sandbox. Without bubblewrap the stage refuses
    to run unless `unsafe_no_sandbox` is set.
    """

    execution: ClassVar[Execution] = "main"
    batch_size: ClassVar[int] = 64
    version: ClassVar[str] = "1"

    timeout_s: float = Field(4.0, gt=0, description="CPU-time limit per test, unless the record gives "
                             "meta.time_limit_s")
    wall_time_factor: float = Field(5.0, ge=1, description="wall-clock limit per test = this x the CPU-time "
                                    "limit (catches programs that sleep or block; generous so that a busy "
                                    "machine does not cause timeouts)")
    record_limits: bool = Field(True, description="use the record's meta.time_limit_s / meta.memory_limit_mb "
                                "when present")
    time_scale: float = Field(1.0, gt=0, description="multiplies the record's own time limits (e.g. 3 for "
                              "Python on limits set for C++)")
    memory_mb: int = Field(1024, ge=64, description="address-space limit per process (MB)")
    output_limit_mb: float = Field(8.0, gt=0, description="most output a test may print (stdout), or the largest "
                                   "return value, in MB")
    processes: int = Field(64, ge=4, description="most processes and threads a candidate may have at once")
    float_tolerance: float = Field(1e-6, ge=0, description="numbers compare equal within this, absolute or relative")
    stop_at_first_failure: bool = Field(True, description="stop at the first failing test (false: run them all "
                                        "for an exact pass fraction)")
    max_total_s: float = Field(120.0, gt=0, description="time budget for all tests of one candidate")
    prelude: bool = Field(True, description="function tests: typing / collections / itertools / math names in "
                          "scope, as LeetCode and the APPS evaluator provide")
    python: str | None = Field(None, description="interpreter that runs Python candidates (default: the one "
                               "running assay)")
    site_packages: bool = Field(True, description="let candidates import the interpreter's installed packages "
                                "(numpy...), read-only")
    cxx: str = Field("g++", description="C++ compiler")
    cxx_flags: list[str] = Field(default_factory=lambda: ["-std=c++17", "-O2", "-pipe"],
                                 description="C++ compiler flags")
    tmp_mb: int = Field(64, ge=8, description="size of the sandbox's private work dir (tmpfs, MB)")
    workers: int | None = Field(None, ge=1, description="candidates judged at once (default: all cores)")
    unsafe_no_sandbox: bool = Field(False, description="run code WITHOUT bubblewrap isolation (only rlimits, a "
                                    "temp dir and a clean environment): for trusted code or machines without "
                                    "bubblewrap")

    _sandbox: Any = PrivateAttr(default=None)
    _judge: Any = PrivateAttr(default=None)
    _compiler: Any = PrivateAttr(default=None)
    _pool: ThreadPoolExecutor | None = PrivateAttr(default=None)
    _counts: Counter = PrivateAttr(default_factory=Counter)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _memo: dict = PrivateAttr(default_factory=dict)

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        from assay.verify.code_compile import CxxCompiler
        from assay.verify.code_run import Judge, JudgeOptions
        from assay.verify.sandbox import Sandbox

        workers = self.workers or max(1, os.cpu_count() or 1)
        self._sandbox = Sandbox(python=self.python, unsafe=self.unsafe_no_sandbox, slots=workers,
                                tmp_mb=self.tmp_mb, site_packages=self.site_packages)
        self._sandbox.probe()
        self._compiler = CxxCompiler(self._sandbox, ctx.cache_dir, self.cxx, tuple(self.cxx_flags))
        self._judge = Judge(self._sandbox, self._compiler, JudgeOptions(
            tolerance=self.float_tolerance, stop_at_first_failure=self.stop_at_first_failure,
            max_total_s=self.max_total_s, output_limit=int(self.output_limit_mb * (1 << 20)),
            processes=self.processes, prelude=self.prelude, wall_factor=self.wall_time_factor))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="code-verify")

    def teardown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def check_batch(self, items: list[tuple[Record, Response]]) -> list[Verdict]:
        if self._pool is None:
            raise RuntimeError("code-verify used before setup()")
        plans: dict[int, TestPlan | str] = {}
        futures = []
        for rec, resp in items:
            key = id(rec)
            if key not in plans:
                plans[key] = plan_tests(rec, timeout_s=self.timeout_s, memory_mb=self.memory_mb,
                                        record_limits=self.record_limits, time_scale=self.time_scale)
            futures.append(self._pool.submit(self._check_one, rec, resp, plans[key]))
        try:
            return [f.result() for f in futures]
        finally:
            with self._lock:
                self._memo.clear()  # duplicates sit in the same batch; keep memory flat

    def check(self, record: Record, response: Response) -> Verdict:
        return self.check_batch([(record, response)])[0]

    def _check_one(self, rec: Record, resp: Response, plan: TestPlan | str) -> Verdict:
        cand = extract_candidate(resp)
        if isinstance(cand, str):
            return self._count(Verdict(False, 0.0, cand, code="no_code", details={"tests": 0}))
        if isinstance(plan, str):
            return self._count(Verdict(False, 0.0, plan, code="no_tests", details={"language": cand.language}))
        key = self._memo_key(plan, cand)
        with self._lock:
            event = self._memo.get(key)
            owner = event is None
            if owner:
                event = self._memo[key] = [threading.Event(), None]
        if not owner:  # the same code on the same tests (duplicate samples) is judged once
            event[0].wait()
            if event[1] is not None:
                return self._count(event[1], duplicate=True)
        try:
            verdict = self._judge_one(rec, plan, cand)
            event[1] = verdict
        finally:
            event[0].set()
        return self._count(verdict)

    def _judge_one(self, rec: Record, plan: TestPlan, cand: Candidate) -> Verdict:
        from assay.verify.sandbox import SandboxError

        try:
            j = self._judge.judge(plan, cand, rec)
        except (SandboxError, OSError) as exc:
            return Verdict(False, 0.0, f"the sandbox failed: {exc}", code="sandbox_error",
                           details={"language": cand.language})
        details: dict[str, Any] = {"language": cand.language, "tests": j.tests, "tests_passed": j.passed,
                                   "verdicts": j.letters()}  # (times go to stats: checks stay reproducible)
        if j.failure:
            details["first_failure"] = j.failure
        with self._lock:
            self._counts["tests_run"] += sum(1 for r in j.results if r is not None)
            self._counts["sandboxes"] += j.sandboxes
            self._counts["sandbox_seconds"] += j.seconds
        return Verdict(j.verdict == "accepted", round(j.score, 4), j.reason, code=j.verdict, details=details)

    def _memo_key(self, plan: TestPlan, cand: Candidate) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([plan.kind, plan.cases, plan.units, plan.fn_name, plan.class_name, plan.time_limit,
                             plan.memory_mb, cand.language], sort_keys=True, default=str).encode())
        h.update(cand.code.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def _count(self, verdict: Verdict, duplicate: bool = False) -> Verdict:
        with self._lock:
            self._counts[f"verdict.{verdict.code}"] += 1
            if duplicate:
                self._counts["duplicates"] += 1
        return Verdict(verdict.passed, verdict.score, verdict.reason, verdict.code, dict(verdict.details))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
        if self._compiler is not None:
            out["compile_cache_hits"] = self._compiler.hits
            out["compiles"] = self._compiler.misses
        out["sandbox_seconds"] = round(out.get("sandbox_seconds", 0.0), 3)
        return out
