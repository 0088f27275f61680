"""Benchmark of the `math-verify` stage: agreement with human/grader labels and speed, next to the
plain math-verify loop a user writes by hand, on the same items in the same run.

Data (../shared/data, see its README):
- gsm8k_model_solutions: 1,319 GSM8K questions x 4 GPT-3 solutions labelled `is_correct`;
  the reference is the number after "A:" on the ground truth's last line, the response is the
  whole solution.
- qwen25math_rm_maj_cot100: 100 MATH problems x 8 Qwen2.5-Math responses labelled `score`;
  the reference is `gt`, the response the whole chain of thought (`code[i]`).
- math_verify_pairs: Math-Verify's own regression pairs (gold, pred, expected).

Plain baseline: `math_verify.verify(math_verify.parse(gold), math_verify.parse(response))` with
default settings, single-threaded in the main thread (where its SIGALRM timeouts work).
assay: the `math-verify` stage itself (extraction, fast paths, decisions of identical pairs once,
worker pool with hard deadlines), persistent cache off so every pair is really decided.

    .venv/bin/python bench/bench_math_verify.py [--workers 2] [--limit N] [--disagreements FILE]

Targets (issue 3): assay's agreement strictly higher on each set; items/s at least 2x plain.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


@dataclass
class Item:
    set: str
    id: str
    gold: str
    response: str
    label: bool


def data_dir(arg: str | None) -> Path:
    for cand in ([Path(arg)] if arg else []) + [REPO.parent / "shared" / "data", Path("/work/shared/data")]:
        if cand.is_dir():
            return cand
    raise SystemExit("shared data not found; pass --data")


def load_gsm8k(d: Path) -> list[Item]:
    items = []
    path = d / "gsm8k_model_solutions" / "example_model_solutions.jsonl"
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        gold = row["ground_truth"].rsplit("A:", 1)[1].strip()
        for model in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            sol = row[model]
            items.append(Item("gsm8k_model_solutions", f"{n}/{model}", gold, sol["solution"], bool(sol["is_correct"])))
    return items


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else ast.literal_eval(v)


def load_qwen(d: Path) -> list[Item]:
    items = []
    path = d / "qwen25math_rm_maj_cot100" / "math_cot_100.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for i, (resp, score) in enumerate(zip(_as_list(row["code"]), _as_list(row["score"]), strict=True)):
            items.append(Item("qwen25math_rm_maj_cot100", f"{row['idx']}/{i}", str(row["gt"]), resp, bool(score)))
    return items


def load_pairs(d: Path) -> list[Item]:
    path = d / "math_verify_pairs" / "math_verify_test_pairs.jsonl"
    return [Item("math_verify_pairs", str(n), row["gold"], row["pred"], bool(row["expected"]))
            for n, row in enumerate(json.loads(x) for x in path.read_text(encoding="utf-8").splitlines())]


# ---- the two contenders ---------------------------------------------------------------------------

@dataclass
class Timing:
    wall: float
    cpu_main: float  # CPU seconds of this process
    cpu_workers: float = 0.0  # CPU seconds of the worker processes (and the fork server)

    def idle_seconds(self, cores: int) -> float:
        """Projected wall time on `cores` idle cores: the work spread over the cores, but never
        less than this process's own serial part."""
        return max(self.cpu_main, (self.cpu_main + self.cpu_workers) / cores)


def run_plain(items: list[Item]) -> tuple[list[bool], Timing]:
    from math_verify import parse, verify

    started, cpu = time.perf_counter(), time.process_time()
    out = [bool(verify(parse(it.gold), parse(it.response))) for it in items]
    return out, Timing(time.perf_counter() - started, time.process_time() - cpu)


def _forkserver_cpu() -> float:
    """CPU seconds of multiprocessing's fork server and of the workers it forked and reaped."""
    from multiprocessing import forkserver

    import psutil

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if not pid:
        return 0.0
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


def run_assay(items: list[Item], workers: int) -> tuple[list[dict[str, Any]], Timing]:
    from assay.stage import StageContext, build_stage, registry

    registry()  # importing every stage module is the CLI's start-up, not this stage's work
    fs_before = _forkserver_cpu()
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        st = build_stage("math-verify", {"persistent_cache": False, "workers": workers})
        st.setup(StageContext(cache_dir=Path(tmp), workers=workers))
        records = [{"id": it.id, "domain": "math", "prompt": "-", "reference": {"answer": it.gold},
                    "responses": [{"text": it.response}]} for it in items]
        try:
            for i in range(0, len(records), st.batch_size):
                st.process_batch(records[i:i + st.batch_size])
        finally:
            st.teardown()
    timing = Timing(time.perf_counter() - started, time.process_time() - cpu)
    time.sleep(0.3)  # let the fork server reap the retired workers
    timing.cpu_workers = _forkserver_cpu() - fs_before
    return [r["responses"][0]["checks"]["math_verify"] for r in records], timing


