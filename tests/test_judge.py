"""The `judge` stage (LLM-as-a-judge) and the robust JSON reading under it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from assay.judge.jsonparse import as_bool, as_number, extract_json
from assay.judge.judge import Judge
from assay.teacher.llm import ParseError
from conftest import assay, read_jsonl, read_output, write_jsonl
from faultserver import Action, FaultServer

# ---- reading JSON out of model text -----------------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [
    ('{"correct": true, "rationale": "same value"}', {"correct": True, "rationale": "same value"}),
    ('Here you go:\n```json\n{"score": 7, "rationale": "ok"}\n```\nAnything else?', {"score": 7, "rationale": "ok"}),
    ('```\n{"score": 3}\n```', {"score": 3}),
    ('<think>maybe {"score": 1}? no.</think>\n{"score": 9, "rationale": "good"}', {"score": 9, "rationale": "good"}),
    ('{"score": 8, "details": {"a": 1}} and some trailing words.', {"score": 8, "details": {"a": 1}}),
    ('For example {"score": 0}. My answer: {"score": 6, "rationale": "uses {x} and }"}',
     {"score": 6, "rationale": "uses {x} and }"}),
    ("{'correct': False, 'rationale': 'off by one',}", {"correct": False, "rationale": "off by one"}),
    ('{"consistent": true, "rationale": "fine",}', {"consistent": True, "rationale": "fine"}),
    ('{"rationale": "The answer matches the refer', {"rationale": "The answer matches the refer"}),
    ('{"correct": false, "rationale": "The candidate wrote 17 but', {"correct": False,
                                                                     "rationale": "The candidate wrote 17 but"}),
])
def test_extract_json(text: str, want: dict[str, Any]) -> None:
    assert extract_json(text) == want


@pytest.mark.parametrize("text", ["", "   ", "The answer is correct.", "[1, 2, 3]", "{not json at all"])
def test_extract_json_refuses(text: str) -> None:
    with pytest.raises(ParseError):
        extract_json(text)


def test_extract_json_is_fast_on_hostile_text() -> None:
    hostile = "{" * 50_000 + '"a": ' + "[" * 10_000
    started = time.perf_counter()
    with pytest.raises(ParseError):
        extract_json(hostile)
    assert time.perf_counter() - started < 2.0


def test_field_readers() -> None:
    assert as_bool("Yes", "x") is True and as_bool("incorrect", "x") is False and as_bool(1, "x") is True
    assert as_number("7/10", "s", 0, 10) == 7 and as_number(3.5, "s", 0, 4) == 3.5
    for bad in ("maybe", None):
        with pytest.raises(ParseError):
            as_bool(bad, "x")
    with pytest.raises(ParseError):
        as_number(11, "s", 0, 10)
    with pytest.raises(ParseError):
        as_number(True, "s", 0, 10)


# ---- the stage ----------------------------------------------------------------------------------

def records() -> list[dict[str, Any]]:
    return [
        {"id": "m1", "domain": "math", "prompt": "What is 3 * 6?", "reference": {"answer": "18"},
         "responses": [{"text": "<think>3*6 = 18</think>\n\nThe answer is \\boxed{18}."},
                       {"text": "<think>3*6 = 17?</think>\n\nThe answer is \\boxed{17}."}]},
        {"id": "c1", "domain": "chat", "prompt": "Say hello in French.",
         "responses": [{"text": "Bonjour!"}, {"text": "I like trains."}]},
    ]


def grader(body: dict[str, Any]) -> tuple[str, str | None]:
    """A scripted judge: checks the extracted answer against the reference, or rates chat."""
    prompt = body["messages"][-1]["content"]
    if "Reference answer:" in prompt:
        ref = re.search(r"Reference answer:\n(.*)\n", prompt).group(1)  # type: ignore[union-attr]
        got = re.search(r"extracted: (.*)", prompt).group(1)  # type: ignore[union-attr]
        return f'```json\n{{"rationale": "compared {got} with {ref}", "correct": {str(got == ref).lower()}}}\n```', None
    if "Rate the response" in prompt:
        score = 9 if "Bonjour" in prompt else 2
        return f'Sure. {{"rationale": "rated", "score": {score}}} Hope this helps!', None
    if "End of the reasoning" in prompt:
        agree = "18" in prompt.split("Final answer:")[1] and "= 18" in prompt
        return json.dumps({"rationale": "checked", "consistent": agree}), None
    return "I cannot tell.", None


def judge_sets(server: FaultServer, *extra: str) -> list[str]:
    return ["--set", f"teacher.base_url={server.url}", "--set", "teacher.model=judge", "--set", "teacher.backoff=0",
            *extra]


def test_judge_rubrics_auto(tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", records())
    out = tmp_path / "out.jsonl"
    with FaultServer(answer=grader) as server:
        assay("apply", "judge", str(inp), str(out), *judge_sets(server), "--drop")
        bodies = [r.body for r in server.chat_requests()]
    assert len(bodies) == 4
    assert all(b["messages"][0]["role"] == "system" and b["temperature"] == 0 for b in bodies)
    assert "response_format" not in bodies[0]  # json_mode auto: off for a remote endpoint
    kept = read_jsonl(out)
    math, chat = kept
    assert [r["text"][-5:] for r in math["responses"]] == ["{18}."]
    check = math["responses"][0]["checks"]["judge"]
    assert check["passed"] and check["score"] == 1.0 and check["rubric"] == "correctness"
    assert check["reason"] == "compared 18 with 18" and check["judge"] == "judge"
    assert [r["text"] for r in chat["responses"]] == ["Bonjour!"]
    assert chat["responses"][0]["checks"]["judge"]["score"] == 0.9
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    assert sorted(r["code"] for r in rejected) == ["judge: correctness: failed", "judge: quality: failed"]


def test_judge_agreement_rubric(tmp_path: Path, cache_dir: Path) -> None:
    recs = records()[:1]
    recs[0]["responses"].append({"text": "no reasoning here, just \\boxed{18}"})
    inp = write_jsonl(tmp_path / "in.jsonl", recs)
    out = tmp_path / "out.jsonl"
    with FaultServer(answer=grader) as server:
        assay("apply", "judge", str(inp), str(out), *judge_sets(server, "--set", "rubric=agreement"))
        assert server.count() == 2  # the response without reasoning needs no request
        prompts = [r.body["messages"][-1]["content"] for r in server.chat_requests()]
        assert any("End of the reasoning:\n3*6 = 18\n" in p for p in prompts)
    checks = [r["checks"]["judge"] for r in read_jsonl(out)[0]["responses"]]
    assert [c["passed"] for c in checks] == [True, False, True]
    assert checks[2]["code"] == "no reasoning"


def test_unparseable_output_is_asked_again_then_recorded(tmp_path: Path, cache_dir: Path) -> None:
    def shy_then_clear(body: dict[str, Any]) -> tuple[str, str | None]:
        if body["temperature"] == 0:
            return "The candidate seems right to me.", None
        return '{"rationale": "fine", "correct": true}', None

    inp = write_jsonl(tmp_path / "in.jsonl", records()[:1])
    with FaultServer(answer=shy_then_clear) as server:
        assay("apply", "judge", str(inp), str(tmp_path / "out.jsonl"), *judge_sets(server))
        bodies = [r.body for r in server.chat_requests()]
    assert len(bodies) == 4  # per response: one unreadable answer, one good one
    assert {b["temperature"] for b in bodies} == {0, 0.7}
    assert len({b["seed"] for b in bodies}) == 4
    assert all(r["checks"]["judge"]["passed"] for r in read_jsonl(tmp_path / "out.jsonl")[0]["responses"])

    with FaultServer(answer=lambda body: ("no idea", None)) as server:
        for on_error, kept in (("keep", 2), ("drop", 0)):
            out = tmp_path / f"{on_error}.jsonl"
            assay("apply", "judge", str(inp), str(out), *judge_sets(server, "--set", f"on_error={on_error}",
                                                                      "--set", "parse_retries=1"), "--drop",
                  env={"ASSAY_CACHE_DIR": str(tmp_path / "other-cache")})
            rec = read_jsonl(out)
            assert sum(len(r["responses"]) for r in rec) == kept
        assert server.count() == 4  # 2 responses x 2 tries; the second run came from the cache
    check = read_jsonl(tmp_path / "keep.jsonl")[0]["responses"][0]["checks"]["judge"]
    assert check["code"] == "unparseable" and check["score"] is None and check["retry"] is False
    assert "no JSON object" in check["reason"]


def test_failed_judge_requests_are_retried_on_the_next_run(tmp_path: Path, cache_dir: Path) -> None:
    down = {"on": True}

    def script(body: dict[str, Any], attempt: int) -> Action:
        if down["on"] and "17" in body["messages"][-1]["content"]:
            return Action("status", status=500)
        return Action()

    inp = write_jsonl(tmp_path / "in.jsonl", records()[:1])
    with FaultServer(script=script, answer=grader) as server:
        cfg = tmp_path / "p.yaml"
        cfg.write_text(yaml.safe_dump({"inputs": [str(inp)], "workers": 1, "stages": [{"judge": {
            "drop": False, "teacher": {"base_url": server.url, "model": "judge", "max_retries": 1, "backoff": 0}}}]}))
        assay("run", str(cfg), "--out", str(tmp_path / "run"), "-q")
        (rec,) = read_output(tmp_path / "run")
        failed = rec["responses"][1]["checks"]["judge"]
        assert failed["code"] == "request failed" and failed["retry"] is True and failed["passed"] is True
        stats = json.loads((tmp_path / "run" / "stats.json").read_text())["stages"][0]
        assert stats["incomplete"] == 1 and stats["metrics"]["failed"] == 1
        down["on"] = False
        before = server.count()
        assay("run", str(cfg), "--out", str(tmp_path / "run"), "-q")
        resent = server.chat_requests()[before:]
    assert len(resent) == 1 and "17" in resent[0].body["messages"][-1]["content"]
    (rec,) = read_output(tmp_path / "run")
    assert [r["checks"]["judge"]["score"] for r in rec["responses"]] == [1.0, 0.0]


def test_custom_template_and_json_modes() -> None:
    j = Judge(teacher={"base_url": "http://x/v1", "model": "m"},
              template="Problem {problem} with {braces} vs {reference}; answer: {answer}. JSON with score 0-5.",
              scale=5, threshold=0.8)
    rec = {"id": "1", "domain": "math", "prompt": "Is {x} in {answer}?", "reference": {"answer": "{1}"},
           "responses": [{"text": "yes"}]}
    msg = j.prompt(rec, rec["responses"][0])[-1]["content"]
    assert msg == "Problem Is {x} in {answer}? with {braces} vs {1}; answer: yes. JSON with score 0-5."
    v = j.parse(rec, rec["responses"][0], {"content": '{"score": 4}', "text": ""})
    assert v.score == 0.8 and v.passed
    assert j.response_format(rec) is None
    assert Judge(teacher={"base_url": "http://x/v1", "model": "m"}, json_mode="schema",
                 rubric="quality").response_format(rec)["type"] == "json_schema"
    local = Judge(teacher={"local": True}, rubric="correctness").response_format(rec)
    assert local is not None and local["type"] == "json_object" and "correct" in local["schema"]["properties"]


def test_no_final_answer_fails_without_a_request_and_stats_count_parse_failures(tmp_path: Path) -> None:
    import asyncio

    from assay.stage import StageContext

    rec = {"id": "t", "domain": "math", "prompt": "What is 3 * 6?", "reference": {"answer": "18"},
           "responses": [{"text": "<think>3 times 6 is... let me see, 3+3+3+3+"}, {"text": "It is \\boxed{18}."}]}
    with FaultServer(answer=lambda body: ("not json", None)) as server:
        st = Judge(teacher={"base_url": server.url, "model": "judge", "backoff": 0}, parse_retries=1)
        st.setup(StageContext(cache_dir=tmp_path / "cache"))
        asyncio.run(st.aprocess_batch([rec]))
        assert server.count() == 2  # only the complete response was judged (twice: unparseable)
        stats = st.stats()
        st.teardown()
    cut, done = (r["checks"]["judge"] for r in rec["responses"])
    assert cut["passed"] is False and cut["code"] == "correctness: no final answer"
    assert done["code"] == "unparseable"
    assert stats["unparseable"] == 1 and stats["reasked"] == 1 and stats["sent"] == 2
