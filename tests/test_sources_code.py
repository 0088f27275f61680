"""Code source adapters: HumanEval, MBPP, APPS, LeetCode (real samples in ../shared/data),
CodeContests and Codeforces (rows written here in their public schema).

The reference programs are run against the mapped tests with plain Python in a subprocess: the
code verifier relies on `exec(candidate); exec(tests.code)` raising exactly when a program is wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assay.errors import SourceError
from assay.record import validate_record
from assay.sources import RowAt, build_source

# ---- helpers ----------------------------------------------------------------------------------------

# Runs each (program, test code) pair in a fresh namespace, the way the code verifier does, and
# prints the indices that raised. One interpreter for all pairs keeps the test fast.
_ASSERT_DRIVER = r"""
import json, sys, io, contextlib
pairs = json.load(open(sys.argv[1]))
failed = []
for i, (program, code) in enumerate(pairs):
    ns = {"__name__": "__main__"}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(program, "candidate", "exec"), ns)
            exec(compile(code, "tests", "exec"), ns)
    except BaseException as exc:
        failed.append([i, type(exc).__name__ + ": " + str(exc)[:200]])
print(json.dumps(failed))
"""


def run_assert_pairs(tmp_path: Path, pairs: list[tuple[str, str]]) -> dict[int, str]:
    """{index: error} of the (program, assert code) pairs that fail."""
    data = tmp_path / "pairs.json"
    data.write_text(json.dumps(pairs))
    driver = tmp_path / "driver.py"
    driver.write_text(_ASSERT_DRIVER)
    proc = subprocess.run([sys.executable, str(driver), str(data)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return {i: err for i, err in json.loads(proc.stdout.strip().splitlines()[-1])}


def load(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def convert_all(name: str, rows: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    src = build_source(name, options)
    return [validate_record(src.convert(row, RowAt("data.jsonl", i + 1, i))) for i, row in enumerate(rows)]


def convert_one(name: str, row: dict[str, Any], **options: Any) -> dict[str, Any]:
    return convert_all(name, [row], **options)[0]


def source_error(name: str, row: dict[str, Any], **options: Any) -> SourceError:
    with pytest.raises(SourceError) as info:
        convert_one(name, row, **options)
    return info.value


# ---- HumanEval ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval_rows(shared_data: Path) -> list[dict[str, Any]]:
    return load(shared_data / "humaneval" / "HumanEval.jsonl")


def test_humaneval_maps_every_problem(humaneval_rows: list[dict[str, Any]]) -> None:
    recs = convert_all("humaneval", humaneval_rows)
    assert len(recs) == 164 and len({r["id"] for r in recs}) == 164
    first = recs[0]
    assert first["id"] == "humaneval/HumanEval/0"
    assert first["domain"] == "code" and first["source"] == "humaneval"
    assert "```python\nfrom typing import List" in first["prompt"]
    assert "def has_close_elements(" in first["prompt"]
    tests = first["reference"]["tests"]
    assert tests["kind"] == "assert" and tests["entry_point"] == "has_close_elements"
    assert tests["code"].rstrip().endswith("check(has_close_elements)")
    assert first["reference"]["solution"].startswith(humaneval_rows[0]["prompt"])
    assert "canonical_solution" not in first["prompt"]


def test_humaneval_canonical_solutions_pass_and_stubs_fail(tmp_path: Path,
                                                          humaneval_rows: list[dict[str, Any]]) -> None:
    recs = convert_all("humaneval", humaneval_rows)
    good = [(r["reference"]["solution"], r["reference"]["tests"]["code"]) for r in recs]
    assert run_assert_pairs(tmp_path, good) == {}
    # A stub that returns None must fail every problem's tests: the assert code really tests.
    bad = [(r["meta"]["starter_code"] + "    return None\n", r["reference"]["tests"]["code"]) for r in recs]
    assert len(run_assert_pairs(tmp_path, bad)) == len(recs)


def test_humaneval_missing_field_is_named() -> None:
    row = {"task_id": "X/1", "prompt": "def f():\n", "test": "def check(c): pass"}
    assert source_error("humaneval", row).field == "entry_point"
    assert source_error("humaneval", {**row, "entry_point": "f", "test": 5}).field == "test"


# ---- MBPP ---------------------------------------------------------------------------------------------


def test_mbpp_original_references_pass_their_tests(tmp_path: Path, shared_data: Path) -> None:
    rows = load(shared_data / "mbpp" / "mbpp.jsonl")
    recs = convert_all("mbpp", rows, include_challenge_tests=True)
    assert len(recs) == 974
    rec = recs[0]
    assert rec["id"] == "mbpp/1"
    assert rec["prompt"].startswith("You are an expert Python programmer, and here is your task: Write a function "
                                    "to find the minimum cost path")
    assert "Your code should pass these tests:\n\nassert min_cost(" in rec["prompt"]
    assert rec["reference"]["tests"]["entry_point"] == "min_cost"
    assert "\r" not in rec["reference"]["solution"]
    pairs = [(r["reference"]["solution"], r["reference"]["tests"]["code"]) for r in recs]
    assert run_assert_pairs(tmp_path, pairs) == {}
    wrong = [("def _unused():\n    pass\n", code) for _, code in pairs[:50]]
    assert len(run_assert_pairs(tmp_path, wrong)) == 50


def test_mbpp_setup_code_and_challenge_tests(shared_data: Path) -> None:
    rows = {r["task_id"]: r for r in load(shared_data / "mbpp" / "mbpp.jsonl")}
    with_setup = next(r for r in rows.values() if r["test_setup_code"].strip())
    code = convert_one("mbpp", with_setup)["reference"]["tests"]["code"]
    assert code.index(with_setup["test_setup_code"].splitlines()[0].strip()) < code.index("assert")
    with_challenge = next(r for r in rows.values() if r["challenge_test_list"])
    plain = convert_one("mbpp", with_challenge)["reference"]["tests"]["code"]
    more = convert_one("mbpp", with_challenge, include_challenge_tests=True)["reference"]["tests"]["code"]
    assert with_challenge["challenge_test_list"][0] not in plain
    assert with_challenge["challenge_test_list"][0] in more
    # the challenge asserts are never shown in the prompt
    rec = convert_one("mbpp", with_challenge, include_challenge_tests=True)
    assert with_challenge["challenge_test_list"][0] not in rec["prompt"]


def test_mbpp_deepseek_copy_and_string_test_field(tmp_path: Path, shared_data: Path) -> None:
    rows = load(shared_data / "mbpp" / "mbpp_test.jsonl")
    recs = convert_all("mbpp", rows)
    assert len(recs) == 500 and recs[0]["id"] == "mbpp/11"
    failed = run_assert_pairs(tmp_path, [(r["reference"]["solution"], r["reference"]["tests"]["code"]) for r in recs])
    # DeepSeek's copy drops `test_setup_code`: task 367 needs the trees that the original sets up.
    assert [recs[i]["id"] for i in failed] == ["mbpp/367"]
    # `test` stored as a string holding a Python list literal (as some copies do)
    as_text = {**rows[0], "test": repr(rows[0]["test"])}
    assert convert_one("mbpp", as_text)["reference"] == recs[0]["reference"]
    assert source_error("mbpp", {**rows[0], "test": "[1, 2"}).field == "test"
    assert source_error("mbpp", {**rows[0], "test": []}).field == "test"


def test_mbpp_sanitized_layout_uses_test_imports() -> None:
    # Hugging Face `mbpp` config `sanitized`: source_file, task_id, prompt, code, test_imports, test_list.
    row = {"source_file": "Benchmark Questions Verification V2.ipynb", "task_id": 2,
           "prompt": "Write a function to find the shared elements from the given two lists.",
           "code": "def similar_elements(t1, t2):\n    return tuple(set(t1) & set(t2))",
           "test_imports": ["import math"],
           "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"]}
    rec = convert_one("mbpp", row)
    assert rec["id"] == "mbpp/2"
    assert rec["reference"]["tests"]["code"].startswith("import math\nassert set(similar_elements(")
    assert rec["reference"]["tests"]["entry_point"] == "similar_elements"


def test_mbpp_plus_test_program() -> None:
    # EvalPlus MBPP+ (MbppPlus.jsonl): task_id, prompt (docstring with the task and one assert), entry_point,
    # canonical_solution, test (a whole test program, not a list of asserts).
    row = {"task_id": "Mbpp/2",
           "prompt": '"""\nWrite a function to find the shared elements from the given two lists.\n'
                     'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n',
           "entry_point": "similar_elements",
           "canonical_solution": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
           "test": "inputs = [[(3, 4, 5, 6), (5, 7, 4, 10)], [(1, 2), (3, 4)]]\nresults = [(4, 5), ()]\n"
                   "for inp, exp in zip(inputs, results):\n"
                   "    assert set(similar_elements(*inp)) == set(exp)\n"}
    rec = convert_one("mbpp", row)
    assert rec["id"] == "mbpp/Mbpp/2" and rec["reference"]["tests"]["entry_point"] == "similar_elements"
    assert rec["prompt"].startswith("You are an expert Python programmer, and here is your task: Write a function")
    assert '"""' not in rec["prompt"]
    code = rec["reference"]["tests"]["code"]
    assert code.startswith("inputs = ") and "for inp, exp in zip" in code
    ns: dict[str, Any] = {}
    exec(rec["reference"]["solution"], ns)
    exec(code, ns)
    ns = {}
    exec("def similar_elements(a, b):\n    return ()\n", ns)
    with pytest.raises(AssertionError):
        exec(code, ns)


