"""Benchmark of the runner itself: read, two trivial stages (collect, sample), write.

Prints records/s and peak memory (RSS of the whole process tree) for 200k and 1M synthetic
records, next to a baseline in the same command: the plain loop a user would write by hand
(json.loads, the same two decisions, json.dumps) in one process.

    .venv/bin/python bench/bench_runner.py [--sizes 200000,1000000] [--workers 2]

Targets (issue 2, this 2-core machine): >= 50,000 records/s end to end; peak memory < 1 GB and
the same at 200k and 1M records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import psutil

DOMAINS = ("math", "code", "science", "chat")


def make_input(path: Path, n: int) -> None:
    with open(path, "wb") as f:
        for i in range(n):
            rec = {"id": f"syn/{i}", "domain": DOMAINS[i % 4], "source": "synthetic",
                   "prompt": f"Problem {i}: find the value of {i} times {i % 17} plus {i % 5}.",
                   "reference": {"answer": str(i * (i % 17) + i % 5)}}
            if i % 3 == 0:
                rec["responses"] = [{"text": f"We compute. The answer is {i * (i % 17) + i % 5}."}]
            f.write(orjson.dumps(rec) + b"\n")


def peak_rss_of(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run cmd; return (seconds, exit code, peak RSS in bytes summed over its process tree)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = sum(p.memory_info().rss for p in procs if p.is_running())
                peak = max(peak, total)
            except psutil.Error:
                pass
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode:
        sys.stderr.write(err.decode())
    return time.perf_counter() - t0, proc.returncode, peak


def baseline(inp: Path, out: Path) -> None:
    """What a user writes by hand: one process, json in, the same two decisions, json out."""
    with open(inp, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as w:
        for line in f:
            rec = json.loads(line)
            if not (1 <= len(rec["prompt"])):
                continue
            digest = hashlib.blake2b(f"0\x00{rec['id']}".encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") / 2**64 >= 1.0:
                continue
            rec.setdefault("checks", {})["collect"] = {"passed": True}
            w.write(json.dumps(rec) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="200000,1000000")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--shard-size", type=int, default=20000)
    ap.add_argument("--baseline", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        baseline(Path(args.baseline[0]), Path(args.baseline[1]))
        return
    env = {**os.environ, "ASSAY_CACHE_DIR": tempfile.mkdtemp()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        for n in (int(s) for s in args.sizes.split(",")):
            inp = tmpd / f"in-{n}.jsonl"
            make_input(inp, n)
            cfg = tmpd / f"p-{n}.yaml"
            cfg.write_text(f"inputs: [{inp}]\nshard_size: {args.shard_size}\nworkers: {args.workers}\n"
                           "stages:\n  - collect\n  - sample: {fraction: 1.0}\n")
            out = tmpd / f"run-{n}"
            secs, rc, peak = peak_rss_of([sys.executable, "-m", "assay", "run", str(cfg), "--out", str(out),
                                          "--quiet", "--fresh", "--no-report"], env)
            if rc:
                raise SystemExit(f"assay run failed on {n} records")
            stats = json.loads((out / "stats.json").read_text())
            assert stats["output"]["records"] == n, stats["output"]
            b_cmd = [sys.executable, __file__, "--baseline", str(inp), str(tmpd / "baseline.jsonl")]
            b_secs, b_rc, b_peak = peak_rss_of(b_cmd, env)
            assert b_rc == 0
            rows.append((n, secs, peak, b_secs, b_peak, stats["wall_seconds"]))
            for p in out.rglob("*"):
                if p.is_file():
                    p.unlink()
    print(f"{'records':>10} {'assay rec/s':>12} {'peak RSS':>10} {'baseline rec/s':>15} {'baseline RSS':>13} "
          f"{'speed ratio':>12}")
    for n, secs, peak, b_secs, b_peak, _wall in rows:
        print(f"{n:>10,} {n / secs:>12,.0f} {peak / 2**20:>8,.0f}MB {n / b_secs:>15,.0f} {b_peak / 2**20:>11,.0f}MB "
              f"{b_secs / secs:>11.2f}x")
    print("(assay: whole command incl. interpreter start-up, read + collect + sample + write, "
          f"{args.workers} workers; baseline: hand-written json loop, 1 process)")


if __name__ == "__main__":
    main()
