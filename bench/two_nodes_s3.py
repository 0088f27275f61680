"""A two-node Ray cluster on this machine with the run directory on S3 and no shared folder.

Starts a loopback S3 server (moto), a Ray head node and a worker node (two raylets), each with
its own local copy of run directories (ASSAY_RUN_MIRROR), then runs a pipeline with the driver
holding a third copy, and checks the results equal a local-engine run on a local path. Prints
which machine's copy holds what (shards written on each node, what the driver downloaded).

    .venv/bin/python bench/two_nodes_s3.py [--records 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = """inputs: [{input}]
shard_size: 1000
seed: 4
stages:
  - collect
  - unique-ids
  - dedup-minhash
  - sample: {{fraction: 0.8}}
  - math-verify: {{drop: false}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_output(run: Path) -> list[dict]:
    rows = []
    for part in sorted((run / "output").glob("part-*.jsonl")):
        rows.extend(json.loads(line) for line in part.read_text().splitlines() if line.strip())
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assay-two-nodes-"))
    bin_dir = Path(sys.executable).parent
    s3_port, ray_port = free_port(), free_port()
    aws = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1", "RAY_AUTH_MODE": "disabled"}
    env = {**os.environ, **aws}
    moto = subprocess.Popen([str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        os.environ.update(aws)
        import s3fs

        s3fs.S3FileSystem().mkdir("cluster")
        ray = str(bin_dir / "ray")
        subprocess.run([ray, "start", "--head", f"--port={ray_port}", "--num-cpus=1", "--include-dashboard=false"],
                       env={**env, "ASSAY_RUN_MIRROR": str(work / "node-a")}, check=True, capture_output=True)
        subprocess.run([ray, "start", f"--address=127.0.0.1:{ray_port}", "--num-cpus=1"],
                       env={**env, "ASSAY_RUN_MIRROR": str(work / "node-b")}, check=True, capture_output=True)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_runner import make_input

        make_input(work / "in.jsonl", args.records)
        cfg = work / "p.yaml"
        cfg.write_text(PIPELINE.format(input=work / "in.jsonl"))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "assay", "run", str(cfg), "--out", str(work / "local"), "--quiet",
                        "--no-report", "--workers", "2"], env=env, check=True)
        local_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "assay", "run", str(cfg), "--out", "s3://cluster/run",
                               "--engine", "ray", "--address", f"127.0.0.1:{ray_port}", "--quiet", "--no-report"],
                              env={**env, "ASSAY_RUN_MIRROR": str(work / "driver")}, capture_output=True, text=True)
        ray_s = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        from assay.runner.remote import mirror_path

        name = mirror_path("s3://cluster/run").name
        copies = {}
        for machine in ("node-a", "node-b", "driver"):
            stages = work / machine / name / "stages"
            copies[machine] = {d.name: len(list((d / "shards").glob("*.jsonl")))
                               for d in sorted(stages.iterdir())} if stages.exists() else {}
        driver_copy = work / "driver" / name
        same = read_output(driver_copy) == read_output(work / "local")
        print(json.dumps({"records": args.records, "output_equals_local": same, "local_s": round(local_s, 1),
                          "ray_two_nodes_s3_s": round(ray_s, 1), "shard_files_per_copy": copies}, indent=2))
        if not same:
            raise SystemExit("outputs differ")
    finally:
        subprocess.run([str(bin_dir / "ray"), "stop", "--force"], capture_output=True)
        moto.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
