"""Benchmark of `assay report` and of `assay view`'s index on a large run.

Builds a run with `assay run` (collect + dedup-exact) over N synthetic records with four
reasoning-length responses each, then measures:
- report: wall time, records/s and MB/s over the run's files, peak RSS, HTML size;
- view: time to the first page (index still building), full index time, memory per item,
  a filtered page and a full-text search page.

    .venv/bin/python bench/bench_report.py [--records 20000] [--response-words 300]

Targets: the report reads a run at >= 20 MB/s with bounded memory (peak RSS independent of
the run's size); the viewer answers its first page in < 1 s and a filtered page in < 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import psutil

WORDS = ("so", "we", "compute", "the", "sum", "of", "terms", "then", "check", "that", "x", "=", "2", "+",
         "\\frac{1}{2}", "wait", "let", "me", "verify", "again", "therefore", "answer", "is")


def make_input(path: Path, n: int, words: int) -> None:
    rng = random.Random(0)
    with open(path, "wb") as f:
        for i in range(n):
            prompt = f"Problem {i}: " + " ".join(rng.choice(WORDS) for _ in range(30 + i % 60))
            responses = [{"text": "<think>\n" + " ".join(rng.choice(WORDS) for _ in range(words + rng.randrange(words)))
                          + f"\n</think>\nThe answer is \\boxed{{{i % 100}}}.", "model": "bench-teacher",
                          "finish_reason": "length" if rng.random() < 0.05 else "stop",
                          "checks": {"reward": {"passed": True, "score": round(rng.random(), 3)}}}
                         for _ in range(4)]
            rec = {"id": f"bench/{i}", "domain": "math", "source": f"src{i % 5}", "prompt": prompt if i % 50 else "hi",
                   "reference": {"answer": str(i % 100)}, "labels": {"difficulty": round(rng.random(), 2),
                                                                     "category": f"cat{i % 7}"},
                   "responses": responses}
            f.write(orjson.dumps(rec) + b"\n")
            if i % 20 == 7:  # exact duplicates for dedup-exact
                f.write(orjson.dumps({**rec, "id": f"bench/{i}-dup"}) + b"\n")


def peak_rss(proc: subprocess.Popen[bytes]) -> tuple[float, int]:
    ps = psutil.Process(proc.pid)
    peak = 0
    t0 = time.perf_counter()
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True)))
        except psutil.Error:
            pass
        time.sleep(0.05)
    return time.perf_counter() - t0, peak


def run_size(run: Path) -> int:
    return sum(p.stat().st_size for sub in ("output", "rejected", "stages/00-read/shards")
               for p in (run / sub).glob("*.jsonl"))


def bench_report(run: Path) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-m", "assay", "report", str(run)], stdout=subprocess.DEVNULL)
    wall, peak = peak_rss(proc)
    stats = json.loads((run / "stats.json").read_text())
    size = run_size(run)
    return {"report_s": round(wall, 2), "records_read_per_s": round(stats["input"]["records"] / wall),
            "MB_per_s": round(size / wall / 1e6, 1), "peak_rss_MB": round(peak / 1e6), "run_MB": round(size / 1e6),
            "html_KB": round((run / "report.html").stat().st_size / 1e3)}


def bench_view(run: Path) -> dict[str, float]:
    from assay.report.viewer.server import start_server

    t0 = time.perf_counter()
    srv = start_server(run, port=0)

    def get(path: str) -> float:
        t = time.perf_counter()
        with urllib.request.urlopen(srv.url.rstrip("/") + path, timeout=60) as resp:
            resp.read()
        return time.perf_counter() - t

    get("/")
    first = time.perf_counter() - t0  # from a cold start: open the run, start indexing, answer
    srv.index.wait()
    indexed = time.perf_counter() - t0
    cols, posts = srv.index.snapshot()
    rows = len(cols["offset"])
    per_item = (sum(a.nbytes for a in cols.values()) + sum(p.nbytes for p in posts.values())) / max(rows, 1)
    out = {"first_page_s": round(first, 3), "index_s": round(indexed, 2), "items": rows,
           "bytes_per_item": round(per_item, 1), "filtered_page_s": round(get("/?source=src3&start=2000"), 3),
           "label_page_s": round(get("/?label=labels.category%3Dcat2"), 3),
           "search_page_s": round(get("/?q=bench%2F1999"), 3), "item_page_s": round(get("/item?row=123"), 3)}
    srv.shutdown()
    srv.server_close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--response-words", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None, help="build the run here (reused when present)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        run = base / "run"
        if not (run / "stats.json").exists():
            base.mkdir(parents=True, exist_ok=True)
            make_input(base / "in.jsonl", args.records, args.response_words)
            (base / "p.yaml").write_text(json.dumps({
                "name": "bench-report", "inputs": [{"path": str(base / "in.jsonl")}], "shard_size": 5000,
                "stages": [{"collect": {"per_domain": {"math": {"min_prompt_chars": 5}}}}, {"dedup-exact": {}}]}))
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "assay", "run", str(base / "p.yaml"), "--out", str(run), "--quiet"],
                           check=True)
            print(f"built run: {args.records:,} records in {time.perf_counter() - t:.1f}s", flush=True)
        threading.current_thread().name = "bench"
        print(json.dumps({"records": args.records, **bench_report(run)}))
        print(json.dumps({"records": args.records, **bench_view(run)}))


if __name__ == "__main__":
    main()
