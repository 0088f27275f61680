"""The report in real headless Chromium: what a user sees matches the run.

Screenshots go to test-artifacts/ (git-ignored). ASSAY_UPDATE_DOCS=1 also refreshes
docs/report.png, the README's picture of the quickstart report.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import browser
from assay.report.build import build_report
from conftest import REPO, assay
from test_report_runs import run_verified, shared_run

ARTIFACTS = REPO / "test-artifacts"
pytestmark = pytest.mark.skipif(browser.available() is not None, reason=str(browser.available()))


@pytest.fixture(scope="module")
def chromium() -> browser.Browser:
    with browser.Browser(ARTIFACTS) as b:
        yield b


@pytest.fixture(scope="module")
def quickstart_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def build(folder: Path) -> Path:
        assay("run", str(REPO / "examples" / "quickstart.yaml"), "--out", str(folder / "run"), "--quiet")
        return folder / "run"
    run = shared_run(tmp_path_factory, "quickstart", build)
    assay("report", str(run))
    return run


def seen_funnel(b: browser.Browser) -> dict[str, dict[str, float]]:
    """The funnel table as rendered: {stage: {column: number}}."""
    rows = b.script("""
        return Array.from(document.querySelectorAll('#funnel-table tbody tr')).map(tr => [
            tr.dataset.stage,
            Object.fromEntries(Array.from(tr.querySelectorAll('td[data-col]'))
                .map(td => [td.dataset.col, td.innerText]))
        ]);""")
    return {stage: {k: float(v.replace(",", "")) for k, v in cols.items()} for stage, cols in rows}


def check_funnel(b: browser.Browser, stats: dict) -> None:
    seen = seen_funnel(b)
    assert list(seen) == ["read"] + [s["stage"] for s in stats["stages"]]
    for st in stats["stages"]:
        for col in ("records_in", "records_out", "records_rejected", "responses_in", "responses_out",
                    "responses_rejected"):
            assert seen[st["stage"]][col] == st[col], (st["stage"], col)
    assert seen["read"]["records_in"] == stats["input"]["rows"]
    assert seen["read"]["records_out"] == stats["input"]["records"]
    assert seen["read"]["records_rejected"] == stats["input"]["invalid"]
    tiles = b.script("return Object.fromEntries(Array.from(document.querySelectorAll('.tile[data-testid]'))"
                     ".map(t => [t.dataset.testid, t.querySelector('.v').innerText]));")
    assert float(tiles["output-records"].replace(",", "")) == stats["output"]["records"]
    assert float(tiles["output-responses"].replace(",", "")) == stats["output"]["responses"]


def open_example(b: browser.Browser, stage: str) -> tuple[str, str]:
    """Open the first examples of a stage's first reason; (visible reason text, item location)."""
    summary = b.find(f'.stage-rejections[data-stage="{stage}"] details.reason-examples > summary')
    summary.click()
    example = b.find(f'.stage-rejections[data-stage="{stage}"] details.reason-examples[open] .example')
    reason = example.find(".reason")
    visible = b.script("const r = arguments[0].getBoundingClientRect(); return r.width > 0 && r.height > 0;",
                       {browser.ELEMENT: reason.ref})
    assert visible
    return reason.text, example.find(".muted").text


def test_quickstart_report_in_chromium(chromium: browser.Browser, quickstart_report: Path) -> None:
    stats = json.loads((quickstart_report / "stats.json").read_text())
    chromium.get((quickstart_report / "report.html").as_uri())
    assert chromium.title == "assay report: quickstart"
    check_funnel(chromium, stats)
    reason, where = open_example(chromium, "collect")
    rejected = [json.loads(x) for x in (quickstart_report / "rejected" / "01-collect.jsonl").read_text().splitlines()]
    assert reason == rejected[0]["reason"]  # the check's reason, as the user reads it
    assert where == "rejected/01-collect.jsonl:1"
    charts = chromium.script("return Array.from(document.querySelectorAll('svg.chart'))"
                             ".map(s => s.getBoundingClientRect().width);")
    assert charts and all(w > 100 for w in charts)  # inline SVG renders offline
    shot = chromium.screenshot("report-quickstart")
    assert shot is not None and shot.stat().st_size > 10_000
    if os.environ.get("ASSAY_UPDATE_DOCS"):  # the top of the page, as the README shows it
        docs_run = REPO / "runs" / "quickstart"  # the path `make demo` uses (git-ignored)
        assay("run", str(REPO / "examples" / "quickstart.yaml"), "--out", str(docs_run), "--fresh", "--quiet")
        assay("report", str(docs_run))
        size = chromium.call("GET", "/window/rect")
        chromium.call("POST", "/window/rect", {"width": 1280, "height": 1500})
        chromium.get((docs_run / "report.html").as_uri())
        shot = chromium.screenshot("report-quickstart-docs", full_page=False)
        assert shot is not None
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "report.png")
        chromium.call("POST", "/window/rect", {"width": size["width"], "height": size["height"]})


def test_verified_report_in_chromium(chromium: browser.Browser, shared_data: Path,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    run = shared_run(tmp_path_factory, "verified", lambda folder: run_verified(shared_data, folder))
    path, _ = build_report(run, run / "report-browser.html")
    stats = json.loads((run / "stats.json").read_text())
    chromium.get(path.as_uri())
    check_funnel(chromium, stats)
    reason, where = open_example(chromium, "math-verify")
    file, line = where.rsplit(":", 1)
    item = json.loads((run / file).read_text().splitlines()[int(line) - 1])
    assert reason == item["reason"] and "!=" in reason  # e.g. "math_verify: 26 != 18 (number)"
    bars = chromium.script("return document.querySelectorAll('#check-response-math_verify svg rect').length;")
    assert bars >= 2
    chromium.screenshot("report-verified")
