"""Bad input never stops a run: each bad line is reported with file and line and kept aside in
invalid/, and every good line goes through."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from conftest import assay, read_jsonl, read_output

GOOD = [
    {"id": f"g{i}", "domain": "math", "prompt": f"What is {i} + {i}?", "reference": {"answer": str(2 * i)}}
    for i in range(5)
]


def run_file(tmp_path: Path, name: str, data: bytes, workers: int = 1) -> tuple[Path, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    inp = tmp_path / name
    inp.write_bytes(data)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"inputs: [{name}]\nworkers: {workers}\nstages: [collect]\n")
    out = tmp_path / "run"
    assay("run", str(cfg), "--out", str(out), "--quiet")
    return out, json.loads((out / "stats.json").read_text())


def lines(*rows: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def invalid(out: Path) -> list[dict]:
    return read_jsonl(out / "invalid" / "invalid.jsonl")


def kept_ids(out: Path) -> list[str]:
    return [r["id"] for r in read_output(out)]


@pytest.mark.parametrize(
    ("bad", "expect"),
    [
        (b'{"id": "x", "domain": "math", "prompt": "unterminated', "invalid JSON"),
        (b"[1, 2, 3]", "a record must be a JSON object, got an array"),
        (b'"just a string"', "a record must be a JSON object, got a string"),
        (json.dumps({"id": "x", "domain": "math", "prompt": 5}).encode(), "field 'prompt': expected a string, got int"),
        (json.dumps({"id": "x", "domain": "math", "prompt": "p", "reference": {"tests": {"kind": "stdin",
                     "cases": [{"input": 1, "output": "2"}]}}}).encode(),
         "field 'reference.tests.cases[0].input': expected a string"),
        (json.dumps({"id": "x", "domain": "math", "prompt": "p", "responses": [{"txt": "a"}]}).encode(),
         "field 'responses[0].text': is missing"),
        (json.dumps({"id": "x", "prompt": "p"}).encode(), "field 'domain': is missing"),
        (json.dumps({"id": "x", "domain": "maths", "prompt": "p"}).encode(), "field 'domain': must be one of"),
        (json.dumps({"id": "x", "domain": "math"}).encode(), "field 'prompt': is missing"),
        (json.dumps({"id": "x", "domain": "chat", "messages": [{"role": "bot", "content": "hi"}]}).encode(),
         "field 'messages[0].role'"),
        (b'{"id": "x", "domain": "math", "prompt": "caf\xe9"}', "invalid UTF-8"),
    ],
)
def test_bad_line_is_reported_and_good_lines_kept(tmp_path: Path, bad: bytes, expect: str) -> None:
    data = lines(GOOD[0], GOOD[1], bad, GOOD[2], GOOD[3])
    out, stats = run_file(tmp_path, "in.jsonl", data)
    assert kept_ids(out) == ["g0", "g1", "g2", "g3"]
    bad_rows = invalid(out)
    assert len(bad_rows) == 1
    assert bad_rows[0]["line"] == 3
    assert bad_rows[0]["file"].endswith("in.jsonl")
    assert expect in bad_rows[0]["error"]
    assert stats["input"]["invalid"] == 1 and stats["input"]["records"] == 4


def test_bom_crlf_and_no_trailing_newline(tmp_path: Path) -> None:
    body = b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(r).encode() for r in GOOD)  # no final newline
    out, stats = run_file(tmp_path, "in.jsonl", body)
    assert kept_ids(out) == [r["id"] for r in GOOD]
    assert stats["input"]["invalid"] == 0


def test_empty_file_and_blank_lines(tmp_path: Path) -> None:
    out, stats = run_file(tmp_path, "empty.jsonl", b"")
    assert kept_ids(out) == [] and stats["input"]["rows"] == 0 and stats["output"]["records"] == 0
    out2, stats2 = run_file(tmp_path / "b", "blank.jsonl", b"\n\n" + lines(GOOD[0]) + b"   \n\n")
    assert kept_ids(out2) == ["g0"] and stats2["input"]["invalid"] == 0


def test_gzip_content_under_jsonl_name(tmp_path: Path) -> None:
    out, _ = run_file(tmp_path, "data.jsonl", gzip.compress(lines(*GOOD, b"{broken")))
    assert kept_ids(out) == [r["id"] for r in GOOD]
    assert [r["line"] for r in invalid(out)] == [6]


def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path: Path) -> None:
    many = [dict(GOOD[0], id=f"t{i}") for i in range(3000)]
    data = gzip.compress(lines(*many))
    out, stats = run_file(tmp_path, "cut.jsonl.gz", data[: len(data) // 2])
    kept = kept_ids(out)
    assert 0 < len(kept) < len(many) and kept == [f"t{i}" for i in range(len(kept))]
    (bad,) = invalid(out)
    assert bad["line"] == len(kept) + 1 and "ends early or is damaged" in bad["error"]
    assert stats["input"]["invalid"] == 1


def test_utf16_file_with_byte_order_mark_is_read(tmp_path: Path) -> None:
    text = lines(*GOOD).decode("utf-8").replace("\n", "\r\n")
    out, stats = run_file(tmp_path, "win.jsonl", text.encode("utf-16"))
    assert kept_ids(out) == [r["id"] for r in GOOD] and stats["input"]["invalid"] == 0


def test_a_broken_file_among_inputs_is_reported_and_the_others_go_through(tmp_path: Path) -> None:
    (tmp_path / "good.jsonl").write_bytes(lines(*GOOD))
    (tmp_path / "bad.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"PAR1")
    (tmp_path / "bad.arrow").write_bytes(b"ARROW1 not really")
    cfg = tmp_path / "p.yaml"
    cfg.write_text("inputs: [good.jsonl, bad.parquet, bad.arrow]\nstages: [collect]\n")
    out = tmp_path / "run"
    proc = assay("run", str(cfg), "--out", str(out))
    assert "Traceback" not in proc.stderr
    assert kept_ids(out) == [r["id"] for r in GOOD]
    errors = {Path(r["file"]).name: r["error"] for r in invalid(out)}
    assert "not a readable Parquet file" in errors["bad.parquet"] and "not a readable Arrow file" in errors["bad.arrow"]


def test_twenty_megabyte_line_goes_through(tmp_path: Path) -> None:
    big = {"id": "big", "domain": "chat", "prompt": "word " * (4 * 1024 * 1024)}  # ~20 MB
    out, _ = run_file(tmp_path, "in.jsonl", lines(GOOD[0], big, GOOD[1]))
    kept = read_output(out)
    assert [r["id"] for r in kept] == ["g0", "big", "g1"]
    assert len(kept[1]["prompt"]) == 20 * 1024 * 1024


def test_many_bad_lines_across_shards_with_workers(tmp_path: Path) -> None:
    rows: list[object] = []
    for i in range(300):
        rows.append({"id": f"r{i}", "domain": "science", "prompt": f"question {i}"})
        if i % 7 == 0:
            rows.append(b"{nope")
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(lines(*rows))
    cfg = tmp_path / "p.yaml"
    cfg.write_text("inputs: [in.jsonl]\nworkers: 2\nshard_size: 25\nstages: [collect]\n")
    out = tmp_path / "run"
    assay("run", str(cfg), "--out", str(out), "--quiet")
    assert kept_ids(out) == [f"r{i}" for i in range(300)]
    bad = invalid(out)
    assert len(bad) == 43
    # line numbers point at the broken lines in the original file
    text = inp.read_bytes().split(b"\n")
    assert all(text[b["line"] - 1] == b"{nope" for b in bad)


def test_validate_command_reports_file_and_line(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(lines(GOOD[0], b"{oops", GOOD[1], {"id": "y", "domain": "math"}))
    proc = assay("validate", str(inp), check=False)
    assert proc.returncode == 1
    assert f"{inp}:2: invalid JSON" in proc.stdout
    assert f"{inp}:4: field 'prompt': is missing" in proc.stdout
    assert "2 valid records, 2 invalid" in proc.stdout
    ok = tmp_path / "ok.jsonl"
    ok.write_bytes(lines(*GOOD))
    assert assay("validate", str(ok)).returncode == 0


def test_rows_without_domain_are_invalid_for_the_record_source(tmp_path: Path) -> None:
    inp = tmp_path / "gsm.jsonl"
    inp.write_bytes(lines({"question": "How many?", "answer": "so 3\n#### 3"}, {"answer": "#### 4"}))
    proc = assay("validate", str(inp), "--source", "record", check=False)
    assert proc.returncode == 1
    assert "field 'domain': is missing" in proc.stdout


def test_parallel_byte_range_reading_equals_sequential_reading(tmp_path: Path) -> None:
    """Plain JSONL is split by byte ranges and parsed in workers; gzip is read in order. Both give
    the same records, ids and invalid line numbers, whatever the shard size."""
    rows: list[object] = []
    for i in range(101):
        rows.append({"question": f"q{i}"} if i % 13 == 0 else
                    {"domain": "math", "prompt": f"What is {i}?", "reference": {"answer": str(i)}})
        if i % 17 == 0:
            rows.append(b"")  # blank line
        if i % 23 == 0:
            rows.append(b"{truncated")
    body = lines(*rows).rstrip(b"\n")  # and no final newline
    (tmp_path / "plain.jsonl").write_bytes(body)
    (tmp_path / "zipped.jsonl").write_bytes(gzip.compress(body))
    results = {}
    for name in ("plain.jsonl", "zipped.jsonl"):
        for shard_size in (1, 7, 1000):
            cfg = tmp_path / "p.yaml"
            cfg.write_text(f"inputs: [{{path: {name}, options: {{default_domain: chat, id_prefix: x}}}}]\n"
                           f"workers: 2\nshard_size: {shard_size}\nstages: [collect]\n")
            out = tmp_path / f"run-{name}-{shard_size}"
            assay("run", str(cfg), "--out", str(out), "--quiet")
            results[(name, shard_size)] = (read_output(out), [(r["line"], r["error"]) for r in invalid(out)])
    first = results[("plain.jsonl", 1)]
    assert len(first[0]) == 93 and len(first[1]) == 13  # 8 rows lack a prompt, 5 are truncated
    # ids come from line numbers (line 4 holds the first good row): stable across readers and shards
    assert first[0][0]["id"] == "x/4"
    for key, value in results.items():
        assert value == first, key
