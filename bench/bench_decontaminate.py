"""Decontamination of a synthetic prompt corpus against all shared benchmark files: wall time, peak
memory, recall of planted contamination by kind, false positives on clean prompts.

    .venv/bin/python bench/bench_decontaminate.py [--n 100000] [--planted 1000]

Clean prompts are 2-3 sentences from data that is not a benchmark here (GSM8K, its model
solutions, IFEval prompts). Planted prompts copy a benchmark item (MATH-500, AIME/AMC,
HumanEval, MBPP, LeetCode, MMLU-STEM): verbatim inside a longer prompt, reformatted (synonyms,
renamed variables, numbers, LaTeX delimiters, case), or with a stock instruction appended.
`assay apply decontaminate` runs in a subprocess, first with a cold embedding cache (benchmark
items and prompts embedded), then warm. Target (issue 5): 100k prompts under 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "src"))

from bench_semantic import DATA, INSTRUCTIONS, make_corpus, near_copy, peak_rss_of  # noqa: E402

BENCHMARKS = ["math500/test.jsonl", "aime_amc", "humaneval/HumanEval.jsonl", "mbpp",
              "leetcode_contest_deepseek/leetcode_20240121_jul.jsonl", "mmlu_stem/test.jsonl"]


def benchmark_items() -> list[tuple[str, int, str]]:
    from assay.dedup.benchmarks import load_benchmarks

    return [(it.benchmark, it.index, it.text) for it in load_benchmarks([str(DATA / b) for b in BENCHMARKS])]


def plant(items: list[tuple[str, int, str]], n: int, rnd: random.Random) -> list[dict[str, Any]]:
    out = []
    for k, (bench, index, text) in enumerate(rnd.sample(items, n)):
        kind = ("verbatim", "reformatted", "instruction")[k % 3]
        if kind == "verbatim":
            prompt = f"Solve the following problem.\n\n{text}\n\nExplain your reasoning."
        elif kind == "reformatted":
            prompt = near_copy(text, rnd)
        else:
            prompt = f"{text}\n{rnd.choice(INSTRUCTIONS)}"
        out.append({"id": f"planted/{k}", "domain": "math", "prompt": prompt,
                    "meta": {"kind": kind, "benchmark": bench, "item": index}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="prompts in all (clean + planted)")
    ap.add_argument("--planted", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "decontaminate.json"))
    args = ap.parse_args()

    rnd = random.Random(3)
    clean, _ = make_corpus(args.n - args.planted, 0.0, seed=13, benchmarks=False)
    items = benchmark_items()
    planted = plant(items, args.planted, rnd)
    records = clean + planted
    rnd.shuffle(records)
    print(f"{len(records):,} prompts ({len(planted):,} planted) against {len(items):,} benchmark items", flush=True)
    result: dict[str, Any] = {"n": len(records), "planted": len(planted), "benchmark_items": len(items),
                              "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in.jsonl"
        with open(inp, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        out = Path(tmp) / "out.jsonl"
        env = {**os.environ, "ASSAY_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": str(REPO / "src")}
        cmd = [sys.executable, "-m", "assay", "apply", "decontaminate", str(inp), str(out), "--set",
               "benchmarks=" + ",".join(str(DATA / b) for b in BENCHMARKS), "--workers", str(args.workers), "-q"]
        for run in ("cold_cache", "warm_cache"):
            seconds, code, peak = peak_rss_of(cmd, env)
            result[run] = {"seconds": round(seconds, 1), "exit": code, "prompts_per_s": round(len(records) / seconds),
                           "peak_rss_mb": round(peak / 2**20)}
            print(run, result[run], flush=True)
        flagged: dict[str, dict[str, Any]] = {}
        for line in open(out):
            rec = json.loads(line)
            check = rec["checks"]["decontaminate"]
            if not check["passed"]:
                flagged[rec["id"]] = {**check, "meta": rec.get("meta")}
    by_kind: dict[str, list[int]] = {}
    right_item = 0
    text_of = {(b, i): t for b, i, t in items}
    for rec in planted:
        kind = rec["meta"]["kind"]
        hit = flagged.get(rec["id"])
        by_kind.setdefault(kind, [0, 0])
        by_kind[kind][1] += 1
        if hit:
            by_kind[kind][0] += 1
            # the same problem can sit in two files (MBPP's test split is inside mbpp.jsonl)
            right_item += text_of.get((hit["benchmark"], hit["item"])) == text_of[
                (rec["meta"]["benchmark"], rec["meta"]["item"])]
    false_pos = [f for i, f in flagged.items() if not i.startswith("planted/")]
    result["recall"] = round(sum(v[0] for v in by_kind.values()) / max(1, len(planted)), 4)
    result["recall_by_kind"] = {k: round(v[0] / max(1, v[1]), 4) for k, v in by_kind.items()}
    result["named_the_copied_item"] = round(right_item / max(1, sum(v[0] for v in by_kind.values())), 4)
    result["false_positives"] = len(false_pos)
    result["false_positive_examples"] = [f["reason"][:200] for f in false_pos[:5]]
    print(json.dumps({k: v for k, v in result.items() if k not in ("cold_cache", "warm_cache")}, indent=1))
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
