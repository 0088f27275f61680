"""MinHash near-duplicate dedup: assay's `dedup-minhash` against datasketch and datatrove, on one
synthetic corpus with planted near-duplicates, in the same run.

    .venv/bin/python bench/bench_minhash.py [--docs 50000] [--planted 0.1] [--threshold 0.8]
        [--baseline-python /tmp/assay-bench-venv/bin/python] [--skip-datatrove]

The corpus: documents of 120-220 words drawn from a Zipf vocabulary; a share of them gets a
near copy (1-3 word edits: substitution, insertion or deletion; word 5-gram Jaccard ~0.8-0.95).
Every tool shingles the same way (lower-cased words, 5-grams), uses 128 permutations (datatrove:
14 buckets x 8) and the same threshold, and is timed end to end from the loaded texts (shingling
included) in one process. assay runs twice: with its defaults (candidates verified against the
estimated Jaccard similarity, so nothing below the threshold is removed) and with datatrove's LSH
(14 bands x 8 rows, every band collision is a duplicate). Reported: docs/s, recall of the planted
pairs (a pair counts when one of the two is removed), recall of the planted pairs whose true
Jaccard reaches the threshold, and precision (removed documents that belong to a planted pair).

datasketch and datatrove run in a separate virtual environment (they are baselines, not
dependencies of assay):

    python3.11 -m venv /tmp/assay-bench-venv
    /tmp/assay-bench-venv/bin/pip install 'datatrove[processing]==0.10.1' 'datasketch==2.0.0' 'spacy==3.8.18' orjson

Targets (issue 5, on the 2-core dev machine): assay >= 10x datasketch and faster than datatrove
at equal or better recall.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

DATASKETCH = r'''
import json, re, string, sys, time
from datasketch import MinHash, MinHashLSH
path, threshold = sys.argv[1], float(sys.argv[2])
docs = [json.loads(l) for l in open(path)]
table = str.maketrans({c: " " for c in string.punctuation})
t0 = time.perf_counter()
lsh = MinHashLSH(threshold=threshold, num_perm=128)
sigs = []
for d in docs:
    w = d["text"].lower().translate(table).split()
    sh = {" ".join(w[i:i + 5]).encode() for i in range(max(1, len(w) - 4))}
    m = MinHash(num_perm=128)
    m.update_batch(list(sh))
    sigs.append(m)
    lsh.insert(d["id"], m)
parent = {}
def find(x):
    root = x
    while parent.get(root, root) != root:
        root = parent[root]
    while parent.get(x, x) != root:
        parent[x], x = root, parent[x]
    return root
for d, m in zip(docs, sigs):
    for other in lsh.query(m):
        if other != d["id"]:
            a, b = find(d["id"]), find(other)
            if a != b:
                parent[b] = a
removed = []
seen = set()
for d in docs:  # first seen survives
    r = find(d["id"])
    if r in seen:
        removed.append(d["id"])
    seen.add(r)
print(json.dumps({"seconds": time.perf_counter() - t0, "removed": removed}))
'''

DATATROVE = r'''
import json, sys, time, glob, gzip
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
inp, work, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
t0 = time.perf_counter()
s1 = LocalPipelineExecutor([JsonlReader(inp), MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg)],
                           tasks=workers, workers=workers, logging_dir=f"{work}/logs/1")
s2 = LocalPipelineExecutor([MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets",
                                                config=cfg)],
                           tasks=cfg.num_buckets, workers=workers, logging_dir=f"{work}/logs/2", depends=s1)
s3 = LocalPipelineExecutor([MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove",
                                                config=cfg)],
                           tasks=1, workers=1, logging_dir=f"{work}/logs/3", depends=s2)
s4 = LocalPipelineExecutor([JsonlReader(inp), MinhashDedupFilter(input_folder=f"{work}/remove",
                            exclusion_writer=JsonlWriter(f"{work}/removed", compression=None))],
                           tasks=workers, workers=workers, logging_dir=f"{work}/logs/4", depends=s3)
s4.run()
seconds = time.perf_counter() - t0
removed = [json.loads(l)["id"] for f in glob.glob(f"{work}/removed/*") for l in open(f)]
print(json.dumps({"seconds": seconds, "removed": removed}))
'''


def make_corpus(n: int, planted: float, seed: int) -> tuple[list[dict[str, str]], list[tuple[str, str, int]]]:
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    vocab = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(30000)]
    n_orig = int(n / (1 + planted))
    docs = []
    for i in range(n_orig):
        length = rnd.randint(120, 220)
        idx = np.minimum(rng.zipf(1.3, size=length), len(vocab)) - 1
        docs.append({"id": f"doc/{i}", "text": " ".join(vocab[j] for j in idx) + "."})
    pairs = []
    for k, i in enumerate(rnd.sample(range(n_orig), n - n_orig)):
        words = docs[i]["text"].split()
        edits = rnd.randint(1, 3)
        for _ in range(edits):
            j = rnd.randrange(len(words))
            op = rnd.random()
            if op < 0.4:
                words[j] = rnd.choice(vocab)
            elif op < 0.7:
                del words[j]
            else:
                words.insert(j, rnd.choice(vocab))
        copy = {"id": f"copy/{k}", "text": " ".join(words)}
        docs.append(copy)
        pairs.append((docs[i]["id"], copy["id"], edits))
    order = list(range(len(docs)))
    rnd.shuffle(order)
    return [docs[i] for i in order], pairs


def true_jaccard(a: str, b: str) -> float:
    from assay.dedup.shingles import shingle_hashes

    h, off = shingle_hashes([a, b], "word", 5)
    x, y = set(h[off[0]:off[1]].tolist()), set(h[off[1]:off[2]].tolist())
    return len(x & y) / max(1, len(x | y))


def score(removed: set[str], pairs: list[tuple[str, str, int]], above: set[tuple[str, str]]) -> dict[str, float]:
    members = {x for a, b, _ in pairs for x in (a, b)}
    hit = [(a, b) for a, b, _ in pairs if a in removed or b in removed]
    return {
        "recall": round(len(hit) / max(1, len(pairs)), 4),
        "recall_above_threshold": round(len([p for p in hit if p in above]) / max(1, len(above)), 4),
        "precision": round(len(removed & members) / max(1, len(removed)), 4),
        "removed": len(removed),
    }


def run_assay(docs: list[dict[str, str]], threshold: float, **params: object) -> tuple[float, set[str]]:
    from assay.stage import build_stage

    records = [{"id": d["id"], "domain": "chat", "prompt": d["text"]} for d in docs]
    stage = build_stage("dedup-minhash", {"threshold": threshold, "ngram": 5, "num_perm": 128, **params})
    t0 = time.perf_counter()
    state = stage.index(stage.positioned(0, records))  # type: ignore[attr-defined]
    stage.decide_batch(records, state)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - t0
    return seconds, {r["id"] for r in records if not r["checks"]["dedup_minhash"]["passed"]}


def run_assay_cli(path: Path, threshold: float, workers: int) -> tuple[float, set[str]]:
    out = path.with_name("assay-out.jsonl")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "assay", "apply", "dedup-minhash", str(path), str(out), "--set",
                    f"threshold={threshold}", "--drop", "--workers", str(workers), "-q"], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    seconds = time.perf_counter() - t0
    rejected = out.with_name("assay-out.rejected.jsonl")
    removed = {json.loads(line)["id"] for line in open(rejected)} if rejected.exists() else set()
    return seconds, removed


def run_baseline(python: str, code: str, *args: str) -> tuple[float, set[str]]:
    proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["seconds"], set(data["removed"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--planted", type=float, default=0.1, help="near copies per original document")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--workers", type=int, default=2, help="workers for the CLI and datatrove runs")
    ap.add_argument("--baseline-python", default="/tmp/assay-bench-venv/bin/python")
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "minhash.json"))
    args = ap.parse_args()

    docs, pairs = make_corpus(args.docs, args.planted, seed=5)
    text = {d["id"]: d["text"] for d in docs}
    above = {(a, b) for a, b, _ in pairs if true_jaccard(text[a], text[b]) >= args.threshold}
    print(f"corpus: {len(docs):,} docs, {len(pairs):,} planted pairs ({len(above):,} with 5-gram Jaccard >= "
          f"{args.threshold})", flush=True)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        with open(path, "w") as f:
            for d in docs:
                f.write(json.dumps({"id": d["id"], "domain": "chat", "prompt": d["text"], "text": d["text"]}) + "\n")

        def record(name: str, seconds: float, removed: set[str]) -> None:
            results[name] = {"seconds": round(seconds, 2), "docs_per_s": round(len(docs) / seconds),
                             **score(removed, pairs, above)}
            print(f"{name:28s} {results[name]}", flush=True)

        record("assay (1 process)", *run_assay(docs, args.threshold))
        # datatrove's LSH: 14 bands x 8 rows, a band collision is a duplicate (no verification)
        record("assay, 14x8 unverified", *run_assay(docs, args.threshold, num_perm=112, bands=14, verify=False))
        record(f"assay apply ({args.workers} workers)", *run_assay_cli(path, args.threshold, args.workers))
        if Path(args.baseline_python).exists():
            record("datasketch (1 process)", *run_baseline(args.baseline_python, DATASKETCH, str(path),
                                                            str(args.threshold)))
            if not args.skip_datatrove:
                for workers in sorted({1, args.workers}):
                    parts = Path(tmp) / f"dt-input-{workers}"
                    parts.mkdir()
                    for w in range(workers):  # datatrove splits work by file
                        with open(parts / f"part{w}.jsonl", "w") as f:
                            for d in docs[w::workers]:
                                f.write(json.dumps({"id": d["id"], "text": d["text"]}) + "\n")
                    record(f"datatrove ({workers} worker{'s' if workers > 1 else ''})",
                           *run_baseline(args.baseline_python, DATATROVE, str(parts), str(Path(tmp) / f"dt{workers}"),
                                         str(workers)))
        else:
            print(f"baselines skipped: {args.baseline_python} not found (see the module docstring)")
    base = results.get("datasketch (1 process)")
    if base:
        for r in results.values():
            r["x_datasketch"] = round(r["docs_per_s"] / base["docs_per_s"], 1)
    dt = results.get("datatrove (1 worker)")
    if dt:
        for r in results.values():
            r["x_datatrove_1_worker"] = round(r["docs_per_s"] / dt["docs_per_s"], 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"docs": len(docs), "planted_pairs": len(pairs), "threshold": args.threshold,
                               "cpus": os.cpu_count(), "results": results}, indent=2))
    print("\n| tool | docs/s | x datasketch | recall | recall (J >= t) | precision |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['docs_per_s']:,} | {r.get('x_datasketch', '-')} | {r['recall']} | "
              f"{r['recall_above_threshold']} | {r['precision']} |")


if __name__ == "__main__":
    main()
