"""Throughput of the `rules` stage (all rules on) on long reasoning traces: traces/s and MB/s.

Two measurements on the same N traces of ~5,000 words (default 10,000; target >= 500 traces/s on
a 2-core machine):

1. stage: `Rules.process_batch` in a pool of worker processes (one per core), the rules alone;
2. pipeline: `assay run` over a JSONL file (reading, shards over the worker pool, checks, writing
   output and stats), end to end.

Traces are distinct and non-repetitive: paragraphs of assay.rules.synth's generator, drawn without
replacement from a large pool, with a think block, a stated conclusion and a boxed answer.

    .venv/bin/python bench/bench_rules.py [--traces 10000] [--words 5000] [--workers 2] [--skip-pipeline]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Find the requested value for the configuration described above. Please reason step by step."


def make_traces(n: int, words: int, seed: int = 0) -> list[dict[str, Any]]:
    from assay.rules.synth import reasoning_text

    rnd = random.Random(seed)
    pool: list[str] = []
    s = 0
    need = max(2000, int(n * words / 80 * 0.05))  # reuse across traces is fine; within a trace it is not
    while len(pool) < need:
        pool.extend(reasoning_text(3000, seed * 100_000 + s).split("\n\n"))
        s += 1
    records = []
    for i in range(n):
        paras, count = [], 0
        for p in rnd.sample(pool, min(len(pool), words // 40)):
            paras.append(p)
            count += len(p.split())
            if count >= words:
                break
        answer = str(rnd.randint(1, 10_000))
        text = (f"<think>\n{chr(10).join(paras)}\n\nPutting it together, the answer is {answer}.\n</think>\n\n"
                f"Collecting the cases, the value is \\(\\boxed{{{answer}}}\\).")
        records.append({"id": f"bench/{i}", "domain": "math", "source": "synthetic", "prompt": PROMPT,
                        "responses": [{"text": text, "finish_reason": "stop"}]})
    return records


_STAGE: Any = None  # the stage, set up once per worker process


def _work(path: str) -> tuple[int, float, float]:
    global _STAGE
    from assay.stage import StageContext, build_stage

    if _STAGE is None:
        _STAGE = build_stage("rules", {})
        _STAGE.setup(StageContext(cache_dir=Path(tempfile.gettempdir())))
    st = _STAGE
    records = [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(records), st.batch_size):
        st.process_batch(records[i:i + st.batch_size])
    failed = sum(1 for r in records for resp in r["responses"] for c in resp["checks"].values() if not c["passed"])
    return failed, time.perf_counter() - t0, time.process_time() - c0


def bench_stage(chunks: list[Path], workers: int) -> tuple[float, int, float]:
    """(wall seconds, failed checks, CPU seconds of the workers inside the stage)."""
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_work, [str(chunks[0])] * workers))  # warm up: imports, models
        t0 = time.perf_counter()
        results = list(pool.map(_work, [str(c) for c in chunks]))
        return time.perf_counter() - t0, sum(r[0] for r in results), sum(r[2] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=10_000)
    ap.add_argument("--words", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))

    tmp = Path(tempfile.mkdtemp(prefix="bench-rules-"))
    try:
        t0 = time.perf_counter()
        records = make_traces(args.traces, args.words)
        chunk = 250
        chunks = []
        inp = tmp / "traces.jsonl"
        with open(inp, "wb") as all_out:
            for i in range(0, len(records), chunk):
                part = tmp / f"chunk-{i // chunk:05d}.jsonl"
                blob = b"".join(orjson.dumps(r) + b"\n" for r in records[i:i + chunk])
                part.write_bytes(blob)
                all_out.write(blob)
                chunks.append(part)
        text_mb = sum(len(r["responses"][0]["text"].encode()) for r in records) / 1e6
        mean_words = sum(len(r["responses"][0]["text"].split()) for r in records) / len(records)
        print(f"{len(records):,} traces, {mean_words:,.0f} words each on average, {text_mb:,.1f} MB of text "
              f"(generated in {time.perf_counter() - t0:.1f}s); {args.workers} workers; cpu_count {os.cpu_count()}")
        del records

        seconds, failed, cpu = bench_stage(chunks, args.workers)
        print(f"stage    : {args.traces / seconds:8,.0f} traces/s  {text_mb / seconds:6.1f} MB/s  "
              f"({seconds:.1f}s; {failed} failed checks on clean traces)")
        # CPU time is what the rules cost whatever else the machine runs; on idle cores it bounds throughput
        per = cpu / args.traces
        print(f"stage cpu: {per * 1e3:.2f} ms per trace -> {args.workers / per:,.0f} traces/s "
              f"({text_mb / args.traces * args.workers / per:.1f} MB/s) on {args.workers} idle cores")

        if not args.skip_pipeline:
            cfg = tmp / "pipeline.yaml"
            cfg.write_text(f"name: bench-rules\ninputs: [{inp}]\nshard_size: 500\nworkers: {args.workers}\n"
                           "stages:\n  - rules\n")
            t0 = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-m", "assay", "run", str(cfg), "--out", str(tmp / "run"), "-q",
                            "--no-report"],
                           check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # includes the run's worker processes
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            stats = json.loads((tmp / "run" / "stats.json").read_text())
            kept = stats["output"]["responses"]
            print(f"pipeline : {args.traces / wall:8,.0f} traces/s  {text_mb / wall:6.1f} MB/s  ({wall:.1f}s wall "
                  f"for `assay run`, {kept:,} of {args.traces:,} responses kept)")
            print(f"pipeline cpu: {cpu:.1f}s in all processes -> {args.traces * args.workers / cpu:,.0f} traces/s "
                  f"({text_mb * args.workers / cpu:.1f} MB/s) on {args.workers} idle cores")
            per_rule = {k[:-8]: v for k, v in stats["stages"][0]["metrics"].items() if k.endswith("_seconds")}
            total = sum(per_rule.values()) or 1
            print("time per rule: " + ", ".join(f"{k} {v / args.traces * 1e3:.2f} ms ({v / total:.0%})"
                                                for k, v in sorted(per_rule.items(), key=lambda kv: -kv[1])))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
