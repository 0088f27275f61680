"""Runs for the report and viewer tests: real pipelines over real public data.

`verified_run` reads GSM8K questions with four labelled model solutions each
(../shared/data/gsm8k_model_solutions), adds exact duplicates, AIME-24 problems (contamination)
and malformed lines, and runs collect -> dedup-exact -> decontaminate -> math-verify ->
language -> label -> select. Responses also carry a `reward` check with per-attribute scores,
as an earlier reward-model run would leave them, so the report's score histograms have data.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from conftest import assay, read_jsonl, write_jsonl

MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def _unit(*parts: str) -> float:
    """A deterministic number in [0, 1) from strings."""
    h = hashlib.sha256("/".join(parts).encode()).digest()
    return int.from_bytes(h[:4], "little") / 2**32


def _boxed(solution: str) -> str:
    """GSM8K model solutions end in 'A: 18': state that as a boxed final answer."""
    body = re.sub(r"<<[^>]*>>", "", solution)
    m = re.search(r"A:\s*(.+?)\s*$", body)
    if not m:
        return body
    return body[: m.start()].rstrip() + f"\nThe answer is \\boxed{{{m.group(1)}}}."


def _reward(rid: str, i: int, correct: bool) -> dict[str, Any]:
    scores = {attr: round(min(1.0, max(0.0, (0.55 if correct else 0.3) + 0.45 * _unit(rid, str(i), attr))), 3)
              for attr in ("correctness", "helpfulness", "coherence")}
    overall = round(sum(scores.values()) / 3, 4)
    return {"passed": overall >= 0.5, "score": overall, "reason": f"mean {overall}", "scores": scores}


def gsm8k_records(shared_data: Path, n: int) -> list[dict[str, Any]]:
    rows = read_jsonl(shared_data / "gsm8k_model_solutions" / "example_model_solutions.jsonl")[:n]
    out = []
    for k, row in enumerate(rows):
        rid = f"gsm8k-sol/{k:04d}"
        answer = row["ground_truth"].rsplit("A:", 1)[-1].strip()
        responses = []
        for i, model in enumerate(MODELS):
            sol = row[model]
            responses.append({"text": _boxed(sol["solution"]), "model": model,
                              "finish_reason": "stop", "checks": {"reward": _reward(rid, i, sol["is_correct"])}})
        out.append({"id": rid, "domain": "math", "source": "gsm8k-solutions", "prompt": row["question"],
                    "reference": {"answer": answer, "solution": row["ground_truth"]}, "responses": responses})
    return out


def verified_inputs(shared_data: Path, folder: Path, n: int = 60) -> Path:
    records = gsm8k_records(shared_data, n)
    dups = [{**r, "id": r["id"] + "-copy"} for r in records[:6]]  # exact copies under new ids
    aime = read_jsonl(shared_data / "aime_amc" / "aime24.jsonl")[:3]
    contaminated = [{"id": f"leak/{i}", "domain": "math", "source": "web-scrape", "prompt": p["problem"],
                     "reference": {"answer": str(p["answer"])}} for i, p in enumerate(aime)]
    bad = ['{"id": "broken/1", "domain": "math", "prompt": "cut off', '{"id": "broken/2", "domain": "poetry", '
           '"prompt": "Write a haiku."}']
    rows: list[Any] = records[:20] + dups[:3] + contaminated + [bad[0]] + records[20:] + dups[3:] + [bad[1]]
    return write_jsonl(folder / "inputs.jsonl", rows)


def verified_config(folder: Path, inputs: Path, shared_data: Path) -> Path:
    cfg = {
        "name": "report-test",
        "seed": 0,
        "shard_size": 25,
        "workers": 2,
        "inputs": [{"path": str(inputs)}],
        "stages": [
            {"collect": {}},
            {"dedup-exact": {}},
            {"decontaminate": {"benchmarks": [str(shared_data / "aime_amc" / "aime24.jsonl")], "methods": ["ngram"]}},
            {"math-verify": {"workers": 1}},
            {"language": {}},
            {"label": {"default_category": "domain"}},
            {"select": {"quotas": [{"by": "labels.category", "max": 45}]}},
        ],
    }
    path = folder / "pipeline.yaml"
    path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    return path


def run_verified(shared_data: Path, folder: Path, n: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inputs = verified_inputs(shared_data, folder, n)
    cfg = verified_config(folder, inputs, shared_data)
    out = folder / "run"
    assay("run", str(cfg), "--out", str(out), "--quiet")
    return out


def test_verified_run_has_what_the_report_needs(shared_data: Path, tmp_path: Path) -> None:
    run = run_verified(shared_data, tmp_path, n=12)
    stats = json.loads((run / "stats.json").read_text())
    by = {s["stage"]: s for s in stats["stages"]}
    assert stats["input"]["invalid"] == 2
    assert by["dedup-exact"]["records_rejected"] == 6
    assert by["decontaminate"]["records_rejected"] == 3
    assert by["math-verify"]["responses_rejected"] > 0
    assert (run / "rejected" / "04-math-verify.jsonl").stat().st_size > 0


def shared_run(tmp_path_factory: Any, name: str, build: Any) -> Path:
    """A run built once per test session (several test modules read the same one)."""
    folder = tmp_path_factory.getbasetemp() / f"report-runs-{name}"
    done = folder / "built"
    if not done.exists():
        run = build(folder)
        done.write_text(str(run))
    return Path(done.read_text())


def big_inputs(folder: Path, n: int) -> Path:
    """n small records, one response each; every 10th prompt is too short for `collect`."""
    words = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
    rows = []
    for i in range(n):
        w = words[i % len(words)]
        prompt = "Hi" if i % 10 == 0 else f"Problem {i}: add {i} and {i % 97} {w} " + "word " * (i % 40)
        rows.append({"id": f"big/{i}", "domain": "math", "source": f"src{i % 3}", "prompt": prompt,
                     "reference": {"answer": str(i + i % 97)},
                     "responses": [{"text": f"{w} " * (5 + i % 300) + f"\\boxed{{{i + i % 97}}}"}]})
    return write_jsonl(folder / "big.jsonl", rows)


def run_big(folder: Path, n: int = 30_000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inputs = big_inputs(folder, n)
    cfg = folder / "big.yaml"
    cfg.write_text(json.dumps({"name": "big", "inputs": [{"path": str(inputs)}], "shard_size": 10_000, "workers": 2,
                               "stages": [{"collect": {"per_domain": {"math": {"min_prompt_chars": 5}}}}]}))
    out = folder / "run"
    assay("run", str(cfg), "--out", str(out), "--quiet")
    return out
