"""Benchmark of a run directory on an object store against the same run on a local path.

One command runs the same pipeline (read, collect, unique-ids, dedup-minhash, sample, write) twice:
`--out LOCAL_PATH` and `--out s3://bucket/run` on a real S3 API (moto's server on loopback, the
only S3 this machine has), and prints records/s, the ratio, the requests the store served and the
cost of a resume with nothing left to do (every marker read from the store) and of a resume on a
machine with no local copy. Loopback moto is a Python server: per-request costs here are moto's,
not S3's (real S3: ~10-30 ms a request from EC2, more in parallel).

    .venv/bin/python bench/bench_remote.py [--records 100000] [--shard-size 5000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runner import make_input

PIPELINE = """inputs: [{input}]
shard_size: {shard_size}
workers: {workers}
stages:
  - collect
  - unique-ids
  - dedup-minhash
  - sample: {{fraction: 0.9}}
"""


class Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.n += 1


def timed_run(cfg: Path, out: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "assay", "run", str(cfg), "--out", out, "--quiet", "--no-report"],
                          env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--shard-size", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from moto.server import ThreadedMotoServer

    requests = Counting()
    logging.getLogger("werkzeug").addHandler(requests)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    logging.getLogger("werkzeug").propagate = False
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    work = Path(tempfile.mkdtemp(prefix="assay-bench-remote-"))
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "ASSAY_RUN_MIRROR": str(work / "mirrors"), "ASSAY_CACHE_DIR": str(work / "cache")}
    os.environ.update({k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                          "AWS_DEFAULT_REGION")})
    import s3fs

    s3fs.S3FileSystem().mkdir("bench")
    try:
        make_input(work / "in.jsonl", args.records)
        cfg = work / "p.yaml"
        cfg.write_text(PIPELINE.format(input=work / "in.jsonl", shard_size=args.shard_size, workers=args.workers))
        local = timed_run(cfg, str(work / "local"), env)
        before = requests.n
        remote = timed_run(cfg, "s3://bench/run", env)
        served = requests.n - before
        before = requests.n
        resume = timed_run(cfg, "s3://bench/run", env)
        resume_requests = requests.n - before
        shutil.rmtree(work / "mirrors")
        cold = timed_run(cfg, "s3://bench/run", env)
        local_resume = timed_run(cfg, str(work / "local"), env)
        shards = -(-args.records // args.shard_size)
        result = {
            "records": args.records, "shards": shards, "workers": args.workers,
            "local_s": round(local, 2), "s3_s": round(remote, 2),
            "local_rec_per_s": round(args.records / local), "s3_rec_per_s": round(args.records / remote),
            "s3_vs_local": round(local / remote, 3),
            "s3_requests": served, "requests_per_shard_stage": round(served / (shards * 5), 1),
            "resume_nothing_left_s": round(resume, 2), "resume_requests": resume_requests,
            "resume_local_path_s": round(local_resume, 2),
            "resume_no_local_copy_s": round(cold, 2),
        }
        print(json.dumps(result, indent=2))
        out = Path(__file__).parent / "results"
        out.mkdir(exist_ok=True)
        (out / "remote.json").write_text(json.dumps(result, indent=2))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
