"""Stage `select-responses`: which responses survive, by which policy, and the pass rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assay.rules.synth import long_trace, reasoning_text
from assay.stage import StageContext, build_stage
from conftest import assay, read_jsonl, read_output, write_jsonl


def resp(text: str, reward: float | None = None, passed: bool = True) -> dict[str, Any]:
    checks: dict[str, Any] = {"math_verify": {"passed": passed, "score": float(passed), "reason": ""}}
    if reward is not None:
        checks["reward"] = {"passed": True, "score": reward, "reason": ""}
    return {"text": text, "checks": checks}


def run_select(rec: dict[str, Any], seed: int = 0, **params: Any) -> dict[str, Any]:
    st = build_stage("select-responses", params)
    st.setup(StageContext(cache_dir=Path("/tmp"), seed=seed))
    st.process_batch([rec])
    return rec


def kept(rec: dict[str, Any]) -> list[int]:
    return [i for i, r in enumerate(rec["responses"]) if r["checks"]["select_responses"]["passed"]]


def test_keeps_all_passing_and_writes_the_pass_rate() -> None:
    rec = {"id": "a", "domain": "math", "prompt": "p", "meta": {"sampled": 8},
           "responses": [resp("x"), resp("y", passed=False), resp("z")]}
    run_select(rec)
    assert kept(rec) == [0, 2]
    assert rec["labels"]["pass_rate"] == 0.25  # 2 passing of the 8 sampled
    assert rec["meta"]["passing"] == 2
    assert rec["responses"][1]["checks"]["select_responses"]["code"] == "not_passing"


def test_without_meta_sampled_the_responses_present_are_the_sample() -> None:
    rec = {"id": "a", "domain": "math", "prompt": "p", "responses": [resp("x"), resp("y", passed=False)]}
    run_select(rec)
    assert rec["labels"]["pass_rate"] == 0.5 and rec["meta"]["sampled"] == 2
    stale = {"id": "b", "domain": "math", "prompt": "p", "meta": {"sampled": 1}, "responses": [resp("x"), resp("y")]}
    assert run_select(stale)["labels"]["pass_rate"] == 1.0  # a sample can never be smaller than what is here


def test_k_by_reward_shortest_first() -> None:
    texts = ["medium length answer text", "short", "the longest answer text of all of them here", "tiny!"]
    rewards = [0.2, 0.9, 0.5, None]

    def fresh() -> dict[str, Any]:
        return {"id": "r", "domain": "math", "prompt": "p",
                "responses": [resp(t, w) for t, w in zip(texts, rewards, strict=True)]}

    assert sorted(kept(run_select(fresh(), k=2, policy="reward"))) == [1, 2]
    assert sorted(kept(run_select(fresh(), k=2, policy="shortest"))) == [1, 3]
    assert kept(run_select(fresh(), k=2, policy="first")) == [0, 1]
    by_custom = fresh()
    for i, r in enumerate(by_custom["responses"]):
        r["checks"]["judge"] = {"passed": True, "score": float(i), "reason": ""}
    assert sorted(kept(run_select(by_custom, k=1, score_key="judge"))) == [3]
    rec = run_select(fresh(), k=2, policy="reward")
    assert rec["labels"]["pass_rate"] == 1.0  # the rate counts passing responses, not the k kept
    assert rec["responses"][0]["checks"]["select_responses"]["code"] == "not_selected"


def test_diverse_prefers_a_different_response_over_a_near_copy() -> None:
    base = reasoning_text(400, 1)
    near_copy = base.replace("Next,", "Then,", 1)
    other = reasoning_text(400, 2)
    rec = {"id": "d", "domain": "math", "prompt": "p",
           "responses": [resp(base, 0.9), resp(near_copy, 0.8), resp(other, 0.1)]}
    assert sorted(kept(run_select(rec, k=2, policy="diverse"))) == [0, 2]


def test_random_is_deterministic_per_seed() -> None:
    def pick(seed: int) -> list[int]:
        rec = {"id": "q", "domain": "math", "prompt": "p", "responses": [resp(str(i)) for i in range(10)]}
        return kept(run_select(rec, seed=seed, k=3, policy="random"))

    assert pick(1) == pick(1)
    assert len({tuple(pick(s)) for s in range(6)}) > 1


def test_require_limits_the_checks_that_count() -> None:
    rec = {"id": "a", "domain": "math", "prompt": "p", "responses": [resp("x", passed=False), resp("y")]}
    rec["responses"][0]["checks"]["style"] = {"passed": True, "score": 1.0, "reason": ""}
    assert kept(run_select(rec, require=["style"])) == [0]  # math_verify failed but is not required
    assert kept(run_select(rec, require=["judge"])) == []  # a required check that is missing fails


def test_pipeline_counts_sampled_before_rejection(tmp_path: Path) -> None:
    good = [long_trace(300, s, answer="7") for s in range(3)]
    records = [{"id": "p1", "domain": "math", "prompt": "What is 3 + 4?",
                "responses": [{"text": t, "checks": {"reward": {"passed": True, "score": s, "reason": ""}}}
                              for t, s in zip(good, (0.1, 0.7, 0.4), strict=True)]
                + [{"text": good[0], "finish_reason": "length"}]},
               {"id": "p2", "domain": "math", "prompt": "What is 3 + 5?",
                "responses": [{"text": "<think>\nno end", "finish_reason": "length"}]}]
    inp = write_jsonl(tmp_path / "in.jsonl", records)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"inputs: [{inp}]\nstages:\n  - rules: {{language: {{enabled: false}}}}\n"
                   "  - select-responses: {k: 1}\n")
    assay("run", str(cfg), "--out", str(tmp_path / "run"), "-q")
    out = read_output(tmp_path / "run")
    assert [r["id"] for r in out] == ["p1"]
    (p1,) = out
    assert p1["labels"]["pass_rate"] == 0.75 and p1["meta"]["sampled"] == 4
    assert len(p1["responses"]) == 1 and p1["responses"][0]["checks"]["reward"]["score"] == 0.7
    rejected = read_jsonl(tmp_path / "run" / "rejected" / "02-select-responses.jsonl")
    assert len(rejected) == 2 and all(r["code"].endswith("not_selected") for r in rejected)


@pytest.mark.parametrize("bad", [{"k": 0}, {"policy": "best"}])
def test_bad_parameters_are_config_errors(bad: dict[str, Any]) -> None:
    from assay.errors import ConfigError

    with pytest.raises(ConfigError):
        build_stage("select-responses", bad)


def test_pass_rate_counts_responses_rejected_earlier(tmp_path) -> None:
    from assay.config import parse_config
    from assay.runner.pipeline import Runner
    from conftest import read_output, write_jsonl

    rec = {"id": "a", "domain": "math", "prompt": "What is 2+2?", "reference": {"answer": "4"},
           "responses": [{"text": "<think>Two plus two makes four, since adding two more to two gives four.</think>\n\n"
                                  "So the final answer is \\boxed{4}."},
                         {"text": "I think it is probably some number, but I am not sure which one it is."}]}
    write_jsonl(tmp_path / "in.jsonl", [rec])
    cfg = {"inputs": [str(tmp_path / "in.jsonl")], "workers": 1,
           "stages": [{"filter": {"expr": "true"}}, {"rules": {"record_sampled": False}}, "select-responses"]}
    Runner(parse_config(cfg), tmp_path / "run").run()
    (out,) = read_output(tmp_path / "run")
    assert out["meta"]["responses_rejected"] == 1
    assert out["labels"]["pass_rate"] == 0.5


def test_ignored_checks_rank_but_do_not_decide(tmp_path) -> None:
    from assay.config import parse_config
    from assay.runner.pipeline import Runner
    from conftest import read_output, write_jsonl

    def resp(text: str, reward: float, judge_ok: bool) -> dict:
        return {"text": text, "checks": {"reward": {"passed": False, "score": reward},
                                         "judge": {"passed": judge_ok, "score": 0.5}}}

    rec = {"id": "a", "domain": "chat", "prompt": "Say hi", "responses": [resp("hi", 0.2, False),
                                                                        resp("hello", 0.9, False)]}
    write_jsonl(tmp_path / "in.jsonl", [rec])
    cfg = {"inputs": [str(tmp_path / "in.jsonl")], "workers": 1,
           "stages": [{"select-responses": {"k": 1, "ignore": ["reward", "judge"]}}]}
    Runner(parse_config(cfg), tmp_path / "run").run()
    (out,) = read_output(tmp_path / "run")
    assert [r["text"] for r in out["responses"]] == ["hello"]  # the higher reward wins; failing checks ignored