# ---- report ------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="the shared data folder (default ../shared/data)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N items of each set (quick runs)")
    ap.add_argument("--disagreements", default=None, help="write assay's disagreements with the labels here (md)")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # math-verify warns once per disabled timeout and per timeout

    d = data_dir(args.data)
    sets = [load_gsm8k(d), load_qwen(d), load_pairs(d)]
    if args.limit:
        sets = [s[: args.limit] for s in sets]
    rows, report, wrong = [], {}, []
    totals = {"plain": Timing(0, 0), "assay": Timing(0, 0)}
    n_all = 0
    for items in sets:
        name = items[0].set
        plain, tp = run_plain(items)
        checks, ta = run_assay(items, args.workers)
        labels = [it.label for it in items]
        agree_plain = sum(p == lab for p, lab in zip(plain, labels, strict=True))
        agree_assay = sum(c["passed"] == lab for c, lab in zip(checks, labels, strict=True))
        for key, t in (("plain", tp), ("assay", ta)):
            acc = totals[key]
            acc.wall, acc.cpu_main, acc.cpu_workers = (acc.wall + t.wall, acc.cpu_main + t.cpu_main,
                                                       acc.cpu_workers + t.cpu_workers)
        n = len(items)
        n_all += n
        report[name] = _numbers(n, tp, ta, args.workers) | {
            "agree_plain": agree_plain, "agree_assay": agree_assay,
            "agreement_plain": round(agree_plain / n, 4), "agreement_assay": round(agree_assay / n, 4)}
        rows.append((name, n, agree_plain, agree_assay, tp, ta))
        for it, c, p in zip(items, checks, plain, strict=True):
            if c["passed"] != it.label:
                wrong.append((it, c, p))
    print(f"{'set':26} {'items':>6} {'plain agree':>17} {'assay agree':>17} {'plain it/s':>10} {'assay it/s':>10} "
          f"{'speedup':>8} {'idle-core speedup':>18}")
    for name, n, ap_, aa, tp, ta in [*rows, ("all", n_all, None, None, totals["plain"], totals["assay"])]:
        agree = (f"{ap_:5d} ({ap_ / n:7.2%})", f"{aa:5d} ({aa / n:7.2%})") if ap_ is not None else ("", "")
        idle = tp.idle_seconds(1) / ta.idle_seconds(args.workers)
        print(f"{name:26} {n:6d} {agree[0]:>17} {agree[1]:>17} {n / tp.wall:10.1f} {n / ta.wall:10.1f} "
              f"{tp.wall / ta.wall:7.2f}x {idle:17.2f}x")
    print(f"CPU seconds: plain {totals['plain'].cpu_main:.1f}; assay {totals['assay'].cpu_main:.1f} in this process "
          f"+ {totals['assay'].cpu_workers:.1f} in {args.workers} workers. The idle-core speedup projects both on "
          f"idle cores from CPU time (plain: 1 core; assay: {args.workers}).")
    report["all"] = _numbers(n_all, totals["plain"], totals["assay"], args.workers)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.disagreements:
        write_disagreements(Path(args.disagreements), wrong)


def _numbers(n: int, tp: Timing, ta: Timing, workers: int) -> dict[str, Any]:
    return {"items": n, "plain_items_per_s": round(n / tp.wall, 1), "assay_items_per_s": round(n / ta.wall, 1),
            "speedup": round(tp.wall / ta.wall, 2),
            "idle_core_speedup": round(tp.idle_seconds(1) / ta.idle_seconds(workers), 2),
            "cpu_s": {"plain": round(tp.cpu_main, 2), "assay_main": round(ta.cpu_main, 2),
                      "assay_workers": round(ta.cpu_workers, 2)}, "workers": workers}


def write_disagreements(path: Path, wrong: list[tuple[Item, dict[str, Any], bool]]) -> None:
    def cell(s: Any, n: int = 90) -> str:
        text = " ".join(str(s).split())
        text = text if len(text) <= n else text[: n - 3] + "..."
        return text.replace("|", "\\|")

    lines = ["| set | id | label | assay | plain | reference | extracted answer | code: reason |",
             "|---|---|---|---|---|---|---|---|"]
    for it, c, p in wrong:
        lines.append(f"| {it.set} | {it.id} | {int(it.label)} | {int(c['passed'])} | {int(p)} | {cell(it.gold, 40)} | "
                     f"{cell(c.get('answer'), 40)} | {c.get('code')}: {cell(c.get('reason'), 70)} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
