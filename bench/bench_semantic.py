"""Semantic dedup of a synthetic prompt corpus with planted near-duplicates: embedding rate against
raw sentence-transformers, FAISS search time, peak memory, recall and precision.

    .venv/bin/python bench/bench_semantic.py [--n 100000] [--planted 0.05] [--encode-sample 20000]

The corpus: prompts of 2-3 sentences drawn from the shared data (GSM8K, MATH-500, MMLU questions
and solution sentences); a share of them gets a near copy (reworded with synonyms, variables
renamed, numbers reformatted, LaTeX delimiters dropped, a stock instruction appended, case).
Measured in one run:
1. raw `SentenceTransformer.encode` on a sample vs assay's `Embedder.encode` (cold cache, same
   model, precision and batch size): the embedding rate ratio (target >= 0.95);
2. the `dedup-semantic` stage in process: embedding time, FAISS search + clustering time,
   recall of the planted pairs and precision (removed prompts that belong to a planted pair);
3. `assay apply dedup-semantic` end to end in a subprocess (cold embedding cache), wall time and
   peak memory of the process tree (target: 100k prompts under 10 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = Path(os.environ.get("ASSAY_SHARED_DATA", REPO.parent / "shared" / "data"))

SYNONYMS = [("Find", "Determine"), ("find", "determine"), ("What is", "Compute"), ("how many", "what number of"),
            ("How many", "What number of"), ("total", "overall"), ("each", "every"), ("buys", "purchases"),
            ("smallest", "least"), ("largest", "greatest"), ("number", "value")]
INSTRUCTIONS = ["Please reason step by step, and put your final answer within \\boxed{}.",
                "Return your final response within \\boxed{}."]


def sentence_pool(benchmarks: bool = True) -> list[str]:
    """Distinct sentences of the shared data, 6-60 words each (`benchmarks=False`: none taken from
    the decontamination benchmarks MATH-500 and MMLU)."""
    texts: list[str] = []
    for line in open(DATA / "gsm8k" / "test.jsonl", encoding="utf-8"):
        row = json.loads(line)
        texts += [row["question"], row["answer"].split("####")[0]]
    if benchmarks:
        for line in open(DATA / "math500" / "test.jsonl", encoding="utf-8"):
            row = json.loads(line)
            texts += [row["problem"], row["solution"]]
        for line in open(DATA / "mmlu_stem" / "test.jsonl", encoding="utf-8"):
            row = json.loads(line)
            texts += [row["question"], *[str(c) for c in row["choices"]]]
    for line in open(DATA / "ifeval_prompts" / "ifeval.jsonl", encoding="utf-8"):
        texts += [str(v) for v in json.loads(line).values() if isinstance(v, str) and len(v) > 40]
    for line in open(DATA / "gsm8k_model_solutions" / "example_model_solutions.jsonl", encoding="utf-8"):
        row = json.loads(line)
        texts += [str(v) for k, v in row.items() if isinstance(v, str) and len(v) > 40]
    pool = set()
    for t in texts:
        for s in re.split(r"(?<=[.?!])\s+", t.replace("\n", " ")):
            if 6 <= len(s.split()) <= 60 and "[asy]" not in s and "<<" not in s:
                pool.add(s.strip())
    return sorted(pool)


def near_copy(text: str, rnd: random.Random) -> str:
    out = text
    for a, b in rnd.sample(SYNONYMS, 4):
        out = out.replace(a, b)
    out = re.sub(r"\$([a-z])\$", lambda m: f"${'xyzw'[ord(m.group(1)) % 4]}$", out)  # rename variables
    out = re.sub(r"\b(\d)(\d{3})\b", r"\1,\2", out)  # 1000 -> 1,000
    r = rnd.random()
    if r < 0.3:
        out = out.replace("$", "")
    elif r < 0.6:
        out = out + " " + rnd.choice(INSTRUCTIONS)
    elif r < 0.8:
        out = out.lower()
    return out


def make_corpus(n: int, planted: float, seed: int = 11,
                benchmarks: bool = True) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    rnd = random.Random(seed)
    pool = sentence_pool(benchmarks)
    n_orig = int(n / (1 + planted))
    records = [{"id": f"p/{i}", "domain": "math", "prompt": " ".join(rnd.sample(pool, rnd.randint(2, 3)))}
               for i in range(n_orig)]
    pairs = []
    for k, i in enumerate(rnd.sample(range(n_orig), n - n_orig)):
        copy = {"id": f"copy/{k}", "domain": "math", "prompt": near_copy(records[i]["prompt"], rnd)}
        records.append(copy)
        pairs.append((records[i]["id"], copy["id"]))
    rnd.shuffle(records)
    return records, pairs


def score(removed: set[str], pairs: list[tuple[str, str]]) -> dict[str, float]:
    members = {x for pair in pairs for x in pair}
    hit = [p for p in pairs if p[0] in removed or p[1] in removed]
    return {"recall": round(len(hit) / max(1, len(pairs)), 4),
            "precision": round(len(removed & members) / max(1, len(removed)), 4), "removed": len(removed)}


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
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
    return time.perf_counter() - t0, proc.returncode, peak


def encode_rates(texts: list[str], batch_size: int, repeats: int = 2) -> dict[str, float]:
    """Raw sentence-transformers vs assay's Embedder (cold cache) on the same texts, same model and
    precision, alternated `repeats` times (best time of each kept: the machine may be busy)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from assay.dedup.embed import Embedder

    probe = Embedder(batch_size=batch_size)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[probe.precision]
    raw = SentenceTransformer(str(probe.path), device="cpu", model_kwargs={"dtype": dtype})
    raw.encode(texts[:64], batch_size=batch_size)  # warm up
    raw_s, ours_s, cached_s = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        raw.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
        raw_s.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as cache:
            emb = Embedder(cache_dir=cache, batch_size=batch_size)
            emb._model = raw  # the same loaded model: only the wrapper's cost differs
            t0 = time.perf_counter()
            emb.encode(texts)
            ours_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            emb.encode(texts)
            cached_s.append(time.perf_counter() - t0)
            emb.close()
    n = len(texts)
    return {"texts": n, "precision": probe.precision, "raw_per_s": round(n / min(raw_s), 1),
            "assay_per_s": round(n / min(ours_s), 1), "ratio": round(min(raw_s) / min(ours_s), 3),
            "cached_per_s": round(n / min(cached_s), 1), "raw_s": [round(x, 1) for x in raw_s],
            "assay_s": [round(x, 1) for x in ours_s]}


