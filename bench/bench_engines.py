"""Local engine vs Ray engine on the same pipeline and the same 100k records, on this machine.

For each engine: `assay run` in a fresh process (the Ray engine starts its own local cluster
unless --address names one), timed end to end, with the peak RSS of the whole process tree
(driver, workers, and for Ray the raylet, GCS and object store processes it started). A run
over a one-record input measures each engine's fixed start-up cost; "steady" rates subtract it.
Outputs of the two engines are checked to be identical.

    .venv/bin/python bench/bench_engines.py [--records 100000] [--workers 2] [--address auto]
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
WORDS = ("prime", "triangle", "sum", "integer", "angle", "probability", "vector", "matrix", "root", "digit",
         "circle", "sequence", "remainder", "area", "volume", "ratio", "graph", "string", "array", "tree")

PIPELINE = """
name: bench-engines
seed: 1
inputs: [{path: INPUT}]
shard_size: 10000
stages:
  - collect
  - unique-ids
  - dedup-exact
  - dedup-minhash: {threshold: 0.8}
  - sample: {fraction: 0.9}
  - filter: {expr: 'labels.verifiable'}
"""


def make_input(path: Path, n: int) -> None:
    """Synthetic problems of ~30 words; 5% exact copies and 5% one-word edits of earlier ones."""
    with open(path, "wb") as f:
        for i in range(n):
            h = hashlib.blake2b(str(i).encode(), digest_size=32).digest()
            words = [WORDS[b % len(WORDS)] for b in h]
            prompt = f"Problem {i}: " + " ".join(words) + f". Compute {i % 97} plus {i % 13}."
            if i % 20 == 5 and i > 100:
                prompt = f"Problem {i - 100}: " + " ".join(words) + f". Compute {(i - 100) % 97} plus {(i - 100) % 13}."
            rec = {"id": f"b/{i}", "domain": DOMAINS[i % 4], "source": "synthetic", "prompt": prompt}
            if i % 4 != 3:
                rec["reference"] = {"answer": str(i % 97 + i % 13)}
            f.write(orjson.dumps(rec) + b"\n")


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """(seconds, exit code, peak RSS in bytes of the process tree, stderr)."""
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
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    stop.set()
    t.join()
    return time.perf_counter() - t0, proc.returncode, peak, err.decode(errors="replace")


def assay_cmd(cfg: Path, out: Path, engine: str, workers: int, address: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "assay", "run", str(cfg), "--out", str(out), "--quiet", "--workers", str(workers),
           "--engine", engine, "--no-report"]
    if engine == "ray" and address:
        cmd += ["--address", address]
    return cmd


def output_digest(run_dir: Path) -> str:
    h = hashlib.sha256()
    for part in sorted((run_dir / "output").glob("*.jsonl")) + sorted((run_dir / "rejected").glob("*.jsonl")):
        h.update(part.read_bytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: a private local one)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()

    env = {**os.environ, "ASSAY_CACHE_DIR": tempfile.mkdtemp(prefix="assay-bench-cache-")}
    with tempfile.TemporaryDirectory(prefix="assay-bench-engines-") as tmp:
        work = Path(tmp)
        make_input(work / "big.jsonl", args.records)
        make_input(work / "one.jsonl", 1)
        results = {}
        # ray: per-record segments as streamed Ray tasks; ray-data: as Ray Data map_batches
        for engine, extra in (("local", {}), ("ray", {}), ("ray-data", {"ASSAY_RAY_POOL": "data"})):
            row = {}
            for name, data in (("startup", "one.jsonl"), ("full", "big.jsonl")):
                cfg = work / f"{engine}-{name}.yaml"
                cfg.write_text(PIPELINE.replace("INPUT", str(work / data)))
                out = work / f"out-{engine}-{name}"
                cmd = assay_cmd(cfg, out, engine.split("-")[0], args.workers, args.address)
                secs, rc, peak, err = run_measured(cmd, {**env, **extra})
                if rc:
                    sys.exit(f"{engine} run failed ({rc}):\n{err[-2000:]}")
                row[name] = {"seconds": round(secs, 2), "peak_rss_mb": round(peak / 2**20)}
                if name == "full":
                    stats = json.loads((out / "stats.json").read_text())
                    row["kept"] = stats["output"]["records"]
                    row["digest"] = output_digest(out)
            full, start = row["full"]["seconds"], row["startup"]["seconds"]
            row["records_per_s"] = round(args.records / full)
            row["steady_records_per_s"] = round(args.records / max(full - start, 1e-6))
            results[engine] = row

    loc = results["local"]
    print(f"{args.records:,} records, {args.workers} workers, pipeline: collect, unique-ids, dedup-exact, "
          f"dedup-minhash, sample, filter (machine: {os.cpu_count()} cores)")
    print(f"{'engine':<8}{'wall s':>9}{'records/s':>12}{'steady/s':>11}{'start-up s':>12}{'peak MB':>10}"
          f"{'start-up MB':>13}{'kept':>9}")
    for engine, r in results.items():
        print(f"{engine:<8}{r['full']['seconds']:>9.2f}{r['records_per_s']:>12,}{r['steady_records_per_s']:>11,}"
              f"{r['startup']['seconds']:>12.2f}{r['full']['peak_rss_mb']:>10,}{r['startup']['peak_rss_mb']:>13,}"
              f"{r['kept']:>9,}")
    for engine in ("ray", "ray-data"):
        r = results[engine]
        print(f"{engine} / local: wall x{r['full']['seconds'] / loc['full']['seconds']:.2f}, "
              f"steady rate x{r['steady_records_per_s'] / loc['steady_records_per_s']:.2f}, "
              f"peak memory x{r['full']['peak_rss_mb'] / max(loc['full']['peak_rss_mb'], 1):.2f}, "
              f"start-up overhead +{r['startup']['seconds'] - loc['startup']['seconds']:.1f} s")
    same = len({r["digest"] for r in results.values()}) == 1
    print("outputs identical" if same else "OUTPUTS DIFFER")
    if args.json:
        print(json.dumps(results, indent=2))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
