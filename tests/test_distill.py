"""The `distill` stage end to end (real CLI, real runner) against the fault-injecting server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from assay.teacher.cache import RequestCache, cache_path
from assay.teacher.distill import R1_MATH, Distill, apply_template
from conftest import assay, read_jsonl, read_output, write_jsonl
from faultserver import Action, FaultServer


def gsm8k_records(shared_data: Path, n: int) -> list[dict[str, Any]]:
    rows = []
    with open(shared_data / "gsm8k" / "test.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            row = json.loads(line)
            rows.append({"id": f"gsm8k/{i}", "domain": "math", "source": "gsm8k", "prompt": row["question"],
                         "reference": {"answer": row["answer"].split("####")[-1].strip()}})
    return rows


def teacher_sets(server: FaultServer, **extra: Any) -> list[str]:
    sets = {"teacher.base_url": server.url, "teacher.model": "fault", "teacher.backoff": 0.01,
            "teacher.backoff_max": 0.05, **extra}
    out: list[str] = []
    for k, v in sets.items():
        out += ["--set", f"{k}={v}"]
    return out


def seed_of(logged: Any) -> int:
    return int(logged.body["seed"])


def test_apply_distill_samples_n_and_answers_from_the_cache(shared_data: Path, tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", gsm8k_records(shared_data, 6))
    out = tmp_path / "out.jsonl"
    with FaultServer() as server:
        assay("apply", "distill", str(inp), str(out), *teacher_sets(server), "--set", "n=2")
        first = read_jsonl(out)
        sent = server.chat_requests()
        assert len(sent) == 12
        assay("apply", "distill", str(inp), str(out), *teacher_sets(server), "--set", "n=2")
        assert server.count() == 12  # the second run was answered from the cache
    assert read_jsonl(out) == first
    body = sent[0].body
    assert body["model"] == "fault" and body["temperature"] == 0.6 and body["top_p"] == 0.95
    assert body["messages"][-1]["content"].endswith("put your final answer within \\boxed{}.")
    assert len({seed_of(r) for r in sent}) == 12  # one seed per record and sample
    for rec in first:
        assert [r["sampling"]["sample"] for r in rec["responses"]] == [0, 1]
        resp = rec["responses"][0]
        assert resp["model"] == "fault" and resp["finish_reason"] == "stop"
        assert resp["reasoning"].startswith("The user asked") and resp["text"].startswith("<think>")
        assert resp["usage"]["completion_tokens"] > 0
    assert RequestCache(cache_path(cache_dir)).count() == 12


def test_seeds_depend_on_record_and_sample_only() -> None:
    st = Distill(teacher={"base_url": "http://x/v1", "model": "m"}, n=3)
    rec = {"id": "a", "domain": "math", "prompt": "1+1?"}
    seeds = [st.sampling(rec, i)["seed"] for i in range(3)]
    assert len(set(seeds)) == 3
    assert seeds == [Distill(teacher={"base_url": "http://y/v1", "model": "m"}, n=3).sampling(rec, i)["seed"]
                     for i in range(3)]
    assert st.sampling({**rec, "id": "b"}, 0)["seed"] != seeds[0]
    assert Distill(teacher={"base_url": "http://x/v1", "model": "m"}, seed=1).sampling(rec, 0)["seed"] != seeds[0]


def test_prompt_templates_and_messages() -> None:
    st = Distill(teacher={"base_url": "http://x/v1", "model": "m"}, system_prompt="Be brief.",
                 templates={"math": R1_MATH, "default": "Answer carefully.\n\n{prompt}"})
    math = st.messages({"id": "1", "domain": "math", "prompt": "What is 2+2?"})
    assert math == [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What is 2+2?\n\nPlease reason step by step, and put your final "
                                                "answer within \\boxed{}."}]
    chat = st.messages({"id": "2", "domain": "chat", "messages": [
        {"role": "system", "content": "You are a poet."}, {"role": "user", "content": "A haiku?"},
        {"role": "assistant", "content": "an old answer"}]})
    assert chat == [{"role": "system", "content": "You are a poet."},
                    {"role": "user", "content": "Answer carefully.\n\nA haiku?"}]
    already = "Solve x+1=2. Please reason step by step, and put your final answer within \\boxed{}."
    assert apply_template(R1_MATH, already) == already
    assert apply_template("Think hard.", "Q") == "Q\n\nThink hard."


def pipeline(tmp_path: Path, inp: Path, server: FaultServer, *, n: int = 2, shard_size: int = 5,
             extra_stages: list[Any] | None = None, **teacher: Any) -> Path:
    cfg = {"name": "distill-test", "shard_size": shard_size, "workers": 1, "inputs": [{"path": str(inp)}],
           "stages": [{"distill": {"n": n, "teacher": {"base_url": server.url, "model": "fault", "backoff": 0.01,
                                                       "backoff_max": 0.05, **teacher}}},
                      *(extra_stages or [])]}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_failed_requests_are_recorded_and_only_they_are_sent_on_the_next_run(
        shared_data: Path, tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", gsm8k_records(shared_data, 12))
    healthy = {"on": False}

    def script(body: dict[str, Any], attempt: int) -> Action:
        if not healthy["on"] and body["seed"] % 3 == 0:
            return Action("status", status=503)
        return Action()

    with FaultServer(script=script) as server:
        cfg = pipeline(tmp_path, inp, server, max_retries=1,
                       extra_stages=[{"safety": {"check": ["response"]}}])
        run_dir = tmp_path / "run"
        assay("run", str(cfg), "--out", str(run_dir), "-q")
        failing = {seed_of(r) for r in server.chat_requests() if r.action == "status"}
        assert failing, "the script should have failed some requests"
        records = read_output(run_dir)
        errors = [e for rec in records for e in rec.get("meta", {}).get("errors", {}).get("distill", [])]
        assert len(errors) == len(failing)
        assert all(e["retry"] and e["kind"] == "status 503" and e["attempts"] == 2 for e in errors)
        assert sum(len(r.get("responses", [])) for r in records) == 24 - len(failing)
        stats = json.loads((run_dir / "stats.json").read_text())
        distill = stats["stages"][0]
        assert distill["incomplete"] == sum(1 for r in records if r.get("meta", {}).get("errors", {}).get("distill"))
        assert distill["metrics"]["failed"] == len(failing)
        assert distill["metrics"]["answered"] == 24 - len(failing)

        healthy["on"] = True
        before = server.count()
        assay("run", str(cfg), "--out", str(run_dir), "-q")
        resent = server.chat_requests()[before:]
    assert {seed_of(r) for r in resent} == failing  # only the failed requests went out again
    assert len(resent) == len(failing)
    records = read_output(run_dir)
    assert all(len(r["responses"]) == 2 and not r.get("meta", {}).get("errors", {}).get("distill") for r in records)
    assert all("safety" in resp["checks"] for r in records for resp in r["responses"])  # the next stage was redone
    stats = json.loads((run_dir / "stats.json").read_text())
    assert stats["stages"][0]["incomplete"] == 0


def test_a_killed_run_resumes_sending_only_the_missing_requests(
        shared_data: Path, tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", gsm8k_records(shared_data, 40))
    with FaultServer(delay=0.03) as server:
        cfg = pipeline(tmp_path, inp, server, n=2, shard_size=10, concurrency=2)
        run_dir = tmp_path / "run"
        env = {**os.environ, "ASSAY_CACHE_DIR": str(cache_dir)}
        proc = subprocess.Popen([sys.executable, "-m", "assay", "run", str(cfg), "--out", str(run_dir), "-q"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while server.count() < 30 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = server.count()
        assert 30 <= killed_at < 80
        first_run = server.chat_requests()
        cache = RequestCache(cache_path(cache_dir))
        cached_seeds = {int(c["content"].split("{")[1].rstrip("}.")) for c in cache.get_many(cache.keys()).values()}
        cache.close()
        assert cached_seeds and cached_seeds <= {seed_of(r) for r in first_run}

        assay("run", str(cfg), "--out", str(run_dir), "-q")
        second_run = server.chat_requests()[killed_at:]
    resent = {seed_of(r) for r in second_run}
    assert not resent & cached_seeds  # nothing answered and cached was paid for again
    assert len(resent) == len(second_run)  # and nothing went out twice
    every = {seed_of(r) for r in server.chat_requests()}
    assert len(every) == 80 and resent == every - cached_seeds
    # only requests in flight at the kill (answered but not yet cached) can have gone out twice
    assert len({seed_of(r) for r in first_run} & resent) <= 2
    records = read_output(run_dir)
    assert len(records) == 40 and all(len(r["responses"]) == 2 for r in records)


def test_distill_needs_a_teacher(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "domain": "math", "prompt": "1+1?"}])
    proc = assay("apply", "distill", str(inp), str(tmp_path / "out.jsonl"), check=False)
    assert proc.returncode == 2
    assert "teacher.base_url" in proc.stderr and "Traceback" not in proc.stderr
    proc = assay("apply", "distill", str(inp), str(tmp_path / "out.jsonl"), "--set", "teacher.base_url=localhost:1",
                 "--set", "teacher.model=m", check=False)
    assert proc.returncode == 2 and "http://" in proc.stderr


def test_a_rejected_key_stops_the_run_without_printing_it(tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "domain": "math", "prompt": "1+1?"}])
    with FaultServer(script=lambda body, attempt: Action("status", status=401)) as server:
        proc = assay("apply", "distill", str(inp), str(tmp_path / "out.jsonl"), *teacher_sets(server),
                     "--set", "teacher.api_key_env=TEST_TEACHER_KEY", env={"TEST_TEACHER_KEY": "sk-secret-123"},
                     check=False)
        assert server.chat_requests()[0].body["model"] == "fault"
    assert proc.returncode == 2
    assert "rejected the API key" in proc.stderr and "TEST_TEACHER_KEY" in proc.stderr
    assert "sk-secret-123" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("kind", ["reasoning_content", "think"])
def test_reasoning_is_kept_apart(kind: str, tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "domain": "chat", "prompt": "Hello?"}])
    action = (Action(content="Hi there.", reasoning="The user greets me.") if kind == "reasoning_content"
              else Action(content="<think>The user greets me.</think>\n\nHi there.", finish_reason="length"))
    with FaultServer(script=lambda body, attempt: action) as server:
        assay("apply", "distill", str(inp), str(tmp_path / "out.jsonl"), *teacher_sets(server))
    resp = read_jsonl(tmp_path / "out.jsonl")[0]["responses"][0]
    assert resp["reasoning"] == "The user greets me."
    assert resp["text"].endswith("Hi there.") and "<think>" in resp["text"]
    assert resp["finish_reason"] == ("stop" if kind == "reasoning_content" else "length")
