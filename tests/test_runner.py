"""The runner: shards, decisions, stats, resume, invalidation, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from assay.config import parse_config
from assay.record import Record, Response, Verdict
from assay.runner.pipeline import Runner
from assay.stage import ResponseCheck, Transform, stage
from conftest import assay, read_jsonl, read_output, write_jsonl


def make_records(n: int, dup_every: int = 0) -> list[dict[str, Any]]:
    recs = []
    for i in range(n):
        rid = f"r{i - 1}" if dup_every and i % dup_every == 0 and i else f"r{i}"
        recs.append({"id": rid, "domain": ["math", "code", "science", "chat"][i % 4], "source": "synthetic",
                     "prompt": f"Problem number {i}: " + "x" * (i % 50),
                     "responses": [{"text": f"answer {i} {j}"} for j in range(i % 3)]})
    return recs


def config(tmp_path: Path, stages: list[Any], **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"path": str(tmp_path / "in.jsonl")}], "stages": stages, "workers": 1, **extra}


def run(cfg: dict[str, Any], out: Path, **kw: Any) -> dict[str, Any]:
    return Runner(parse_config(cfg), out, **kw).run().stats


def markers(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): json.loads(p.read_text())["token"]
            for p in sorted((run_dir / "stages").glob("*/done/*.json"))}


# ---- test stages (in-process runs only: workers=1) -----------------------------------------

@stage("test.has-digit-7")
class HasDigit7(ResponseCheck):
    """Passes responses whose text has no digit 7."""

    def check(self, record: Record, response: Response) -> Verdict:
        bad = "7" in response["text"]
        return Verdict(not bad, float(bad), "has a 7" if bad else "ok", code="digit 7" if bad else None)


@stage("test.flaky")
class Flaky(Transform):
    """Marks records as failed while the file FLAKY_FAIL exists (a stand-in for a failing request)."""

    flag_file: str
    calls: ClassVar[list[str]] = []

    def process(self, record: Record) -> None:
        Flaky.calls.append(record["id"])
        failing = Path(self.flag_file).exists() and record["id"].endswith("3")
        record.setdefault("meta", {})["flaky"] = "error" if failing else "ok"

    def needs_retry(self, record: Record) -> bool:
        return record["meta"]["flaky"] == "error"


# ---- tests ---------------------------------------------------------------------------------

def test_pipeline_counts_match_outputs(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", make_records(400, dup_every=9))
    cfg = config(tmp_path, ["collect", "unique-ids", {"sample": {"fraction": 0.7}}], shard_size=37, workers=2)
    stats = run(cfg, tmp_path / "run")
    out = read_output(tmp_path / "run")
    assert stats["output"]["records"] == len(out)
    assert len({r["id"] for r in out}) == len(out)  # unique-ids did its job
    assert stats["shards"] == 11
    dup = stats["stages"][1]
    assert dup["records_rejected"] == 400 // 9
    for k, st in enumerate(stats["stages"], 1):
        rejected = read_jsonl(tmp_path / "run" / "rejected" / f"{k:02d}-{st['stage']}.jsonl")
        assert len(rejected) == st["records_rejected"] + st["responses_rejected"]
        assert st["records_in"] - st["records_rejected"] == st["records_out"]
        assert all(r["stage"] == st["stage"] and r["reason"] for r in rejected)
    sampled = stats["stages"][2]
    assert 0.55 < sampled["records_out"] / sampled["records_in"] < 0.85


def test_same_output_whatever_the_worker_count(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", make_records(300, dup_every=7))
    stages = ["collect", "unique-ids", {"sample": {"fraction": 0.5}}]
    run(config(tmp_path, stages, shard_size=20, workers=1), tmp_path / "a")
    run(config(tmp_path, stages, shard_size=20, workers=2), tmp_path / "b")
    assert read_output(tmp_path / "a") == read_output(tmp_path / "b")
    # a different seed samples differently
    run(config(tmp_path, stages, shard_size=20, seed=1), tmp_path / "c")
    assert [r["id"] for r in read_output(tmp_path / "c")] != [r["id"] for r in read_output(tmp_path / "a")]


def test_rerun_resumes_and_param_change_invalidates_only_downstream(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", make_records(120))
    stages: list[Any] = ["collect", {"sample": {"fraction": 0.5}}, {"filter": {"expr": "len(responses) > 0"}}]
    out = tmp_path / "run"
    run(config(tmp_path, stages, shard_size=30), out)
    first = markers(out)
    first_output = read_output(out)
    run(config(tmp_path, stages, shard_size=30), out)
    assert markers(out) == first  # nothing redone
    assert read_output(out) == first_output
    stages[1] = {"sample": {"fraction": 0.6}}
    result = Runner(parse_config(config(tmp_path, stages, shard_size=30)), out).run()
    assert result.invalidated == ["02-sample", "03-filter"]
    after = markers(out)
    for key, token in first.items():
        if key.startswith(("stages/00-read", "stages/01-collect")):
            assert after[key] == token
        else:
            assert after[key] != token
    Runner(parse_config(config(tmp_path, stages, shard_size=30)), out).run(fresh=True)
    assert all(markers(out)[k] != v for k, v in after.items())


def test_response_checks_drop_responses_and_empty_records(tmp_path: Path) -> None:
    recs = [
        {"id": "a", "domain": "math", "prompt": "p", "responses": [{"text": "1"}, {"text": "7"}, {"text": "2"}]},
        {"id": "b", "domain": "math", "prompt": "p", "responses": [{"text": "77"}]},
        {"id": "c", "domain": "math", "prompt": "p"},
        {"id": "d", "domain": "code", "prompt": "p", "responses": [{"text": "7"}]},
    ]
    write_jsonl(tmp_path / "in.jsonl", recs)
    stats = run(config(tmp_path, [{"test.has-digit-7": {"when": 'domain == "math"'}}]), tmp_path / "run")
    out = {r["id"]: r for r in read_output(tmp_path / "run")}
    assert [x["text"] for x in out["a"]["responses"]] == ["1", "2"]
    assert out["a"]["responses"][0]["checks"]["test_has_digit_7"]["passed"] is True
    assert "b" not in out  # all its responses failed
    assert "c" in out  # no responses: nothing to judge
    assert out["d"]["responses"][0]["text"] == "7" and "checks" not in out["d"]["responses"][0]  # when: skipped
    st = stats["stages"][0]
    assert (st["responses_rejected"], st["records_rejected"], st["skipped"]) == (2, 1, 1)
    assert st["rejected"] == {"test_has_digit_7: digit 7": 2, "test_has_digit_7: no response passed": 1}
    rejected = read_jsonl(tmp_path / "run" / "rejected" / "01-test.has-digit-7.jsonl")
    kinds = sorted((r["kind"], r["id"]) for r in rejected)
    assert kinds == [("record", "b"), ("response", "a"), ("response", "b")]
    # drop: false only writes the checks; min_score re-decides from the score
    run(config(tmp_path, [{"test.has-digit-7": {"drop": False}}]), tmp_path / "keep")
    kept = {r["id"]: r for r in read_output(tmp_path / "keep")}
    assert len(kept["a"]["responses"]) == 3
    assert kept["a"]["responses"][1]["checks"]["test_has_digit_7"]["passed"] is False
    run(config(tmp_path, [{"test.has-digit-7": {"max_score": 1.0}}]), tmp_path / "lenient")
    assert len({r["id"]: r for r in read_output(tmp_path / "lenient")}["a"]["responses"]) == 3


def test_incomplete_shards_are_redone_with_their_downstream(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", make_records(40))
    flag = tmp_path / "FLAKY_FAIL"
    flag.write_text("1")
    stages = [{"test.flaky": {"flag_file": str(flag)}}, {"filter": {"expr": 'meta.flaky == "ok"'}}]
    out = tmp_path / "run"
    Flaky.calls.clear()
    stats = run(config(tmp_path, stages, shard_size=10), out)
    assert stats["stages"][0]["incomplete"] == 4  # r3, r13, r23, r33, one in each shard
    assert len(read_output(out)) == 36
    flag.unlink()
    Flaky.calls.clear()
    stats = run(config(tmp_path, stages, shard_size=10), out)
    assert stats["stages"][0]["incomplete"] == 0
    assert len(Flaky.calls) == 40  # every shard had a failure, so every shard was redone
    assert len(read_output(out)) == 40  # and the filter after it saw the new records
    Flaky.calls.clear()
    run(config(tmp_path, stages, shard_size=10), out)
    assert Flaky.calls == []


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_output_formats(tmp_path: Path, fmt: str) -> None:
    recs = make_records(50)
    write_jsonl(tmp_path / "in.jsonl", recs)
    run(config(tmp_path, ["collect"], output={"format": fmt}, shard_size=20), tmp_path / "run")
    parts = sorted((tmp_path / "run" / "output").iterdir())
    assert len(parts) == 3 and all(p.name.endswith(fmt) for p in parts)
    # read back through assay's own readers, into the same records
    from assay.io.readers import read_rows

    back = [row.data for p in parts for row in read_rows(p)]
    assert [r["id"] for r in back] == [r["id"] for r in recs]
    assert back[4]["responses"] == recs[4]["responses"]


def test_inputs_from_several_files_formats_and_limits(tmp_path: Path) -> None:
    from assay.io.writers import HFDatasetWriter, ParquetWriter

    recs = make_records(30)
    write_jsonl(tmp_path / "a.jsonl", recs[:10])
    with ParquetWriter(tmp_path / "b.parquet") as w:
        w.write_many(recs[10:20])
    with HFDatasetWriter(tmp_path / "hf") as w:
        w.write_many(recs[20:30])
    cfg = {"inputs": [str(tmp_path / "a.jsonl"), {"path": str(tmp_path / "b.parquet"), "limit": 5},
                      str(tmp_path / "hf")], "workers": 1, "shard_size": 4, "stages": ["collect"]}
    stats = run(cfg, tmp_path / "run")
    ids = [r["id"] for r in read_output(tmp_path / "run")]
    assert ids == [r["id"] for r in recs[:15] + recs[20:30]]
    assert stats["input"]["rows"] == 25


def test_config_errors_are_one_sentence(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", make_records(3))
    cases = {
        "inputs: [in.jsonl]\nstages: [collect]\nshards: 3\n": "unknown key 'shards'; allowed: name, seed, inputs",
        "inputs: [in.jsonl]\nstages: [nope]\n": "unknown stage 'nope'; known stages:",
        "inputs: [in.jsonl]\nstages: [{sample: {fractoin: 0.5}}]\n":
            "stage 'sample' (stages[0]): unknown parameter 'fractoin'; allowed:",
        "inputs: [in.jsonl]\nstages: [{sample: {fraction: 2}}]\n": "parameter 'fraction'",
        "inputs: [missing.jsonl]\nstages: [collect]\n": "does not exist",
        "inputs: [in.jsonl]\nstages: [{filter: {expr: 'labels.x.__class__ or ('}}]\n": "is not valid",
        "inputs: [in.jsonl\n": "not valid YAML",
    }
    for text, expect in cases.items():
        cfg = tmp_path / "p.yaml"
        cfg.write_text(text)
        proc = assay("run", str(cfg), "--out", str(tmp_path / "run"), check=False)
        assert proc.returncode == 2, (text, proc.stderr)
        assert expect in proc.stderr, (text, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_refuses_to_write_into_a_foreign_directory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", make_records(3))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    cfg = tmp_path / "p.yaml"
    cfg.write_text("inputs: [in.jsonl]\nstages: [collect]\n")
    proc = assay("run", str(cfg), "--out", str(foreign), "--fresh", check=False)
    assert proc.returncode == 2 and "is not an assay run directory" in proc.stderr
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_pipeline_can_end_with_an_export(tmp_path: Path) -> None:
    recs = [{"id": f"e{i}", "domain": "math", "prompt": f"What is {i}+{i}?", "reference": {"answer": str(2 * i)},
             "responses": [{"text": f"<think>add</think>\n\nThe answer is {2 * i}."}]} for i in range(4)]
    write_jsonl(tmp_path / "in.jsonl", recs)
    run(config(tmp_path, ["collect"], export={"to": "sft.jsonl"}), tmp_path / "run")
    rows = read_jsonl(tmp_path / "run" / "sft.jsonl")
    assert len(rows) == 4
    assert rows[0]["messages"][-1]["content"].startswith("<think>")
    assert (tmp_path / "run" / "README.md").exists()  # the dataset card


def test_dropped_responses_are_counted_on_the_record(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "domain": "math", "prompt": "p",
                                         "responses": [{"text": "7"}, {"text": "1"}, {"text": "77"}]}])
    run(config(tmp_path, ["test.has-digit-7"]), tmp_path / "run")
    (rec,) = read_output(tmp_path / "run")
    assert len(rec["responses"]) == 1 and rec["meta"]["responses_rejected"] == 2


def test_operational_parameters_do_not_invalidate(tmp_path: Path) -> None:
    from assay.stage import build_stage

    a = build_stage("distill", {"teacher": {"local": True, "concurrency": 2, "timeout": 10}})
    b = build_stage("distill", {"teacher": {"local": True, "concurrency": 8, "timeout": 99,
                                            "prices": {"m": {"input": 1, "output": 2}}}})
    c = build_stage("distill", {"teacher": {"local": True}, "n": 3})
    assert a.identity() == b.identity()
    assert a.identity() != c.identity()


def test_inputs_may_be_urls(tmp_path: Path) -> None:
    import fsspec

    write_jsonl(tmp_path / "in.jsonl", make_records(5))
    with fsspec.open("memory://bucket/more.jsonl", "w") as f:  # a remote filesystem, in this process
        f.write("".join(json.dumps(r) + "\n" for r in make_records(8)[5:]))
    cfg = {"inputs": [f"file://{tmp_path / 'in.jsonl'}", "memory://bucket/more.jsonl"], "workers": 1,
           "stages": ["collect"]}
    run(cfg, tmp_path / "run")
    assert [r["id"] for r in read_output(tmp_path / "run")] == [f"r{i}" for i in range(8)]
    assert list((tmp_path / "run" / "inputs").rglob("*.jsonl"))  # the remote file was copied once
