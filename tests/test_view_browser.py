"""The viewer in real headless Chromium: filters narrow the list, an item shows its responses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import browser
from assay.report.viewer.server import ViewerServer, start_server
from conftest import REPO
from test_report_runs import run_verified, shared_run

ARTIFACTS = REPO / "test-artifacts"
pytestmark = pytest.mark.skipif(browser.available() is not None, reason=str(browser.available()))


@pytest.fixture(scope="module")
def run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory, "verified", lambda folder: run_verified(shared_data, folder))


@pytest.fixture(scope="module")
def server(run: Path) -> Iterator[ViewerServer]:
    srv = start_server(run, port=0)
    assert srv.index.wait(60)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.Browser]:
    with browser.Browser(ARTIFACTS) as b:
        yield b


def shown_total(b: browser.Browser) -> int:
    return int(b.find("#result-count").attr("data-total") or -1)


def rows(b: browser.Browser) -> list[dict[str, str]]:
    return b.script("return Array.from(document.querySelectorAll('#items tbody tr')).map(tr => ({"
                    "set: tr.dataset.set, id: tr.cells[0].innerText, reason: tr.cells[3].innerText,"
                    "prompt: tr.cells[7].innerText}));")


def test_filter_narrows_and_item_shows_reason(chromium: browser.Browser, server: ViewerServer, run: Path) -> None:
    stats = {s["stage"]: s for s in json.loads((run / "stats.json").read_text())["stages"]}
    chromium.get(server.url)
    chromium.wait_for("#items")
    everything = shown_total(chromium)
    assert everything > 100 and len(rows(chromium)) == 50
    chromium.screenshot("view-list", full_page=False)

    # choosing a stage in the "where" list submits the form by itself
    chromium.find("#f-set option[value='math-verify']").click()
    chromium.wait_until("location.search.includes('set=math-verify')")
    chromium.wait_for("#items")
    narrowed = shown_total(chromium)
    mv = stats["math-verify"]
    assert narrowed == mv["records_rejected"] + mv["responses_rejected"] < everything
    assert {r["set"] for r in rows(chromium)} == {"math-verify"}

    # then a text search narrows further
    box = chromium.find("#f-q")
    box.clear()
    box.type("Janet")
    chromium.find("#f-go").click()
    chromium.wait_until("location.search.includes('q=Janet')")
    found = rows(chromium)
    assert 0 < len(found) < narrowed
    assert all("janet" in r["prompt"].lower() for r in found)
    chromium.screenshot("view-filtered", full_page=False)

    # an item: the reason it was rejected, and all responses of its prompt side by side
    chromium.find("#items tbody tr a").click()
    reason = chromium.wait_for("#item-reason")
    assert "math_verify" in reason.text
    boxes = chromium.script("return Array.from(document.querySelectorAll('#responses .resp'))"
                            ".map(d => { const r = d.getBoundingClientRect(); return [r.left, r.top]; });")
    assert len(boxes) == 4
    assert len({round(top) for _, top in boxes}) == 1 and len({round(left) for left, _ in boxes}) == 4
    statuses = chromium.script("return Array.from(document.querySelectorAll('#responses .resp'))"
                               ".map(d => d.dataset.status);")
    assert "rejected" in statuses or "in a rejected record" in statuses
    chromium.screenshot("view-item")
