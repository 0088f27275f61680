"""The request cache: keys, one row per request, several processes at once, `assay cache stats`."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from assay.teacher.cache import RequestCache, cache_path, request_key
from assay.teacher.client import ChatRequest, TeacherClient
from assay.teacher.config import TeacherConfig
from conftest import assay
from faultserver import FaultServer

MSGS = [{"role": "user", "content": "What is 2+2?"}]
PARAMS = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 100, "seed": 1}


def completion(i: int) -> dict:
    return {"text": f"answer {i}", "content": f"answer {i}", "reasoning": None, "finish_reason": "stop",
            "usage": {"prompt_tokens": 10, "completion_tokens": i}, "model": "m"}


def test_request_key_covers_what_determines_the_answer() -> None:
    base = request_key("m", MSGS, PARAMS, 0)
    assert base == request_key("m", [dict(reversed(list(MSGS[0].items())))], dict(reversed(list(PARAMS.items()))), 0)
    variants = [
        request_key("other", MSGS, PARAMS, 0),
        request_key("m", [{"role": "user", "content": "What is 2+3?"}], PARAMS, 0),
        request_key("m", [{"role": "system", "content": "x"}, *MSGS], PARAMS, 0),
        request_key("m", MSGS, {**PARAMS, "temperature": 0.7}, 0),
        request_key("m", MSGS, {**PARAMS, "top_p": 0.9}, 0),
        request_key("m", MSGS, {**PARAMS, "max_tokens": 101}, 0),
        request_key("m", MSGS, {**PARAMS, "seed": 2}, 0),
        request_key("m", MSGS, {**PARAMS, "response_format": {"type": "json_object"}}, 0),
        request_key("m", MSGS, PARAMS, 1),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_one_row_per_key_and_hits(tmp_path: Path) -> None:
    db = RequestCache(tmp_path / "c.sqlite")
    assert db.put("k1", "m", completion(1), cost=0.5) is True
    assert db.put("k1", "m", completion(2), cost=0.7) is False  # never stored twice; the first answer stays
    assert db.count() == 1 and db.get("k1") == completion(1)
    db.get_many(["k1", "k1", "missing"])
    s = db.summary()
    assert s.entries == 1 and s.hits == 2 and s.models[0].cost == 0.5 and s.models[0].saved == 1.0
    db.close()


def _writer(path: str, start: int) -> int:
    db = RequestCache(Path(path))
    new = 0
    for i in range(start, start + 300):
        new += db.put(f"key-{i % 400}", "m", completion(i % 400))
        if i % 7 == 0:
            db.get_many([f"key-{(i * 13) % 400}", f"key-{i % 400}"])
    db.close()
    return new


def test_several_processes_share_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    RequestCache(path).close()
    with ProcessPoolExecutor(4) as pool:
        new = sum(pool.map(_writer, [str(path)] * 4, [0, 100, 200, 300]))
    db = RequestCache(path)
    assert db.count() == 400 and new == 400  # every key inserted exactly once across processes
    assert db.get("key-7") == completion(7)
    db.close()


def test_cost_from_the_price_table_and_cache_stats_cli(tmp_path: Path, cache_dir: Path) -> None:
    with FaultServer() as server:
        cfg = TeacherConfig(base_url=server.url, model="fault", prices={"fault": {"input": 1.0, "output": 2.0}})
        db = RequestCache(cache_path(cache_dir))
        client = TeacherClient(cfg, server.url, "fault", db)

        async def go() -> list:
            try:
                return await client.complete_many([ChatRequest(MSGS, {**PARAMS, "seed": i}) for i in range(5)])
            finally:
                await client.aclose()

        results = asyncio.run(go())
    tokens_in = sum(r["usage"]["prompt_tokens"] for r in results)
    tokens_out = sum(r["usage"]["completion_tokens"] for r in results)
    want = (tokens_in * 1.0 + tokens_out * 2.0) / 1e6
    assert client.stats.take()["cost_usd"] == pytest.approx(want)
    db.get_many(db.keys())  # five hits
    db.close()

    stats = json.loads(assay("cache", "stats", "--json").stdout)
    assert stats["entries"] == 5 and stats["hits"] == 5 and stats["size_bytes"] > 0
    (model,) = stats["models"]
    assert model["model"] == "fault" and model["prompt_tokens"] == tokens_in
    assert model["completion_tokens"] == tokens_out and model["cost"] == pytest.approx(want)
    assert 0 < model["latency_p50"] <= model["latency_p99"] and model["tokens_per_s"] > 0
    table = assay("cache", "stats").stdout
    assert "fault" in table and "5 answered requests, 5 cache hits" in table


def test_cache_stats_without_a_cache(tmp_path: Path) -> None:
    out = assay("cache", "stats", "--dir", str(tmp_path / "none")).stdout
    assert "no request cache yet" in out
