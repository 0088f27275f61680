"""The teacher client against a fault-injecting loopback server: retries, limits, cache, failures."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from assay.teacher.cache import RequestCache
from assay.teacher.client import ChatRequest, Failure, TeacherClient, TeacherUnavailable, _retry_after
from assay.teacher.completion import normalise, split_reasoning
from assay.teacher.config import TeacherConfig
from assay.teacher.limits import TokenBucket
from faultserver import Action, FaultServer, always_ok, fail_first


@pytest.fixture
def server() -> Any:
    srv = FaultServer().start()
    yield srv
    srv.stop()


def make_client(server: FaultServer, tmp_path: Path, **cfg: Any) -> TeacherClient:
    base = {"base_url": server.url, "model": "fault", "backoff": 0.01, "backoff_max": 0.05, "timeout": 5.0}
    config = TeacherConfig(**{**base, **cfg})
    return TeacherClient(config, server.url, "fault", RequestCache(tmp_path / "cache.sqlite"))


def requests(n: int, offset: int = 0) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"question {i}"}], {"temperature": 0.6, "seed": i})
            for i in range(offset, offset + n)]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def complete_and_close(client: TeacherClient, reqs: list[ChatRequest]) -> list[Any]:
    try:
        return await client.complete_many(reqs)
    finally:
        await client.aclose()


def test_answers_then_reads_the_cache(server: FaultServer, tmp_path: Path) -> None:
    client = make_client(server, tmp_path)
    first = run(complete_and_close(client, requests(20)))
    assert all(isinstance(r, dict) for r in first)
    assert server.count() == 20
    assert first[3]["content"] == "The answer is \\boxed{3}."
    assert first[3]["reasoning"].startswith("The user asked")
    stats = client.stats.take()
    assert stats["sent"] == 20 and stats["answered"] == 20 and stats["cached"] == 0
    assert stats["tokens_out"] > 0 and sum(stats["latency_s"].values()) == 20

    again = make_client(server, tmp_path)
    second = run(complete_and_close(again, requests(25)))
    assert server.count() == 25  # only the 5 new ones went out
    assert second[:20] == first
    stats = again.stats.take()
    assert stats["cached"] == 20 and stats["sent"] == 5
    assert again.stats.take()["requests"] == 0  # take() resets


def test_identical_requests_in_flight_are_sent_once(server: FaultServer, tmp_path: Path) -> None:
    server.delay = 0.1
    client = make_client(server, tmp_path)
    reqs = requests(3) + requests(3)
    results = run(complete_and_close(client, reqs))
    assert server.count() == 3
    assert results[:3] == results[3:]


@pytest.mark.parametrize("fault", [
    Action("status", status=500), Action("status", status=502), Action("status", status=503),
    Action("malformed"), Action("drop"), Action("empty"), Action("timeout", delay=3),
    Action("status", status=429, retry_after=0),
])
def test_transient_faults_are_retried(fault: Action, tmp_path: Path) -> None:
    with FaultServer(script=fail_first(2, fault)) as server:
        client = make_client(server, tmp_path, timeout=0.5)
        results = run(complete_and_close(client, requests(4)))
    assert all(isinstance(r, dict) for r in results), results
    per_request = Counter(r.ident for r in server.chat_requests())
    assert set(per_request.values()) == {3}  # two faults, then the answer
    stats = client.stats.take()
    assert stats["retries"] == 8 and stats["failed"] == 0 and stats["answered"] == 4


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    with FaultServer(script=fail_first(1, Action("status", status=429, retry_after=1))) as server:
        client = make_client(server, tmp_path)
        started = time.monotonic()
        results = run(complete_and_close(client, requests(3)))
        elapsed = time.monotonic() - started
        log = server.chat_requests()
    assert all(isinstance(r, dict) for r in results)
    assert elapsed >= 1.0
    first_429 = min(r.at for r in log if r.action == "status")
    retried = [r.at for r in log if r.attempt == 2]
    assert min(retried) - first_429 >= 0.95  # nobody came back before the server said so
    assert client.stats.errors["rate limited"] == 3


def test_retry_after_header_forms() -> None:
    assert _retry_after({"retry-after": "2"}) == 2.0
    assert _retry_after({"retry-after-ms": "1500"}) == 1.5
    assert _retry_after({}) is None
    assert _retry_after({"retry-after": "soon"}) is None
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= (_retry_after({"retry-after": http_date}) or 0) <= 31


def test_a_request_that_keeps_failing_is_returned_as_a_failure(tmp_path: Path) -> None:
    with FaultServer(script=fail_first(100, Action("status", status=500))) as server:
        client = make_client(server, tmp_path, max_retries=2)
        results = run(complete_and_close(client, requests(3)))
        assert server.count() == 9
    assert all(isinstance(r, Failure) for r in results)
    assert results[0].kind == "status 500" and results[0].retry and results[0].attempts == 3
    assert client.cache is not None and client.cache.count() == 0  # failures are not cached
    assert client.stats.take()["failed"] == 3


def test_slow_stream_hits_the_deadline(tmp_path: Path) -> None:
    with FaultServer(script=lambda body, attempt: Action("slow", delay=3)) as server:
        client = make_client(server, tmp_path, timeout=0.5, max_retries=1)
        started = time.monotonic()
        results = run(complete_and_close(client, requests(2)))
    assert time.monotonic() - started < 2.5
    assert all(isinstance(r, Failure) and r.kind == "timeout" for r in results)


def test_a_slow_stream_within_the_deadline_is_read(tmp_path: Path) -> None:
    with FaultServer(script=lambda body, attempt: Action("slow", delay=0.4)) as server:
        client = make_client(server, tmp_path, timeout=5)
        results = run(complete_and_close(client, requests(2)))
    assert [r["content"] for r in results] == ["The answer is \\boxed{0}.", "The answer is \\boxed{1}."]


def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    with FaultServer(script=lambda body, attempt: Action("status", status=400)) as server:
        client = make_client(server, tmp_path)
        results = run(complete_and_close(client, requests(2)))
        assert server.count() == 2
    assert all(isinstance(r, Failure) and not r.retry and r.kind == "rejected" for r in results)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_bad_credentials_or_model_stop_the_run(status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET_KEY", "sk-do-not-print-me")
    with FaultServer(script=lambda body, attempt: Action("status", status=status)) as server:
        client = make_client(server, tmp_path, api_key_env="MY_SECRET_KEY")
        with pytest.raises(TeacherUnavailable) as err:
            run(complete_and_close(client, requests(2)))
    assert str(status) in str(err.value)
    assert "sk-do-not-print-me" not in str(err.value)


def test_an_unreachable_server_stops_the_run(tmp_path: Path) -> None:
    from assay.teacher.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = TeacherConfig(base_url=url, model="m", max_retries=0, backoff=0)
    client = TeacherClient(cfg, url, "m", None)
    with pytest.raises(TeacherUnavailable, match="is it running"):
        run(complete_and_close(client, requests(40)))


def test_concurrency_limit_is_respected(tmp_path: Path) -> None:
    with FaultServer(delay=0.1) as server:
        client = make_client(server, tmp_path, concurrency=3)
        run(complete_and_close(client, requests(12)))
        assert server.max_inflight == 3


def test_requests_per_minute_limit(tmp_path: Path) -> None:
    with FaultServer() as server:
        client = make_client(server, tmp_path, rpm=120)  # a burst of 120, then 2 per second
        started = time.monotonic()
        run(complete_and_close(client, requests(123)))
        assert time.monotonic() - started >= 1.2


def test_token_bucket_waits_for_refill() -> None:
    async def go() -> float:
        bucket = TokenBucket(per_minute=600)  # 10 per second
        await bucket.acquire(600)
        started = time.monotonic()
        await bucket.acquire(5)
        return time.monotonic() - started

    assert 0.4 <= run(go()) < 1.5


def test_tokens_per_minute_counts_max_tokens_until_the_usage_is_known(tmp_path: Path) -> None:
    with FaultServer(delay=0.5) as server:
        client = make_client(server, tmp_path, tpm=6000)  # refills 100 tokens per second
        reqs = [ChatRequest([{"role": "user", "content": "hi"}], {"max_tokens": 3000, "seed": i}) for i in range(3)]
        started = time.monotonic()
        run(complete_and_close(client, reqs))
        elapsed = time.monotonic() - started
        # two fit the bucket; the third waits for their answers, whose usage (a few tokens) gives
        # back most of the 3000 each reserved, instead of 30 s of refill
        assert 0.9 <= elapsed < 5
        assert server.max_inflight == 2


def test_every_request_ends_answered_or_failed_and_none_is_answered_twice(tmp_path: Path) -> None:
    faults = [Action("status", status=500), Action("status", status=429, retry_after=0), Action("malformed"),
              Action("drop"), Action("timeout", delay=2), Action("empty")]
    rng = random.Random(7)
    plan: dict[str, int] = {}

    def script(body: dict[str, Any], attempt: int) -> Action:
        seed = body["seed"]
        fails = plan.setdefault(seed, rng.choice([0, 0, 1, 2, 5]))
        return faults[(seed + attempt) % len(faults)] if attempt <= fails else Action()

    with FaultServer(script=script) as server:
        client = make_client(server, tmp_path, timeout=0.6, max_retries=3, concurrency=16)
        results = run(complete_and_close(client, requests(60)))
        answered_by_server = Counter(json.loads(r.ident)[2] for r in server.answered())
        assert client.cache is not None
        cached_after_first = client.cache.count()
        rerun = make_client(server, tmp_path, timeout=0.6, max_retries=3)
        sent_before = server.count()
        again = run(complete_and_close(rerun, requests(60)))
        resent = server.chat_requests()[sent_before:]
    ok = [r for r in results if isinstance(r, dict)]
    failed = [r for r in results if isinstance(r, Failure)]
    assert len(ok) + len(failed) == 60
    assert len(failed) == sum(1 for v in plan.values() if v > 3)  # exactly those that failed > max_retries times
    assert max(answered_by_server.values()) == 1  # no request was paid for twice
    assert cached_after_first == len(ok)
    # the rerun only sent what had failed; everything answered came from the cache
    assert {json.loads(r.ident)[2] for r in resent} <= {i for i, r in enumerate(results) if isinstance(r, Failure)}
    assert all(a == b for a, b in zip(again, results, strict=True) if isinstance(b, dict))
    assert all(isinstance(a, dict) for a in again)  # the faults are over: the rerun completes everything


def test_reasoning_content_and_think_blocks() -> None:
    body = {"model": "r1", "choices": [{"message": {"content": "42", "reasoning_content": "6*7"},
                                        "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 9}}
    c = normalise(body)
    assert c["text"] == "<think>\n6*7\n</think>\n\n42" and c["reasoning"] == "6*7" and c["content"] == "42"
    assert c["usage"] == {"prompt_tokens": 3, "completion_tokens": 9} and c["finish_reason"] == "stop"
    inline = normalise({"choices": [{"message": {"content": "<think>hmm</think>\n\nAnswer 5"}}]})
    assert inline["reasoning"] == "hmm" and inline["content"] == "Answer 5"
    assert inline["text"] == "<think>hmm</think>\n\nAnswer 5"
    # the chat template opened the block itself: only the closing tag is in the content
    opened = normalise({"choices": [{"message": {"content": "let me think\n</think>\n7"}}]})
    assert opened["reasoning"] == "let me think" and opened["text"].startswith("<think>\nlet me think")
    assert split_reasoning("<think>cut off while thin") == ("cut off while thin", "")
    assert split_reasoning("plain") == (None, "plain")
    vllm = normalise({"choices": [{"message": {"content": "x", "reasoning": "r"}}]})
    assert vllm["reasoning"] == "r"


def test_always_ok_script_is_the_default() -> None:
    assert always_ok({}, 1).kind == "ok"
