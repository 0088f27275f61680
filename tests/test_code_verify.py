"""code-verify on real data: HumanEval / MBPP reference solutions pass and broken variants fail,
APPS model solutions get the verdicts their labels give, LeetCode assert tests, C++, and the
details a check records (verdict per test, first failure, pass fraction)."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from assay.sources import build_source
from assay.sources.base import RowAt
from assay.stage import StageContext, build_stage
from assay.verify.code_compare import return_value_matches, tokens_equal
from assay.verify.code_extract import extract_candidate
from assay.verify.code_tests import plan_tests, split_assert_code
from conftest import assay, read_jsonl, write_jsonl

# ---- helpers ---------------------------------------------------------------------------------------


def rows(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def convert(source: str, path: Path, **options: Any) -> list[dict[str, Any]]:
    src = build_source(source, options or None)
    return [src.convert(r, RowAt(str(path), i + 1, i)) for i, r in enumerate(rows(path))]


def fenced(code: str, lang: str = "python") -> dict[str, str]:
    return {"text": f"Here is my solution.\n\n```{lang}\n{code.strip(chr(10))}\n```\n"}


BREAK = """

_assay_original = {name}


def {name}(*args, **kwargs):  # the reference, with its return value changed
    value = _assay_original(*args, **kwargs)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1.5
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, (list, tuple)):
        return type(value)(list(value) + [None])
    return 1 if value is None else None
