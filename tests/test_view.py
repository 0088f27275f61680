"""`assay view`: the read-only browser over HTTP (filters, search, pages, one item, safety)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest

from assay.report.viewer.index import RunIndex
from assay.report.viewer.server import ViewerServer, start_server
from conftest import REPO, assay, quickstart_copy, read_output, write_jsonl
from test_report_runs import run_big, run_verified, shared_run


@pytest.fixture(scope="module")
def verified_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory, "verified", lambda folder: run_verified(shared_data, folder))


@pytest.fixture(scope="module")
def server(verified_run: Path) -> Iterator[ViewerServer]:
    srv = start_server(verified_run, port=0)
    assert srv.index.wait(60)
    yield srv
    srv.shutdown()
    srv.server_close()


def get(srv: ViewerServer, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(srv.url.rstrip("/") + path, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def api(srv: ViewerServer, path: str, **params: Any) -> Any:
    status, body = get(srv, f"{path}?{urlencode(params)}")
    assert status == 200, body
    return json.loads(body)


def all_items(srv: ViewerServer, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    start = 0
    while True:
        page = api(srv, "/api/items", **params, start=start)
        out += page["items"]
        start += 50
        if start >= page["total"]:
            return out


def test_index_counts_every_item(server: ViewerServer, verified_run: Path) -> None:
    stats = json.loads((verified_run / "stats.json").read_text())
    facets = dict(api(server, "/api/items")["facets"]["set"])
    assert facets.pop("kept") == stats["output"]["records"]
    for st in stats["stages"]:
        assert facets.get(st["stage"], 0) == st["records_rejected"] + st["responses_rejected"], st["stage"]


def test_filters_narrow_the_list(server: ViewerServer, verified_run: Path) -> None:
    stats = {s["stage"]: s for s in json.loads((verified_run / "stats.json").read_text())["stages"]}
    everything = api(server, "/api/items")["total"]
    responses = all_items(server, set="math-verify", kind="response")
    assert len(responses) == stats["math-verify"]["responses_rejected"] < everything
    assert all(i["set"] == "math-verify" and i["kind"] == "response" for i in responses)
    assert all(i["code"] == "math_verify: wrong_answer" for i in responses)
    by_reason = api(server, "/api/items", reason="dedup_exact: duplicate")
    assert by_reason["total"] == 6 and {i["set"] for i in by_reason["items"]} == {"dedup-exact"}
    scraped = all_items(server, source="web-scrape")
    assert [i["id"] for i in scraped] == ["leak/0", "leak/1", "leak/2"]
    english = api(server, "/api/items", label="labels.language=en")
    kept = read_output(verified_run)
    assert english["total"] >= sum(1 for r in kept if r["labels"].get("language") == "en")
    wrong = all_items(server, check="check:math_verify=wrong_answer", set="kept")
    assert {i["id"] for i in wrong} == {r["id"] for r in kept if any(
        x["checks"].get("math_verify", {}).get("code") == "wrong_answer" for x in r.get("responses") or ())}
    assert api(server, "/api/items", source="no-such-source")["total"] == 0


def test_search_finds_every_word(server: ViewerServer, verified_run: Path) -> None:
    res = api(server, "/api/items", q="Janet ducks")
    ids = {i["id"] for i in res["items"]}
    assert "gsm8k-sol/0000" in ids and res["finished"]
    for item in res["items"]:
        _, page = get(server, f"/item?row={item['row']}")
        assert "janet" in page.lower() and "ducks" in page.lower()
    assert api(server, "/api/items", q="Janet zebra-not-there")["items"] == []
    quoted = api(server, "/api/items", q='"')  # JSON-escaped characters are found too
    assert quoted["items"] or quoted["finished"]


def test_pages_cover_everything_once(server: ViewerServer) -> None:
    items = all_items(server)
    rows = [i["row"] for i in items]
    assert len(rows) == len(set(rows)) == api(server, "/api/items")["total"]
    status, html = get(server, "/?start=50")
    assert status == 200 and "id='prev'" in html and "showing 51-100" in html


def test_item_shows_all_responses_of_its_prompt(server: ViewerServer, verified_run: Path) -> None:
    inputs = {}
    for line in (verified_run.parent / "inputs.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # the run's deliberately broken lines
            continue
        inputs[rec["id"]] = rec
    checked = 0
    for item in all_items(server, set="math-verify", kind="response")[:15]:
        data = api(server, "/api/item", row=item["row"])
        original = inputs[item["id"]]
        texts = sorted(r["response"]["text"] for r in data["responses"])
        assert texts == sorted(r["text"] for r in original["responses"])  # 4 of 4, kept or not
        assert {r["status"] for r in data["responses"]} <= {"kept", "rejected", "in a rejected record"}
        for r in data["responses"]:
            assert "math_verify" in r["response"]["checks"]
        checked += 1
    assert checked == 15
    _, html = get(server, f"/item?row={item['row']}")
    assert len(re.findall(r"class='resp( rejected)?'", html)) == 4 and "id='item-reason'" in html


def test_report_links_open_the_same_item(server: ViewerServer, verified_run: Path) -> None:
    line = 2
    item = json.loads((verified_run / "rejected" / "04-math-verify.jsonl").read_text().splitlines()[line - 1])
    data = api(server, "/api/item", file="rejected/04-math-verify.jsonl", line=line)
    assert data["item"]["id"] == item["id"] and data["item"]["reason"] == item["reason"]
    status, _ = get(server, "/item?" + urlencode({"file": "rejected/04-math-verify.jsonl", "line": 99999}))
    assert status == 404


def test_read_only_and_loopback_only(server: ViewerServer) -> None:
    assert server.server_address[0] == "127.0.0.1"
    assert get(server, "/", headers={"Host": "attacker.example:80"})[0] == 403  # DNS rebinding
    assert get(server, "/", headers={"Host": f"localhost:{server.server_address[1]}"})[0] == 200
    assert get(server, "/", method="POST")[0] == 405
    assert get(server, "/item?" + urlencode({"file": "../../../../etc/passwd", "line": 1}))[0] == 404
    assert get(server, "/../../etc/passwd")[0] == 404
    assert get(server, "/item?row=-1")[0] == 404
    assert get(server, "/item?row=abc")[0] == 404


def test_markup_in_records_is_escaped(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    write_jsonl(tmp_path / "in.jsonl", [{"id": "x/1", "domain": "chat", "prompt": evil, "source": evil,
                                          "labels": {"category": evil}},
                                         {"id": "x/2", "domain": "chat", "prompt": "ok"}])
    (tmp_path / "p.yaml").write_text(json.dumps({"inputs": [{"path": str(tmp_path / "in.jsonl")}],
                                                 "stages": [{"filter": {"expr": 'prompt == "ok"'}}]}))
    assay("run", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "run"), "--quiet")
    assay("report", str(tmp_path / "run"))
    html = (tmp_path / "run" / "report.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    srv = start_server(tmp_path / "run", port=0)
    try:
        srv.index.wait(30)
        for path in ("/", "/item?row=1", "/?" + urlencode({"source": evil})):
            status, page = get(srv, path)
            assert status == 200 and "<script>alert" not in page and "<img src=x" not in page
    finally:
        srv.shutdown()
        srv.server_close()


def test_big_run_stays_responsive(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = shared_run(tmp_path_factory, "big", run_big)
    t0 = time.perf_counter()
    srv = start_server(run, port=0)
    try:
        status, _ = get(srv, "/")  # answers while the index is still being built
        first = time.perf_counter() - t0
        assert status == 200 and first < 5
        assert srv.index.wait(120)
        idx = srv.index
        assert idx.progress.rows == 30_000
        t1 = time.perf_counter()
        page = api(srv, "/api/items", source="src1", start=5000)
        assert page["total"] == 10_000 and len(page["items"]) == 50 and time.perf_counter() - t1 < 3
        # a search over everything pauses at its time budget and says where to go on
        cols, _ = idx.snapshot()
        hits, scanned, finished = idx.search(np.arange(30_000), cols, "theta", want=10**9, budget_s=0.05)
        assert not finished and 0 < scanned < 30_000 and hits
        assert all("theta" in json.dumps(idx.read(h, cols)) for h in hits)
        assert len(hits) == sum("theta" in json.dumps(idx.read(r, cols)) for r in range(scanned))
    finally:
        srv.shutdown()
        srv.server_close()


def test_memory_per_item_is_small(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = shared_run(tmp_path_factory, "big", run_big)
    idx = RunIndex(run).build()
    cols, posts = idx.snapshot()
    per_row = sum(a.nbytes for a in cols.values()) / len(cols["offset"])
    per_row += sum(p.nbytes for p in posts.values()) / len(cols["offset"])
    assert per_row < 80


def test_cli_prints_the_url_and_binds_loopback(verified_run: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "assay", "view", str(verified_run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "bound to loopback" in line and "read-only" in line
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        with urllib.request.urlopen(url.group(0) + "api/status", timeout=30) as resp:
            assert "rows" in json.loads(resp.read())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)


def test_cli_warns_off_loopback_and_refuses_a_busy_port(verified_run: Path) -> None:
    srv = start_server(verified_run, port=0)
    try:
        busy = str(srv.server_address[1])
        proc = assay("view", str(verified_run), "--port", busy, check=False, timeout=60)
        assert proc.returncode == 2 and "choose another --port" in proc.stderr
    finally:
        srv.shutdown()
        srv.server_close()
    proc = subprocess.Popen([sys.executable, "-m", "assay", "view", str(verified_run), "--host", "0.0.0.0",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        out = proc.stdout.readline() if proc.stdout else ""
        assert "assay view" in out
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert "warning" in err and "anyone who can reach this machine" in err.replace("\n", " ")


def test_view_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    proc = assay("view", str(tmp_path), check=False)
    assert proc.returncode == 2 and "stats.json" in proc.stderr
    assert REPO.exists()


def test_parquet_output_is_browsed_through_the_last_stage(tmp_path: Path) -> None:
    cfg = quickstart_copy(tmp_path, "output: {format: parquet}")
    assay("run", str(cfg), "--out", str(tmp_path / "run"), "--quiet")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    idx = RunIndex(tmp_path / "run").build()
    cols, _ = idx.snapshot()
    kept = int((cols["set"] == idx.sets.codes["kept"]).sum())
    assert kept == stats["output"]["records"]