def in_process(records: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    import numpy as np

    from assay.dedup.knn import similar_pairs
    from assay.dedup.text import embedding_view
    from assay.stage import build_stage

    with tempfile.TemporaryDirectory() as cache:
        from assay.stage import StageContext

        stage = build_stage("dedup-semantic", {"threshold": threshold})
        stage.setup(StageContext(cache_dir=Path(cache), workers=1))
        t0 = time.perf_counter()
        views = [embedding_view(r["prompt"]) for r in records]
        prep_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        vectors = stage.embedder.encode(views)  # type: ignore[attr-defined]
        embed_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        a, _, _ = similar_pairs(np.asarray(vectors, dtype=np.float32), threshold, 10, threads=os.cpu_count())
        search_s = time.perf_counter() - t0
        # the whole stage (cache warm now): index + merge + decide
        t0 = time.perf_counter()
        state = stage.index(stage.positioned(0, records))  # type: ignore[attr-defined]
        stage.decide_batch(records, state)  # type: ignore[attr-defined]
        stage_warm_s = time.perf_counter() - t0
    removed = {r["id"] for r in records if not r["checks"]["dedup_semantic"]["passed"]}
    return {"normalise_s": round(prep_s, 2), "embed_s": round(embed_s, 2),
            "embed_per_s": round(len(records) / embed_s, 1), "search_s": round(search_s, 2),
            "pairs": len(a), "stage_warm_cache_s": round(stage_warm_s, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "removed": removed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--planted", type=float, default=0.05)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--encode-sample", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=16, help="encode batch size of both (assay's CPU default)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "semantic.json"))
    args = ap.parse_args()

    records, pairs = make_corpus(args.n, args.planted)
    print(f"corpus: {len(records):,} prompts, {len(pairs):,} planted near copies", flush=True)
    result: dict[str, Any] = {"n": len(records), "planted_pairs": len(pairs), "cpus": os.cpu_count()}
    sample = [r["prompt"] for r in records[: args.encode_sample]]
    result["encode"] = encode_rates(sample, args.batch_size)
    print("encode:", result["encode"], flush=True)
    ip = in_process([dict(r) for r in records], args.threshold)
    result["in_process"] = {**{k: v for k, v in ip.items() if k != "removed"}, **score(ip["removed"], pairs)}
    print("in process:", result["in_process"], flush=True)
    if not args.skip_cli:
        with tempfile.TemporaryDirectory() as tmp:
            inp = Path(tmp) / "in.jsonl"
            with open(inp, "w") as f:
                for r in records:
                    f.write(json.dumps(r) + "\n")
            out = Path(tmp) / "out.jsonl"
            env = {**os.environ, "ASSAY_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": str(REPO / "src")}
            cmd = [sys.executable, "-m", "assay", "apply", "dedup-semantic", str(inp), str(out), "--set",
                   f"threshold={args.threshold}", "--drop", "--workers", str(args.workers), "-q"]
            seconds, code, peak = peak_rss_of(cmd, env)
            rejected = out.with_name("out.rejected.jsonl")
            removed = {json.loads(line)["id"] for line in open(rejected)} if rejected.exists() else set()
            result["cli_cold_cache"] = {"seconds": round(seconds, 1), "exit": code,
                                        "prompts_per_s": round(len(records) / seconds, 1),
                                        "peak_rss_mb": round(peak / 2**20), **score(removed, pairs)}
            print("assay apply (cold cache):", result["cli_cold_cache"], flush=True)
            seconds, code, peak = peak_rss_of(cmd, env)
            result["cli_warm_cache"] = {"seconds": round(seconds, 1), "exit": code, "peak_rss_mb": round(peak / 2**20)}
            print("assay apply (warm cache):", result["cli_warm_cache"], flush=True)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