"""


def entry_of(rec: dict[str, Any]) -> str:
    """The function the tests call: meta.entry_point, else a function of the solution named in the tests
    (MBPP 126 defines its own `sum`, which the adapter skips as a builtin)."""
    entry = (rec.get("meta") or {}).get("entry_point")
    if entry:
        return entry
    names = [n.name for n in ast.parse(rec["reference"]["solution"]).body if isinstance(n, ast.FunctionDef)]
    return next(n for n in reversed(names) if n + "(" in rec["reference"]["tests"]["code"])


def broken(code: str, name: str) -> str:
    return code + BREAK.format(name=name)


def verdicts(stage, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = [(rec, resp) for rec in records for resp in rec["responses"]]
    return [v.to_dict() for v in stage.check_batch(items)]


def one(stage, code: str, tests: dict[str, Any], lang: str = "python", meta: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None) -> dict[str, Any]:
    rec = {"id": "t", "domain": "code", "prompt": "p", "reference": {"tests": tests}, "meta": meta or {}}
    return stage.check_batch([(rec, response or fenced(code, lang))])[0].to_dict()


def stdin(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"kind": "stdin", "cases": [{"input": i, "output": o} for i, o in pairs]}


needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make setup)")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (make setup)")
    st = build_stage("code-verify", {"timeout_s": 2.0})
    st.setup(StageContext(cache_dir=tmp_path_factory.mktemp("cv")))
    yield st
    st.teardown()


# ---- candidate extraction, comparison, test plans (no sandbox) ------------------------------------------


def test_extracts_the_last_code_block_of_the_final_answer() -> None:
    text = ("<think>draft:\n```python\nprint('draft')\n```\n</think>\nFinal:\n```python\nprint(1)\n```\n"
            "Example output:\n```\n1\n```\n")
    cand = extract_candidate({"text": text})
    assert not isinstance(cand, str)
    assert cand.code == "print(1)\n" and cand.language == "python"
    cpp = extract_candidate({"text": "```c++\n#include <cstdio>\nint main(){puts(\"1\");}\n```"})
    assert not isinstance(cpp, str) and cpp.language == "cpp"
    plain = extract_candidate({"text": "```\nn = int(input())\nprint(n)\n```\nOutput:\n```\n3\n```"})
    assert not isinstance(plain, str) and plain.code.startswith("n = int")
    unclosed = extract_candidate({"text": "```py\nprint(2)\n"})
    assert not isinstance(unclosed, str) and unclosed.code == "print(2)\n"
    field = extract_candidate({"text": "ignored", "code": "print(3)"})
    assert not isinstance(field, str) and field.origin == "field"


def test_extracts_indented_and_crlf_fences() -> None:
    text = "Steps:\r\n1. Code:\r\n    ```python\r\n    def f():\r\n        return 1\r\n    ```\r\nDone."
    cand = extract_candidate({"text": text})
    assert not isinstance(cand, str) and cand.code == "def f():\n    return 1\n"


def test_no_code_reasons() -> None:
    assert "no fenced code block" in str(extract_candidate({"text": "The answer is 42."}))
    assert "inside <think>" in str(extract_candidate({"text": "<think>```python\nprint(1)\n```"}))
    assert "supported" in str(extract_candidate({"text": "```java\nclass A {}\n```"}))


def test_judge_style_comparison() -> None:
    assert tokens_equal("1 2\n3\n", "1 2 3", 1e-6)
    assert tokens_equal("0.3333333", "0.333333333", 1e-6)
    assert tokens_equal("1.0", "1", 1e-6)
    assert not tokens_equal("0.33", "0.333333", 1e-6)
    assert not tokens_equal("01", "1", 1e-6)
    assert not tokens_equal("1 2 3", "1 2", 1e-6)  # extra output is wrong
    assert not tokens_equal("YES", "Yes", 1e-6)
    assert return_value_matches(9, [9], 1e-6)  # APPS wraps expected values in a list
    assert return_value_matches([1.0000001, 2], [1, 2], 1e-6)
    assert not return_value_matches({"__py__": "set", "repr": "{1}"}, [1], 1e-6)


def test_assert_code_splits_into_cases() -> None:
    units = split_assert_code("import math\nx = 2\nassert f(x) == 4\nassert f(3) == 9, 'msg'\ncheck(f)\n")
    assert [u["case"] for u in units] == [False, False, True, True, True]
    assert units[2]["left"] == "(f(x))" and units[2]["right"] == "(4)"
    humaneval_raw = split_assert_code("def check(candidate):\n    assert candidate(1) == 2\n", "inc")
    assert humaneval_raw[-1] == {"code": "check(inc)", "line": 3, "case": True}
    assert split_assert_code("this is not python")[0]["case"] is True


def test_record_limits_are_used() -> None:
    rec = {"reference": {"tests": stdin(("1", "1"))}, "meta": {"time_limit_s": 2, "memory_limit_mb": 256}}
    plan = plan_tests(rec, timeout_s=4, memory_mb=1024, time_scale=1.5)
    assert not isinstance(plan, str) and plan.time_limit == 3.0 and plan.memory_mb == 256
    assert isinstance(plan_tests({"reference": {}}, timeout_s=4, memory_mb=1024), str)


# ---- real data sets ------------------------------------------------------------------------------------


def test_humaneval_references_pass_and_broken_variants_fail(stage, shared_data: Path) -> None:
    records = convert("humaneval", shared_data / "humaneval" / "HumanEval.jsonl")
    for rec in records:
        solution, entry = rec["reference"]["solution"], entry_of(rec)
        rec["responses"] = [fenced(solution), fenced(broken(solution, entry))]
    results = verdicts(stage, records)
    good, bad = results[0::2], results[1::2]
    assert [r["code"] for r in good] == ["accepted"] * len(records), [r["reason"] for r in good if not r["passed"]]
    assert not [rec["id"] for rec, r in zip(records, bad, strict=True) if r["passed"]]
    assert all(r["score"] == 1.0 and r["verdicts"] == "A" for r in good)


def test_mbpp_references_pass_and_broken_variants_fail(stage, shared_data: Path) -> None:
    records = convert("mbpp", shared_data / "mbpp" / "mbpp.jsonl")[::4]  # a quarter (all: bench/)
    for rec in records:
        solution, entry = rec["reference"]["solution"], entry_of(rec)
        rec["responses"] = [fenced(solution), fenced(broken(solution, entry))]
    results = verdicts(stage, records)
    good, bad = results[0::2], results[1::2]
    assert not [(rec["id"], r["reason"]) for rec, r in zip(records, good, strict=True) if not r["passed"]]
    assert not [rec["id"] for rec, r in zip(records, bad, strict=True) if r["passed"]]
    failed = next(r for r in bad if r["code"] == "wrong_answer")
    assert failed["first_failure"]["input"].startswith("assert ")
    assert "got" in failed["first_failure"] and "expected" in failed["first_failure"]


def coderl_class(letters: str) -> Any:
    """CodeRL's label from per-test outcomes: an error (-1 runtime or timeout, -2 compile) when any test
    errs, False when one is wrong, True when all pass. Which errors count as compile errors depends on
    CodeRL's wrapping of the code (`return` at top level compiles there), so the two error codes are
    compared as one class."""
    if set(letters) & set("CRTMO"):
        return "error"
    return False if "W" in letters else True


@needs_bwrap
def test_apps_model_solutions_get_their_labels(shared_data: Path, tmp_path: Path) -> None:
    records = convert("apps", shared_data / "apps_coderl_sample" / "apps_train_sample.jsonl")
    for rec in records:  # CodeRL's labelled samples; the baseline_solutions are harness-wrapped copies
        rec["responses"] = [r for r in rec["responses"] if r["meta"]["origin"] == "generated_solutions"]
    assert sum(len(r["responses"]) for r in records) == 83
    st = build_stage("code-verify", {"timeout_s": 1.0, "stop_at_first_failure": False})
    st.setup(StageContext(cache_dir=tmp_path))
    try:
        results = verdicts(st, records)
    finally:
        st.teardown()
    labels = [resp["meta"]["result"] for rec in records for resp in rec["responses"]]
    mismatches = []
    for label, res in zip(labels, results, strict=True):
        want = label if label is True or label is False else "error"
        if coderl_class(res["verdicts"]) != want:
            mismatches.append((label, res["code"], res["reason"]))
        assert res["passed"] == (label is True)
    assert mismatches == []


LEETCODE_RIGHT = """
class Solution:
    def minimumPushes(self, word: str) -> int:
        return sum(i // 8 + 1 for i in range(len(word)))
"""
LEETCODE_WRONG = """
class Solution:
    def minimumPushes(self, word: str) -> int:
        return len(word)
"""


def test_leetcode_class_solution_asserts(stage, shared_data: Path) -> None:
    row = next(r for r in rows(shared_data / "leetcode_contest_deepseek" / "leetcode_20240121_jul.jsonl")
               if r["title"] == "minimum-number-of-pushes-to-type-word-i")
    tests = {"kind": "assert", "code": row["test"], "entry_point": None}
    right = one(stage, LEETCODE_RIGHT, tests)
    assert right["code"] == "accepted" and right["tests"] > 50 and right["tests_passed"] == right["tests"]
    wrong = one(stage, LEETCODE_WRONG, tests)
    assert wrong["code"] == "wrong_answer"
    failure = wrong["first_failure"]
    assert "minimumPushes" in failure["input"] and failure["got"] != failure["expected"]
    missing = one(stage, "class Other:\n    pass\n", tests)
    assert missing["code"] == "runtime_error" and "Solution" in missing["reason"]


# ---- behaviour on stdin / function tests -------------------------------------------------------------------


def test_stdin_programs_run_like_a_fresh_interpreter(stage) -> None:
    tests = stdin(("3\n1 2 3\n", "6\n"), ("2\r\n5 5\r\n", "10\n"))
    programs = [
        "n = int(input())\nprint(sum(map(int, input().split())))",
        "import sys\ndata = sys.stdin.buffer.read().split()\nprint(sum(map(int, data[1:])))",
        "print(sum(map(int, open(0).read().split()[1:])))",
        "import sys, threading\ndef main():\n    input()\n    print(sum(map(int, input().split())))\n"
        "threading.stack_size(1 << 26)\nsys.setrecursionlimit(10**6)\nthreading.Thread(target=main).start()",
        "input()\nprint(sum(map(int, input().split())))\nexit()\nprint('unreachable')",
        "import sys\ninput()\nsys.stdout.write(str(sum(map(int, input().split()))) + '\\n')\nsys.exit(0)",
        "if __name__ == '__main__':\n    input()\n    print(sum(map(int, input().split())))",
    ]
    for code in programs:
        res = one(stage, code, tests)
        assert res["code"] == "accepted", (code, res)


def test_stdin_verdicts_and_first_failure(stage) -> None:
    tests = stdin(("1\n", "2\n"), ("2\n", "4\n"), ("3\n", "6\n"), ("4\n", "8\n"))
    wrong = one(stage, "n = int(input())\nprint(n * 2 if n < 3 else n + 2)", tests)
    assert wrong["code"] == "wrong_answer" and wrong["verdicts"] == "AAW-" and wrong["score"] == 0.5
    f = wrong["first_failure"]
    assert (f["test"], f["input"], f["expected"], f["got"], f["truncated"]) == (2, "3\n", "6\n", "5\n", False)
    assert "test 3/4" in wrong["reason"]
    crash = one(stage, "n = int(input())\nprint(2 * n // (n != 2))", tests)
    assert crash["code"] == "runtime_error" and "ZeroDivisionError" in crash["reason"]
    assert crash["verdicts"] == "AR--"
    syntax = one(stage, "print(", tests)
    assert syntax["code"] == "compile_error" and syntax["verdicts"] == "C---"
    slow = one(stage, "while True:\n    pass", tests)
    assert slow["code"] == "time_limit" and slow["verdicts"] == "T---"


@needs_bwrap
def test_run_all_tests_gives_the_exact_pass_fraction(tmp_path: Path) -> None:
    st = build_stage("code-verify", {"timeout_s": 1.0, "stop_at_first_failure": False})
    st.setup(StageContext(cache_dir=tmp_path))
    try:
        tests = stdin(("1\n", "1\n"), ("2\n", "2\n"), ("3\n", "3\n"), ("4\n", "4\n"))
        code = "n = int(input())\nif n == 2:\n    while True: pass\nprint(n if n != 3 else 0)"
        res = one(st, code, tests)
    finally:
        st.teardown()
    assert res["verdicts"] == "ATWA" and res["score"] == 0.5 and res["code"] == "time_limit"


@needs_bwrap
def test_expected_output_larger_than_the_cap(tmp_path: Path) -> None:
    st = build_stage("code-verify", {"output_limit_mb": 0.01})
    st.setup(StageContext(cache_dir=tmp_path))
    try:
        big = "\n".join(str(i) for i in range(20000)) + "\n"  # ~110 KB expected, cap 10 KB
        assert one(st, "for i in range(20000):\n    print(i)", stdin(("", big)))["code"] == "accepted"
        flood = one(st, "while True:\n    print(12345678)", stdin(("", big)))
        assert flood["code"] == "output_limit"
    finally:
        st.teardown()


def test_record_time_limit_is_cpu_time(stage) -> None:
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0:\n    pass\nprint(1)"
    assert one(stage, busy, stdin(("", "1")))["code"] == "accepted"
    assert one(stage, busy, stdin(("", "1")), meta={"time_limit_s": 0.5})["code"] == "time_limit"


def test_function_tests(stage) -> None:
    tests = {"kind": "function", "fn_name": "f", "class_name": None,
             "cases": [{"args": [2], "expected": [4]}, {"args": [3], "expected": 9.0000001}]}
    assert one(stage, "def f(x):\n    return x * x", tests)["code"] == "accepted"
    sol = "class Solution:\n    def f(self, x: int) -> List[int]:\n        return x ** 2"  # List from the prelude
    assert one(stage, sol, tests)["code"] == "accepted"
    wrong = one(stage, "def f(x):\n    return {x}", tests)
    assert wrong["code"] == "wrong_answer" and "set" in wrong["first_failure"]["got"]
    tuple_ok = {"kind": "function", "fn_name": "g", "cases": [{"args": [], "expected": [1, 2]}]}
    assert one(stage, "def g():\n    return (1, 2)", tuple_ok)["code"] == "accepted"
    always_equal = "class E:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return E()"
    assert one(stage, always_equal, tests)["code"] == "wrong_answer"  # compared on the host, as data
    missing = one(stage, "def other(x):\n    return x", tests)
    assert missing["code"] == "runtime_error" and "not defined" in missing["reason"]
    leetcode = {**tests, "class_name": "Solution"}
    assert one(stage, "def f(x):\n    return x * x", leetcode)["code"] == "accepted"  # a plain function will do


def test_starter_code_completion(stage) -> None:
    stub = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n'
    tests = {"kind": "assert", "code": "assert total([1, 2]) == 3\n", "entry_point": "total"}
    for body in ("    return sum(xs)", "return sum(xs)"):
        assert one(stage, body, tests, meta={"starter_code": stub})["code"] == "accepted"
    helper = 'def helper(x):\n    return x\n\n\ndef total(xs):\n    """Sum."""\n'
    uses_helper = one(stage, "def total(xs):\n    return sum(helper(x) for x in xs)", tests,
                      meta={"starter_code": helper})
    assert uses_helper["code"] == "accepted"


CPP_SUM = """
#include <bits/stdc++.h>
using namespace std;
int main() { long long n, s = 0, x; cin >> n; while (n--) { cin >> x; s += x; } cout << s << endl; }
"""


def test_cpp_stdin(stage) -> None:
    tests = stdin(("3\n1 2 3\n", "6\n"), ("1\n-5\n", "-5\n"))
    before = stage.stats().get("compiles", 0)
    assert one(stage, CPP_SUM, tests, "cpp")["code"] == "accepted"
    assert one(stage, CPP_SUM, tests, "cpp")["code"] == "accepted"
    assert stage.stats()["compiles"] == before + 1  # the second run reused the binary
    wrong = one(stage, CPP_SUM.replace("s += x", "s += x + 1"), tests, "cpp")
    assert wrong["code"] == "wrong_answer" and wrong["language"] == "cpp"
    ce = one(stage, "int main() { return undefined_name; }", tests, "cpp")
    assert ce["code"] == "compile_error" and "undefined_name" in ce["reason"]
    crash = one(stage, "#include <cstdlib>\nint main() { abort(); }", tests, "cpp")
    assert crash["code"] == "runtime_error"
    oom = one(stage, "#include <vector>\nint main() { std::vector<char> v(1ull << 40); return v[5]; }", tests, "cpp")
    assert oom["code"] == "memory_limit"
    loop = one(stage, "int main() { volatile int x = 0; for (;;) x++; }", tests, "cpp")
    assert loop["code"] == "time_limit"
    fn = one(stage, CPP_SUM, {"kind": "function", "fn_name": "f", "cases": [{"args": [], "expected": 1}]}, "cpp")
    assert fn["code"] == "no_code"


def test_no_code_and_no_tests(stage) -> None:
    assert one(stage, "", stdin(("", "")), response={"text": "I don't know."})["code"] == "no_code"
    rec = {"id": "x", "domain": "code", "prompt": "p", "responses": [fenced("print(1)")]}
    res = stage.check_batch([(rec, rec["responses"][0])])[0].to_dict()
    assert res["code"] == "no_tests" and not res["passed"]


def test_duplicate_candidates_are_judged_once(stage) -> None:
    rec = {"id": "d", "domain": "code", "prompt": "p", "reference": {"tests": stdin(("1\n", "1\n"))},
           "responses": [fenced("print(input())") for _ in range(4)]}
    before = stage.stats().get("duplicates", 0)
    out = stage.check_batch([(rec, r) for r in rec["responses"]])
    assert all(v.passed for v in out)
    assert stage.stats()["duplicates"] == before + 3


# ---- through the CLI ----------------------------------------------------------------------------------------


@needs_bwrap
def test_assay_apply_code_verify(tmp_path: Path, shared_data: Path) -> None:
    records = convert("apps", shared_data / "apps_coderl_sample" / "apps_train_sample.jsonl")[3:]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    assay("apply", "code-verify", str(src), str(out), "--set", "timeout_s=1", cwd=tmp_path)
    got = read_jsonl(out)
    assert len(got) == len(records)
    for rec in got:
        for resp in rec["responses"]:
            check = resp["checks"]["code_verify"]
            assert check["code"] in ("accepted", "wrong_answer", "runtime_error", "time_limit", "compile_error")
            if resp["meta"]["origin"] == "generated_solutions":
                assert check["passed"] == (resp["meta"]["result"] is True)
    dropped = tmp_path / "kept.jsonl"
    assay("apply", "code-verify", str(src), str(dropped), "--set", "timeout_s=1", "--drop", cwd=tmp_path)
    kept = read_jsonl(dropped)
    assert all(r["checks"]["code_verify"]["passed"] for rec in kept for r in rec["responses"])


def test_unknown_parameter_is_a_clear_error(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "domain": "code", "prompt": "p"}])
    proc = assay("apply", "code-verify", str(src), str(tmp_path / "o.jsonl"), "--set", "timout_s=1",
                 cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "timout_s" in proc.stderr + proc.stdout
