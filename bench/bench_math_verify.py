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

def run_plain(items: list[Item]) -> tuple[list[bool], float]:
    from math_verify import parse, verify

    started = time.perf_counter()
    out = [bool(verify(parse(it.gold), parse(it.response))) for it in items]
    return out, time.perf_counter() - started


def run_assay(items: list[Item], workers: int) -> tuple[list[dict[str, Any]], float]:
    from assay.stage import StageContext, build_stage, registry

    registry()  # importing every stage module is the CLI's start-up, not this stage's work
    started = time.perf_counter()
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
    seconds = time.perf_counter() - started
    return [r["responses"][0]["checks"]["math_verify"] for r in records], seconds


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
    total_plain_s = total_assay_s = 0.0
    n_all = 0
    for items in sets:
        name = items[0].set
        plain, plain_s = run_plain(items)
        checks, assay_s = run_assay(items, args.workers)
        labels = [it.label for it in items]
        acc_plain = sum(p == lab for p, lab in zip(plain, labels, strict=True)) / len(items)
        acc_assay = sum(c["passed"] == lab for c, lab in zip(checks, labels, strict=True)) / len(items)
        total_plain_s += plain_s
        total_assay_s += assay_s
        n_all += len(items)
        report[name] = {"items": len(items), "agreement_plain": round(acc_plain, 4),
                        "agreement_assay": round(acc_assay, 4), "plain_items_per_s": round(len(items) / plain_s, 1),
                        "assay_items_per_s": round(len(items) / assay_s, 1), "speedup": round(plain_s / assay_s, 2)}
        rows.append((name, len(items), acc_plain, acc_assay, len(items) / plain_s, len(items) / assay_s,
                     plain_s / assay_s))
        for it, c, p in zip(items, checks, plain, strict=True):
            if c["passed"] != it.label:
                wrong.append((it, c, p))
    print(f"{'set':28} {'items':>6} {'plain agree':>12} {'assay agree':>12} {'plain it/s':>11} {'assay it/s':>11} "
          f"{'speedup':>8}")
    for name, n, ap_, aa, ps, as_, sp in rows:
        print(f"{name:28} {n:6d} {ap_:12.2%} {aa:12.2%} {ps:11.1f} {as_:11.1f} {sp:7.2f}x")
    print(f"{'all':28} {n_all:6d} {'':12} {'':12} {n_all / total_plain_s:11.1f} {n_all / total_assay_s:11.1f} "
          f"{total_plain_s / total_assay_s:7.2f}x")
    report["all"] = {"items": n_all, "plain_items_per_s": round(n_all / total_plain_s, 1),
                     "assay_items_per_s": round(n_all / total_assay_s, 1),
                     "speedup": round(total_plain_s / total_assay_s, 2), "workers": args.workers}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.disagreements:
        write_disagreements(Path(args.disagreements), wrong)


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