# ---- APPS ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apps_rows(shared_data: Path) -> list[dict[str, Any]]:
    return load(shared_data / "apps_coderl_sample" / "apps_train_sample.jsonl")


def test_apps_stdin_and_function_tests(apps_rows: list[dict[str, Any]]) -> None:
    recs = {r["id"]: r for r in convert_all("apps", apps_rows)}
    stdin = recs["apps/train/0001"]
    assert stdin["reference"]["tests"] == {"kind": "stdin",
                                           "cases": [{"input": "3\n2 2 3\n4 3 7\n10 1 9\n", "output": "1\n6\n-1\n"}]}
    assert stdin["meta"]["difficulty"] == "interview"
    assert stdin["meta"]["url"] == "https://codeforces.com/problemset/problem/1036/B"
    assert "standard input" in stdin["prompt"]
    leet = recs["apps/train/2404"]["reference"]["tests"]
    assert leet == {"kind": "function", "fn_name": "findKthPositive", "class_name": "Solution",
                    "cases": [{"args": [[2, 3, 4, 7, 11], 5], "expected": 9}]}
    kata = recs["apps/train/4184"]
    tests = kata["reference"]["tests"]
    assert tests["class_name"] is None and tests["fn_name"] == "is_prime"
    # APPS wraps return values in one-element lists: kept exactly as stored
    assert tests["cases"][0] == {"args": [1], "expected": [False]}
    assert kata["meta"]["starter_code"] == "def is_prime(n):\n\t"
    assert "```python\ndef is_prime(n):" in kata["prompt"]


