"""Readers and writers: JSONL (plain, gzip), Parquet, Arrow and Hugging Face dataset folders."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assay.errors import AssayError
from assay.io.readers import dataset_files, read_rows
from assay.io.writers import HFDatasetWriter, JsonlWriter, ParquetWriter

RECS = [
    {"id": f"r{i}", "domain": "code", "prompt": f"p{i}",
     "reference": {"tests": {"kind": "function", "fn_name": "f", "class_name": None,
                             "cases": [{"args": [i, "x" * i, [1, {"k": i}]], "expected": [i] if i % 2 else "s"}]}},
     "labels": {"difficulty": i / 10}, **({"responses": [{"text": "t", "usage": {"n": i}}]} if i % 3 else {})}
    for i in range(7)
]


def roundtrip(path: Path) -> list[dict]:
    return [row.data for f in dataset_files(path) for row in read_rows(f)]


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz", "a.parquet", "hf_folder"])
def test_writers_round_trip_irregular_records(tmp_path: Path, name: str) -> None:
    from assay.io.writers import open_writer

    with open_writer(tmp_path / name) as w:
        w.write_many(RECS)
    back = roundtrip(tmp_path / name)
    # columnar formats fill a field missing from a row with null; nothing else may change
    assert [{k: v for k, v in r.items() if v is not None} for r in back] == RECS


def test_jsonl_writer_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    w = JsonlWriter(path)
    w.write({"a": 1})
    assert not path.exists()  # only a temporary until commit
    w.commit()
    assert path.read_text() == '{"a":1}\n'
    w2 = JsonlWriter(path)
    w2.write({"b": 2})
    w2.abort()
    assert path.read_text() == '{"a":1}\n' and list(tmp_path.iterdir()) == [path]


def test_hf_folder_loads_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
             "id": f"x{i}"} for i in range(5)]
    with HFDatasetWriter(tmp_path / "ds", json_columns=[]) as w:
        w.write_many(rows)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert len(ds) == 5 and ds[3]["messages"][1]["content"] == "a3"
    assert roundtrip(tmp_path / "ds") == rows  # and assay reads it back too


def test_reads_save_to_disk_and_hub_layouts(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    d = datasets.Dataset.from_list([{"question": f"q{i}", "answer": f"#### {i}"} for i in range(6)])
    d.save_to_disk(str(tmp_path / "saved"))
    assert [r["question"] for r in roundtrip(tmp_path / "saved")] == [f"q{i}" for i in range(6)]
    dd = datasets.DatasetDict({"train": d.select(range(4)), "test": d.select(range(4, 6))})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert len(roundtrip(tmp_path / "dd")) == 6
    assert [r["question"] for f in dataset_files(tmp_path / "dd", "test") for r in
            (x.data for x in read_rows(f))] == ["q4", "q5"]
    hub = tmp_path / "hub" / "data"
    hub.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"q": 1}, {"q": 2}]), hub / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist([{"q": 3}]), hub / "train-00001-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist([{"q": 9}]), hub / "test-00000-of-00001.parquet")
    train = [row.data["q"] for f in dataset_files(tmp_path / "hub", "train") for row in read_rows(f)]
    assert train == [1, 2, 3]
    with pytest.raises(AssayError, match="no split 'dev'"):
        dataset_files(tmp_path / "dd", "dev")


def test_json_array_and_resume_offsets(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"x": 1}, {"x": 2}, {"x": 3}]))
    assert [r.data["x"] for r in read_rows(tmp_path / "a.json")] == [1, 2, 3]
    assert [r.data["x"] for r in read_rows(tmp_path / "a.json", skip_lines=2)] == [3]
    p = tmp_path / "b.jsonl"
    p.write_text("".join(json.dumps({"x": i}) + "\n" for i in range(10)))
    rows = list(read_rows(p))
    resumed = list(read_rows(p, skip_lines=rows[3].line, start_offset=rows[3].offset))
    assert [r.data["x"] for r in resumed] == list(range(4, 10)) and resumed[0].line == 5
    gz = tmp_path / "c.jsonl"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert [r.data["x"] for r in read_rows(gz, skip_lines=4)] == list(range(4, 10))


def test_broken_parquet_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1 not really")
    (row,) = read_rows(bad)  # reported as the file's first row, so a run goes on with its other inputs
    assert row.data is None and row.error is not None and "not a readable Parquet file" in row.error


def test_parquet_writer_rejects_late_new_fields(tmp_path: Path) -> None:
    w = ParquetWriter(tmp_path / "x.parquet", batch_rows=2)
    w.write({"a": 1})
    w.write({"a": 2})
    w.write({"a": 3, "b": 4})
    with pytest.raises(AssayError, match="appear after the first rows"):
        w.commit()
