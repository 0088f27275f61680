"""The command line as a user meets it: apply, show, stages, sources, validate, run summary."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO, assay, read_jsonl, write_jsonl

RECS = [
    {"id": "a", "domain": "math", "prompt": "What is 1 + 1?", "reference": {"answer": "2"}},
    {"id": "b", "domain": "code", "prompt": "x"},
    {"id": "c", "domain": "chat", "prompt": "Tell me a story about a fox."},
]


def test_apply_writes_checks_and_drops_only_with_flag(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", [*RECS, "{bad line"])
    out = tmp_path / "out" / "clean.jsonl"
    proc = assay("apply", "collect", str(inp), str(out), "--set", "default.min_prompt_chars=5")
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == ["a", "b", "c"]  # nothing dropped without --drop
    assert recs[1]["checks"]["collect"]["passed"] is False
    assert recs[0]["labels"]["verifiable"] is True and recs[2]["labels"]["verifiable"] is False
    assert "collect: 3 records in, 3 out" in proc.stdout
    invalid = read_jsonl(tmp_path / "out" / "clean.invalid.jsonl")
    assert invalid[0]["line"] == 4

    dropped = tmp_path / "out" / "dropped.jsonl"
    assay("apply", "collect", str(inp), str(dropped), "--set", "default.min_prompt_chars=5", "--drop")
    assert [r["id"] for r in read_jsonl(dropped)] == ["a", "c"]
    rejected = read_jsonl(tmp_path / "out" / "dropped.rejected.jsonl")
    assert [(r["id"], r["code"]) for r in rejected] == [("b", "collect: prompt too short")]


def test_apply_list_parameters_from_comma_separated_values(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", RECS)
    out = tmp_path / "o.jsonl"
    assay("apply", "collect", str(inp), str(out), "--set", "domains=math,chat", "--drop")
    assert [r["id"] for r in read_jsonl(out)] == ["a", "c"]


def test_apply_to_parquet_and_gzip(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", RECS)
    for name in ("o.parquet", "o.jsonl.gz"):
        assay("apply", "collect", str(inp), str(tmp_path / name))
        proc = assay("show", str(tmp_path / name), "-n", "5")
        assert "a  [math/None]" in proc.stdout and "collect" in proc.stdout


def test_apply_errors_are_clear(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", RECS)
    proc = assay("apply", "nope", str(inp), str(tmp_path / "o.jsonl"), check=False)
    assert proc.returncode == 2 and "unknown stage 'nope'" in proc.stderr
    proc = assay("apply", "collect", str(inp), str(tmp_path / "o.jsonl"), "--set", "domians=math", check=False)
    assert proc.returncode == 2 and "unknown parameter 'domians'" in proc.stderr
    proc = assay("apply", "collect", str(tmp_path / "missing.jsonl"), str(tmp_path / "o.jsonl"), check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_directory_urls_that_cannot_hold_a_run_are_refused_in_one_sentence(tmp_path: Path) -> None:
    cfg = str(REPO / "examples" / "quickstart.yaml")
    for url, said in (("https://example.com/run", "read-only"),
                      ("nosuchproto://bucket/run", "cannot open run directory")):
        proc = assay("run", cfg, "--out", url, cwd=tmp_path, check=False)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr
        # taken as a path, the URL would create ./https:/...
        assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


def test_a_run_directory_in_a_bucket_that_does_not_exist_is_one_sentence(tmp_path: Path,
                                                                          s3_server: dict[str, str]) -> None:
    proc = assay("run", str(REPO / "examples" / "quickstart.yaml"), "--out", "s3://no-such-bucket-here/run",
                 cwd=tmp_path, check=False, env={"ASSAY_RUN_MIRROR": str(tmp_path / "mirrors")})
    assert proc.returncode == 2 and "s3://no-such-bucket-here/run" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    # no credentials at all
    proc = assay("run", str(REPO / "examples" / "quickstart.yaml"), "--out", "s3://some-bucket/run", cwd=tmp_path,
                 check=False, env={"ASSAY_RUN_MIRROR": str(tmp_path / "mirrors"), "AWS_ACCESS_KEY_ID": "",
                                   "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                                   "AWS_CONFIG_FILE": str(tmp_path / "none")})
    assert proc.returncode == 2 and "Credentials" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_stages_and_sources_listings() -> None:
    out = assay("stages").stdout
    for name in ("collect", "unique-ids", "sample", "filter"):
        assert name in out
    detail = assay("stages", "collect").stdout
    assert "per_domain" in detail and "min_score" in detail
    assert "record" in assay("sources").stdout


def test_run_prints_summary_and_show_reads_run_dir(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = assay("run", str(REPO / "examples" / "quickstart.yaml"), "--out", str(out))
    assert "kept" in proc.stdout and "rejected" in proc.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input"]["invalid"] == 5
    shown = assay("show", str(out), "-n", "2").stdout
    assert shown.count("qs/") >= 2
    rej = assay("show", str(out), "--rejected", "-n", "1").stdout
    assert "rejected by" in rej


def test_json_logs_are_json(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = assay("run", str(REPO / "examples" / "quickstart.yaml"), "--out", str(out), "--json-logs")
    # every event is one JSON line (other lines may come from libraries' warnings)
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "run done"
    assert any(e["event"] == "stage done" for e in events)


def test_source_options_from_the_command_line(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "g.jsonl"
    assay("apply", "collect", str(shared_data / "gsm8k" / "test.jsonl"), str(out), "--source", "gsm8k",
          "--source-opt", "id_prefix=mine")
    recs = read_jsonl(out)
    assert len(recs) == 1319 and recs[0]["id"].startswith("mine/")
    proc = assay("validate", str(out), "--source", "gsm8k", "--source-opt", "nope=1", check=False)
    assert proc.returncode == 2 and "unknown parameter 'nope'" in proc.stderr