def test_apps_coderl_labelled_solutions_become_responses(apps_rows: list[dict[str, Any]]) -> None:
    recs = convert_all("apps", apps_rows)
    generated = [resp for r in recs for resp in r["responses"] if resp["meta"]["origin"] == "generated_solutions"]
    assert len(generated) == 83
    assert sum(resp["meta"]["passed"] for resp in generated) == 35
    assert all(resp["text"].startswith("```python\n") for resp in generated)
    assert {resp["meta"]["result"] for resp in generated if not resp["meta"]["passed"]} <= {False, -1, -2}
    assert "responses" not in convert_all("apps", apps_rows, include_generated=False)[0]


def test_apps_json_string_fields_like_the_hub_copy(apps_rows: list[dict[str, Any]]) -> None:
    # codeparrot/apps stores `input_output` and `solutions` as JSON strings and `problem_id` as an int.
    for row in apps_rows:
        hub = {k: row[k] for k in ("question", "starter_code", "difficulty", "url")}
        hub.update(problem_id=7, input_output=json.dumps(row["input_output"]), solutions=json.dumps(row["solutions"]))
        rec, plain = convert_one("apps", hub), convert_one("apps", row, include_generated=False)
        assert rec["id"] == "apps/7"
        assert rec["reference"] == plain["reference"]
    broken = {"question": "q", "input_output": '{"inputs": ["1"', "solutions": "[]"}
    err = source_error("apps", broken)
    assert err.field == "input_output" and "JSON" in str(err)
    assert source_error("apps", {"question": "q", "solutions": "{nope"}).field == "solutions"
    mismatch = {"question": "q", "input_output": {"inputs": ["1\n"], "outputs": []}}
    assert source_error("apps", mismatch).field == "input_output"
    # a problem without tests is kept (it is routed later as lacking a reference), not rejected
    assert "tests" not in convert_one("apps", {"question": "q", "input_output": ""}).get("reference", {})


