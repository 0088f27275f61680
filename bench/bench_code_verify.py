"""code-verify: accuracy on real data and test runs/s with full isolation vs a bare python3 per test.

Accuracy (all with the sandbox on):
- HumanEval (164) and MBPP (974): every reference solution passes, and a broken variant of each (the
  reference with its return value changed) fails;
- APPS (CodeRL sample): the 83 labelled model solutions get their labels (all tests run; a label is
  True = all pass, False = a wrong answer, -1/-2 = an error, compared as passed / wrong / error).

Speed, on the same tests in the same run: assay's code-verify (bubblewrap, rlimits, one sandbox per
candidate, all its tests in it) against one bare `python3` subprocess per test (the candidate plus
that one test, no isolation at all), both with the same number of parallel workers.

    .venv/bin/python bench/bench_code_verify.py [--workers 2] [--sample 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from assay.sources import build_source  # noqa: E402
from assay.sources.base import RowAt  # noqa: E402
from assay.stage import StageContext, build_stage  # noqa: E402
from assay.verify.code_tests import split_assert_code  # noqa: E402

DATA = Path(os.environ.get("ASSAY_SHARED_DATA", REPO.parent / "shared" / "data"))

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


def rows(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def convert(source: str, path: Path) -> list[dict[str, Any]]:
    src = build_source(source)
    return [src.convert(r, RowAt(str(path), i + 1, i)) for i, r in enumerate(rows(path))]


def fenced(code: str) -> dict[str, Any]:
    return {"text": f"```python\n{code.strip(chr(10))}\n```\n"}


def make_stage(cache: Path, workers: int, **params: Any):
    st = build_stage("code-verify", {"workers": workers, **params})
    st.setup(StageContext(cache_dir=cache))
    return st


def judge(st, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
    items = [(rec, resp) for rec in records for resp in rec["responses"]]
    t = time.perf_counter()
    out = [v.to_dict() for v in st.check_batch(items)]
    return out, time.perf_counter() - t


# ---- accuracy ----------------------------------------------------------------------------------------


def reference_and_broken(st, name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    for rec in records:
        sol, entry = rec["reference"]["solution"], entry_of(rec)
        rec["responses"] = [fenced(sol), fenced(sol + BREAK.format(name=entry))]
    res, secs = judge(st, records)
    good, bad = res[0::2], res[1::2]
    return {
        "problems": len(records),
        "reference_pass": sum(r["passed"] for r in good),
        "broken_fail": sum(not r["passed"] for r in bad),
        "reference_failures": [(rec["id"], r["reason"]) for rec, r in zip(records, good, strict=True)
                               if not r["passed"]],
        "broken_passes": [rec["id"] for rec, r in zip(records, bad, strict=True) if r["passed"]],
        "seconds": round(secs, 2),
    }


def label_class(letters: str) -> Any:
    if set(letters) & set("CRTMO"):
        return "error"
    return False if "W" in letters else True


def apps_labels(cache: Path, workers: int) -> dict[str, Any]:
    records = convert("apps", DATA / "apps_coderl_sample" / "apps_train_sample.jsonl")
    for rec in records:
        rec["responses"] = [r for r in rec["responses"] if r["meta"]["origin"] == "generated_solutions"]
    st = make_stage(cache, workers, stop_at_first_failure=False)  # CodeRL's labels come from all tests
    try:
        res, secs = judge(st, records)
    finally:
        st.teardown()
    labels = [resp["meta"]["result"] for rec in records for resp in rec["responses"]]
    agree, disagree = 0, []
    for label, r in zip(labels, res, strict=True):
        want = label if isinstance(label, bool) else "error"
        if label_class(r["verdicts"]) == want:
            agree += 1
        else:
            disagree.append((label, r["code"], r["reason"]))
    return {"solutions": len(labels), "agree": agree, "disagree": disagree, "seconds": round(secs, 2)}


# ---- speed -------------------------------------------------------------------------------------------


def workload(sample: int) -> tuple[list[dict[str, Any]], list[tuple[str, str | None, str | None]]]:
    """Records with one passing candidate each, and the same tests as bare programs:
    (program, stdin or None, expected stdout or None)."""
    records: list[dict[str, Any]] = []
    he = convert("humaneval", DATA / "humaneval" / "HumanEval.jsonl")
    mb = convert("mbpp", DATA / "mbpp" / "mbpp.jsonl")[::sample]
    for rec in he + mb:
        rec["responses"] = [fenced(rec["reference"]["solution"])]
        records.append(rec)
    apps = [r for r in convert("apps", DATA / "apps_coderl_sample" / "apps_train_sample.jsonl")
            if r["reference"]["tests"]["kind"] == "stdin"]
    src_rows = {f"apps/{r['problem_id']}": r for r in rows(DATA / "apps_coderl_sample" / "apps_train_sample.jsonl")}
    for rec in apps:  # every known-correct human solution of the stdin problems
        for k, sol in enumerate(src_rows[rec["id"]]["solutions"]):
            records.append({**rec, "id": f"{rec['id']}/{k}", "responses": [fenced(sol)]})
    bare: list[tuple[str, str | None, str | None]] = []
    for rec in records:
        code = rec["responses"][0]["text"].split("```python\n", 1)[1].rsplit("\n```", 1)[0] + "\n"
        tests = rec["reference"]["tests"]
        if tests["kind"] == "stdin":
            bare += [(code, c["input"], c["output"]) for c in tests["cases"]]
        else:
            units = split_assert_code(tests["code"], tests.get("entry_point"))
            setup = "\n".join(u["code"] for u in units if not u["case"])
            bare += [(f"{code}\n{setup}\n{u['code']}\n", None, None) for u in units if u["case"]]
    return records, bare


def run_bare(bare: list[tuple[str, str | None, str | None]], workers: int, tmp: Path) -> tuple[int, int, float]:
    """One `python3 prog.py` per test (what a runner without a sandbox does). (runs, passed, seconds)"""
    python = os.path.realpath(sys.executable)
    paths = []
    for i, (prog, _, _) in enumerate(bare):
        p = tmp / f"t{i}.py"
        p.write_text(prog, encoding="utf-8")
        paths.append(p)

    def one(i: int) -> bool:
        _, given, expected = bare[i]
        try:
            proc = subprocess.run([python, str(paths[i])], input=given or "", capture_output=True, text=True,
                                  timeout=20, cwd=tmp)
        except subprocess.TimeoutExpired:
            return False
        if proc.returncode != 0:
            return False
        return expected is None or proc.stdout.split() == expected.split()

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        ok = sum(pool.map(one, range(len(bare))))
    return len(bare), ok, time.perf_counter() - t


def speed(records: list[dict[str, Any]], bare: list[tuple[str, str | None, str | None]], tmp: Path,
          workers: int, repeat: int) -> dict[str, Any]:
    """assay then bare, `repeat` times alternating (on a shared machine the load moves); the median of each."""
    tmp.mkdir(parents=True)
    a_secs, b_secs = [], []
    for r in range(repeat):
        st = make_stage(tmp / "cache", workers)
        try:
            before = st.stats().get("tests_run", 0)
            res, secs = judge(st, records)
            runs = st.stats()["tests_run"] - before
        finally:
            st.teardown()
        a_secs.append(secs)
        work = tmp / f"bare{r}"
        work.mkdir()
        b_runs, b_ok, secs = run_bare(bare, workers, work)
        b_secs.append(secs)
    a, b = statistics.median(a_secs), statistics.median(b_secs)
    return {"candidates": len(records), "candidates_passed": sum(r["passed"] for r in res),
            "assay_test_runs": runs, "assay_seconds": round(a, 2), "assay_runs_per_s": round(runs / a, 1),
            "bare_test_runs": b_runs, "bare_passed": b_ok, "bare_seconds": round(b, 2),
            "bare_runs_per_s": round(b_runs / b, 1), "speedup": round((runs / a) / (b_runs / b), 2),
            "repeats": repeat}


def accuracy(out: dict[str, Any], tmp: Path, workers: int) -> None:
    st = make_stage(tmp / "cache", workers)
    try:
        out["sandbox_mode"] = st._sandbox.mode
        print(f"sandbox mode: {st._sandbox.mode}, workers: {workers}, load: {os.getloadavg()}")
        out["humaneval"] = reference_and_broken(st, "humaneval",
                                                convert("humaneval", DATA / "humaneval" / "HumanEval.jsonl"))
        print("humaneval", {k: v for k, v in out["humaneval"].items() if k != "broken_passes"})
        out["mbpp"] = reference_and_broken(st, "mbpp", convert("mbpp", DATA / "mbpp" / "mbpp.jsonl"))
        print("mbpp", {k: v for k, v in out["mbpp"].items() if k != "broken_passes"})
    finally:
        st.teardown()
    out["apps"] = apps_labels(tmp / "cache", workers)
    print("apps", out["apps"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--sample", type=int, default=3, help="speed: every Nth MBPP problem (accuracy uses all)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--speed-only", action="store_true", help="skip the accuracy part")
    ap.add_argument("--repeat", type=int, default=1, help="speed: alternate assay and bare this many times, "
                    "report medians (for a busy machine)")
    args = ap.parse_args()
    out: dict[str, Any] = {"workers": args.workers, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not args.speed_only:
            accuracy(out, tmp, args.workers)
        records, bare = workload(args.sample)
        out["speed"] = {}
        for kind in ("assert", "stdin"):  # HumanEval + MBPP asserts; APPS stdin programs
            recs = [r for r in records if (r["reference"]["tests"]["kind"] == "stdin") == (kind == "stdin")]
            progs = [b for b in bare if (b[1] is not None) == (kind == "stdin")]
            out["speed"][kind] = speed(recs, progs, tmp / kind, args.workers, args.repeat)
            print(f"speed ({kind} tests)", out["speed"][kind])
        a, s_ = out["speed"]["assert"], out["speed"]["stdin"]
        runs, secs = a["assay_test_runs"] + s_["assay_test_runs"], a["assay_seconds"] + s_["assay_seconds"]
        b_runs, b_secs = a["bare_test_runs"] + s_["bare_test_runs"], a["bare_seconds"] + s_["bare_seconds"]
        out["speed"]["all"] = {"assay_runs_per_s": round(runs / secs, 1), "bare_runs_per_s": round(b_runs / b_secs, 1),
                               "speedup": round((runs / secs) / (b_runs / b_secs), 2)}
        print("speed (all)", out["speed"]["all"])
    out["load_after"] = os.getloadavg()
    print(f"load average after: {out['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