def test_apps_function_problem_without_starter_code_names_the_function() -> None:
    row = {"question": "Return the double of n.", "starter_code": "",
           "input_output": json.dumps({"fn_name": "double", "inputs": [[2]], "outputs": [[4]]})}
    rec = convert_one("apps", row)
    assert "function named `double`" in rec["prompt"] and "standard input" not in rec["prompt"]
    assert rec["reference"]["tests"]["class_name"] is None


def test_apps_line_list_inputs_are_joined() -> None:
    row = {"question": "q", "input_output": {"inputs": [["1 2", "3"]], "outputs": [["6"]]}}
    assert convert_one("apps", row)["reference"]["tests"]["cases"] == [{"input": "1 2\n3", "output": "6"}]


_APPS_DRIVER = r"""
import json, sys, io, contextlib
rec = json.load(open(sys.argv[1]))
tests, program = rec["reference"]["tests"], rec["reference"]["solution"]
prelude = "from typing import *\nimport sys, math, collections, itertools, heapq, bisect\n"
if tests["kind"] == "stdin":
    for case in tests["cases"]:
        sys.stdin = io.StringIO(case["input"])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(prelude + program, "candidate", "exec"), {"__name__": "__main__"})
        assert out.getvalue().split() == case["output"].split(), (out.getvalue(), case["output"])
else:
    ns = {"__name__": "candidate"}
    exec(compile(prelude + program, "candidate", "exec"), ns)
    fn = getattr(ns[tests["class_name"]](), tests["fn_name"]) if tests["class_name"] else ns[tests["fn_name"]]
    for case in tests["cases"]:
        got = fn(*case["args"])
        assert got == case["expected"] or [got] == case["expected"], (got, case["expected"])
print("ok")
"""


def test_apps_reference_solutions_pass_the_mapped_tests(tmp_path: Path, apps_rows: list[dict[str, Any]]) -> None:
    driver = tmp_path / "apps_driver.py"
    driver.write_text(_APPS_DRIVER)
    for rec in convert_all("apps", apps_rows, include_generated=False):
        path = tmp_path / "rec.json"
        path.write_text(json.dumps(rec))
        proc = subprocess.run([sys.executable, str(driver), str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", (rec["id"], proc.stderr[-500:])


# ---- LeetCode -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def leetcode_rows(shared_data: Path) -> list[dict[str, Any]]:
    return load(shared_data / "leetcode_contest_deepseek" / "leetcode_20240121_jul.jsonl")


def test_leetcode_prompt_tests_and_meta(leetcode_rows: list[dict[str, Any]]) -> None:
    recs = convert_all("leetcode", leetcode_rows)
    assert len(recs) == 180
    rec = recs[0]
    assert rec["id"] == "leetcode/weekly-contest-381-minimum-number-of-pushes-to-type-word-i"
    assert rec["meta"]["difficulty"] == "Easy" and rec["meta"]["question_id"] == "3014"
    assert rec["meta"]["starter_code"].startswith("class Solution:")
    assert rec["prompt"].startswith("You are given a string word containing distinct lowercase")
    assert rec["prompt"].count("class Solution") == 1  # prompt_sft's own copy of the stub is not repeated
    assert '"""' not in rec["prompt"]
    assert all(r["reference"]["tests"]["kind"] == "assert" for r in recs)
    assert all("my_solution = Solution()" in r["reference"]["tests"]["code"] for r in recs)
    with_list = next(r for r in recs if "List[" in r["meta"]["starter_code"])
    assert "from typing import List" in with_list["prompt"]


def test_leetcode_asserts_reject_a_wrong_solution(tmp_path: Path, leetcode_rows: list[dict[str, Any]]) -> None:
    recs = convert_all("leetcode", leetcode_rows)
    pairs = []
    for r in recs:
        wrong = ("from typing import *\nclass ListNode:\n    def __init__(self, val=0, next=None):\n"
                 "        self.val, self.next = val, next\n"
                 "class Solution:\n    def __getattr__(self, name):\n        return lambda *a, **k: object()\n")
        pairs.append((wrong, r["reference"]["tests"]["code"]))
    failed = run_assert_pairs(tmp_path, pairs)
    assert len(failed) == 180
    assert sum(err.startswith("AssertionError") for err in failed.values()) >= 170  # (linked lists: AttributeError)


# Answers every call with the expected value of the function case whose args match: it passes the
# original asserts only if the function cases carry the same calls and values, in parameter order.
_LOOKUP = """
import json
from typing import *
_CASES = json.loads({cases!r})
_PARAMS = {params!r}
class Solution:
    def {fn}(self, **kwargs):
        args = [kwargs[p] for p in _PARAMS]
        for case in _CASES:
            if case["args"] == args:
                return case["expected"]
        raise KeyError(args)
"""


def test_leetcode_function_style_matches_the_asserts(tmp_path: Path, leetcode_rows: list[dict[str, Any]]) -> None:
    from assay.sources.leetcode import method_params

    asserted = convert_all("leetcode", leetcode_rows)
    called = convert_all("leetcode", leetcode_rows, test_style="function")
    kinds = [r["reference"]["tests"]["kind"] for r in called]
    assert kinds.count("function") >= 170  # all but the linked-list problems that convert values
    pairs = []
    for a, f in zip(asserted, called, strict=True):
        tests = f["reference"]["tests"]
        if tests["kind"] != "function":
            assert tests == a["reference"]["tests"]
            continue
        assert tests["class_name"] == "Solution"
        assert len(tests["cases"]) == a["reference"]["tests"]["code"].count("assert ")
        params = method_params(f["meta"]["starter_code"], tests["fn_name"])
        assert params is not None and all(len(c["args"]) == len(params) for c in tests["cases"])
        program = _LOOKUP.format(cases=json.dumps(tests["cases"]), params=params, fn=tests["fn_name"])
        pairs.append((program, a["reference"]["tests"]["code"]))
    assert run_assert_pairs(tmp_path, pairs) == {}


def test_leetcode_dataset_layout() -> None:
    # newfacade/LeetCodeDataset card: task_id, question_id, difficulty, tags, problem_description,
    # starter_code, estimated_date, prompt (imports and helpers), completion, entry_point, test, ...
    row = {"task_id": "two-sum", "question_id": 1, "difficulty": "Easy", "tags": ["Array", "Hash Table"],
           "problem_description": "Given an array of integers nums and an integer target, return indices of the "
                                  "two numbers such that they add up to target.",
           "starter_code": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n",
           "estimated_date": "2015-08-07",
           "prompt": "from typing import *\n\ndef list_node(values):\n    return values\n",
           "completion": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
                         "        seen = {}\n        for i, x in enumerate(nums):\n"
                         "            if target - x in seen:\n                return [seen[target - x], i]\n"
                         "            seen[x] = i\n",
           "entry_point": "Solution().twoSum",
           "test": "def check(candidate):\n    assert candidate(nums = [2,7,11,15], target = 9) == [0,1]\n"
                   "    assert candidate(nums = [3,3], target = 6) == [0,1]\n"}
    rec = convert_one("leetcode", row)
    assert rec["id"] == "leetcode/two-sum"
    assert rec["meta"]["tags"] == ["Array", "Hash Table"] and rec["meta"]["difficulty"] == "Easy"
    code = rec["reference"]["tests"]["code"]
    assert code.startswith("from typing import *") and code.rstrip().endswith("check(Solution().twoSum)")
    ns: dict[str, Any] = {}
    exec(rec["reference"]["solution"], ns)
    exec(code, ns)
    ns2: dict[str, Any] = {}
    exec(rec["reference"]["solution"].replace("return [seen[target - x], i]", "return [i]"), ns2)
    with pytest.raises(AssertionError):
        exec(code, ns2)


def test_leetcode_bad_rows() -> None:
    assert source_error("leetcode", {"task_id": "x", "prompt": '"""Add."""\nclass Solution:\n'}).field == "test"
    empty_docstring = {"task_id": "x", "prompt": '""" """\nclass S:\n', "test": "assert 1"}
    assert source_error("leetcode", empty_docstring).field == "prompt"
    assert source_error("leetcode", {"task_id": "x", "test": "assert 1"}).field == "prompt"
    assert source_error("leetcode", {"task_id": "x", "prompt": 3, "test": "assert 1"}).field == "prompt"


# ---- CodeContests --------------------------------------------------------------------------------------

# Rows in the schema of deepmind/code_contests on the Hugging Face Hub (dataset card "Data Fields"):
# class labels are ints (language 1 PYTHON = Python 2, 2 CPP, 3 PYTHON3, 4 JAVA; source 2 CODEFORCES;
# difficulty 7 = 'A'), tests are {input: [...], output: [...]}, solutions {language: [...], solution: [...]},
# time_limit a Duration {seconds, nanos}.
CODECONTESTS_ROW: dict[str, Any] = {
    "name": "1548_A. Web of Lies",
    "description": "There are n nobles, numbered from 1 to n. ...\n\nInput\n\nThe first line contains n.\n\n"
                   "Output\n\nPrint the answer.",
    "public_tests": {"input": ["4 3\n2 1\n1 3\n3 4\n"], "output": ["2\n"]},
    "private_tests": {"input": ["1 0\n", "2 1\n1 2\n"], "output": ["1\n", "1\n"]},
    "generated_tests": {"input": ["3 0\n"], "output": ["3\n"]},
    "source": 2,
    "difficulty": 7,
    "solutions": {"language": [2, 1, 3, 3],
                  "solution": ["int main() {}", "print input()", "print(int(input()))", "print(2)"]},
    "incorrect_solutions": {"language": [3], "solution": ["print(0)"]},
    "cf_contest_id": 1548, "cf_index": "A", "cf_points": 500.0, "cf_rating": 1400,
    "cf_tags": ["brute force", "graphs", ""],
    "is_description_translated": False, "untranslated_description": "",
    "time_limit": {"seconds": 2, "nanos": 500000000},
    "memory_limit_bytes": 256000000,
    "input_file": "", "output_file": "",
}


def test_codecontests_tests_solutions_and_limits() -> None:
    rec = convert_one("codecontests", CODECONTESTS_ROW)
    assert rec["id"] == "codecontests/1548_A. Web of Lies"
    cases = rec["reference"]["tests"]["cases"]
    assert rec["reference"]["tests"]["kind"] == "stdin"
    assert [c["input"] for c in cases] == ["4 3\n2 1\n1 3\n3 4\n", "1 0\n", "2 1\n1 2\n"]
    assert rec["reference"]["solution"] == "print(int(input()))"
    meta = rec["meta"]
    assert meta["time_limit_s"] == 2.5
    assert meta["memory_limit_mb"] == pytest.approx(244.14, abs=0.01)
    assert meta["difficulty"] == "A" and meta["origin"] == "codeforces" and meta["rating"] == 1400
    assert meta["tags"] == ["brute force", "graphs"] and meta["solution_language"] == "python3"
    assert "input_file" not in meta
    assert "standard input" in rec["prompt"] and rec["prompt"].startswith("There are n nobles")


def test_codecontests_options() -> None:
    public = convert_one("codecontests", CODECONTESTS_ROW, include_private_tests=False)
    assert len(public["reference"]["tests"]["cases"]) == 1
    everything = convert_one("codecontests", CODECONTESTS_ROW, include_generated_tests=True)
    assert everything["reference"]["tests"]["cases"][-1] == {"input": "3 0\n", "output": "3\n"}
    assert len(convert_one("codecontests", CODECONTESTS_ROW, max_tests=2)["reference"]["tests"]["cases"]) == 2
    cpp = convert_one("codecontests", CODECONTESTS_ROW, solution_language=["java", "cpp"])
    assert cpp["reference"]["solution"] == "int main() {}" and cpp["meta"]["solution_language"] == "cpp"
    assert "solution" not in convert_one("codecontests", CODECONTESTS_ROW, solution_language=["java"])["reference"]
    # class labels given as names (other exports) work the same
    named = {**CODECONTESTS_ROW, "solutions": {"language": ["CPP", "PYTHON3"], "solution": ["x", "print(1)"]},
             "difficulty": "MEDIUM", "source": "CODECHEF", "time_limit": None}
    rec = convert_one("codecontests", named)
    assert rec["reference"]["solution"] == "print(1)" and rec["meta"]["difficulty"] == "MEDIUM"
    assert "time_limit_s" not in rec["meta"]


def test_codecontests_bad_rows() -> None:
    row = dict(CODECONTESTS_ROW)
    del row["description"]
    assert source_error("codecontests", row).field == "description"
    bad = {**CODECONTESTS_ROW, "private_tests": {"input": ["1\n"], "output": []}}
    assert source_error("codecontests", bad).field == "private_tests"
    bad = {**CODECONTESTS_ROW, "public_tests": {"input": [1.5, ["a"]], "output": ["x", "y"]}}
    assert convert_one("codecontests", bad)["reference"]["tests"]["cases"][:2] == [
        {"input": "1.5", "output": "x"}, {"input": "a", "output": "y"}]
    bad = {**CODECONTESTS_ROW, "public_tests": {"input": [{"a": 1}], "output": ["x"]}}
    assert source_error("codecontests", bad).field == "public_tests.inputs[0]"


# ---- Codeforces (open-r1) ---------------------------------------------------------------------------------

# A row in the schema of open-r1/codeforces (dataset card "Dataset structure"): statement parts,
# `examples` and `official_tests` as lists of {input, output}, time limit in seconds, memory in MB.
CODEFORCES_ROW: dict[str, Any] = {
    "id": "2063/A", "aliases": None, "contest_id": "2063", "contest_name": "Codeforces Round 1000 (Div. 2)",
    "contest_type": "CF", "contest_start": 1737124500, "contest_start_year": 2025, "index": "A",
    "time_limit": 1.0, "memory_limit": 256.0, "title": "Minimal Coprime",
    "description": "A segment of positive integers [l,r] is called coprime if l and r are coprime.",
    "input_format": "Each test contains multiple test cases.", "output_format": "For each test case, output ...",
    "interaction_format": None,
    "examples": [{"input": "2\n1 2\n1 10\n", "output": "1\n9\n"}],
    "note": "In the first test case ...", "editorial": "It is easy to see ...", "rating": 800,
    "tags": ["math", "number theory"], "testset_size": 3,
    "official_tests": [{"input": "2\n1 2\n1 10\n", "output": "1\n9\n"}, {"input": "1\n5 5\n", "output": "0\n"}],
    "official_tests_complete": True, "input_mode": "stdio", "generated_checker": None, "executable": None,
}


def test_codeforces_statement_tests_and_meta() -> None:
    rec = convert_one("codeforces", CODEFORCES_ROW)
    assert rec["id"] == "codeforces/2063/A"
    prompt = rec["prompt"]
    assert prompt.startswith("Minimal Coprime\n\ntime limit per test: 1 second\nmemory limit per test: 256 megabytes")
    for part in ("A segment of positive", "Input\nEach test", "Output\nFor each", "Examples\nInput\n2\n1 2\n1 10\n"
                 "Output\n1\n9", "Note\nIn the first", "standard input"):
        assert part in prompt
    assert "It is easy to see" not in prompt  # the editorial is not part of the problem
    assert rec["reference"]["tests"] == {"kind": "stdin", "cases": CODEFORCES_ROW["official_tests"]}
    meta = rec["meta"]
    assert meta["rating"] == 800 and meta["tags"] == ["math", "number theory"]
    assert meta["time_limit_s"] == 1.0 and meta["memory_limit_mb"] == 256.0
    assert meta["url"] == "https://codeforces.com/problemset/problem/2063/A"
    assert meta["tests_complete"] is True and "checker" not in meta and "interactive" not in meta


def test_codeforces_variants() -> None:
    no_official = convert_one("codeforces", {**CODEFORCES_ROW, "official_tests": []})
    assert no_official["reference"]["tests"]["cases"] == CODEFORCES_ROW["examples"]
    assert "reference" not in convert_one("codeforces", {**CODEFORCES_ROW, "official_tests": None},
                                          examples_as_tests=False)
    interactive = convert_one("codeforces", {**CODEFORCES_ROW, "interaction_format": "You ask queries ..."})
    assert interactive["meta"]["interactive"] is True and "reference" not in interactive
    assert "Interaction\nYou ask queries" in interactive["prompt"]
    checker = convert_one("codeforces", {**CODEFORCES_ROW, "generated_checker": "def check(i, o, a): ..."})
    assert checker["meta"]["checker"].startswith("def check")
    verifiable = convert_one("codeforces", {"id": "1/A", "prompt": "Solve it.", "official_tests": []})
    assert verifiable["prompt"] == "Solve it." and "reference" not in verifiable
    assert source_error("codeforces", {"id": "1/A", "title": "t"}).field == "description"
    assert source_error("codeforces", {**CODEFORCES_ROW, "official_tests": [["1", "2"]]}).field == "official_tests[0]"
