"""Shared storage: URL inputs copied through fsspec, and the teacher request cache written by many
processes at once (per-writer segments, merged index, folded into SQLite at the end)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pytest

from assay.config import InputSpec
from assay.engines.shared_cache import SEGMENT_DIR, SegmentCache, merge_segments
from assay.engines.storage import local_copy, plain_path, stage_inputs
from assay.errors import AssayError
from assay.teacher.cache import RequestCache, cache_path
from conftest import write_jsonl


def completion(text: str) -> dict[str, object]:
    return {"text": text, "content": text, "reasoning": None, "finish_reason": "stop",
            "usage": {"prompt_tokens": 3, "completion_tokens": len(text)}}


# ---- inputs ---------------------------------------------------------------------------------


@pytest.fixture
def memfs() -> fsspec.AbstractFileSystem:
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/assay-storage"):
        fs.rm("/assay-storage", recursive=True)


def test_url_input_is_copied_once_and_again_when_it_changes(tmp_path: Path, memfs: fsspec.AbstractFileSystem,
                                                            shared_data: Path) -> None:
    data = (shared_data / "gsm8k" / "test.jsonl").read_bytes()
    memfs.pipe("/assay-storage/gsm8k.jsonl", data)
    url = "memory://assay-storage/gsm8k.jsonl"
    first = local_copy(url, tmp_path / "inputs")
    assert first.read_bytes() == data
    stamp = first.stat().st_mtime_ns
    time.sleep(0.01)
    assert local_copy(url, tmp_path / "inputs") == first and first.stat().st_mtime_ns == stamp  # reused
    memfs.pipe("/assay-storage/gsm8k.jsonl", data[: len(data) // 2])  # the source changed
    again = local_copy(url, tmp_path / "inputs")
    assert again == first and again.read_bytes() == data[: len(data) // 2]
    assert not [p for p in (tmp_path / "inputs").iterdir() if ".part-" in p.name]


def test_url_folder_input_keeps_its_layout(tmp_path: Path, memfs: fsspec.AbstractFileSystem) -> None:
    memfs.pipe("/assay-storage/ds/data/train-00000-of-00002.jsonl", b'{"a": 1}\n')
    memfs.pipe("/assay-storage/ds/data/train-00001-of-00002.jsonl", b'{"a": 2}\n')
    specs = stage_inputs([InputSpec(path="memory://assay-storage/ds"), InputSpec(path="plain.jsonl")],
                         tmp_path / "inputs")
    got = Path(specs[0].path)
    assert sorted(p.name for p in (got / "data").iterdir()) == ["train-00000-of-00002.jsonl",
                                                               "train-00001-of-00002.jsonl"]
    assert specs[1].path == "plain.jsonl"


def test_file_urls_are_plain_paths_and_missing_urls_say_so(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "x.jsonl", [{"a": 1}])
    assert plain_path(f"file://{f}") == str(f)
    assert stage_inputs([InputSpec(path=f"file://{f}")], tmp_path)[0].path == str(f)
    with pytest.raises(AssayError, match="does not exist"):
        local_copy("memory://assay-storage/nothing-here.jsonl", tmp_path / "inputs")


# ---- the request cache ------------------------------------------------------------------------


def _writer(root: str, worker: int, keys: list[str], go: Any) -> None:
    cache = SegmentCache(root, refresh_seconds=0.0)
    go.wait(60)
    for k in keys:
        if not cache.get_many([k]):  # as the teacher client does: look first, pay, then store
            cache.put(k, "m", completion(f"{k} by {worker}"))
    cache.close()


def test_many_processes_write_the_cache_at_once_and_every_answer_is_found(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    keys = [f"k{i:04d}" for i in range(400)]
    ctx = mp.get_context("spawn")
    # four writers with overlapping keys, all at the same time
    go = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(root), w, keys[w * 80: w * 80 + 160], go)) for w in range(4)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # all four are up and waiting
    go.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(list((root / SEGMENT_DIR).glob("*.closed"))) == 4
    assert len(list((root / SEGMENT_DIR).glob("*.seg"))) >= 2  # several writers had something to store
    reader = SegmentCache(root)
    got = reader.get_many(keys[:400])
    assert set(got) == set(keys)  # the writers covered every key, most of them twice
    assert all(got[k]["text"].startswith(f"{k} by ") for k in got)
    reader.close()
    added = merge_segments(root)
    assert added == len(keys)  # a key two writers both stored is kept once
    assert not list((root / SEGMENT_DIR).glob("*.seg"))
    sqlite = RequestCache(cache_path(root))
    assert sqlite.keys() == set(keys)
    sqlite.close()
    # and after the merge, a segment cache still finds them (read through SQLite)
    again = SegmentCache(root)
    assert set(again.get_many(keys)) == set(keys)
    again.close()


def test_a_killed_writers_torn_line_is_ignored_and_its_whole_answers_kept(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    w = SegmentCache(root, writer="run1-host-1-aaaa")
    w.put("good", "m", completion("fine"))
    seg = root / SEGMENT_DIR / "run1-host-1-aaaa.seg"
    w._append.write(b'{"key": "torn", "model": "m", "comp')  # the process died mid-write
    reader = SegmentCache(root)
    assert set(reader.get_many(["good", "torn"])) == {"good"}
    assert merge_segments(root) == 0  # the writer never closed: its segment stays
    assert seg.exists()
    assert merge_segments(root, finished_prefix="run1-") == 1  # its run has ended: fold it in
    assert not seg.exists()


def test_a_second_writer_sees_the_first_writers_answers_without_paying_again(tmp_path: Path) -> None:
    a = SegmentCache(tmp_path, refresh_seconds=0.0)
    b = SegmentCache(tmp_path, refresh_seconds=0.0)
    assert a.put("x", "m", completion("one"))
    assert not a.put("x", "m", completion("again"))  # never stored twice by one writer
    assert b.get_many(["x"])["x"]["text"] == "one"
    assert not b.put("x", "m", completion("two"))  # b knows it now
    a.close()
    b.close()


def test_object_store_cache_writes_whole_objects_and_index_last(memfs: fsspec.AbstractFileSystem) -> None:
    root = "memory://assay-storage/cache"
    w = SegmentCache(root, flush_every=3, flush_seconds=3600, refresh_seconds=0.0)
    for i in range(4):
        w.put(f"k{i}", "m", completion(str(i)))
    names = sorted(p.rsplit("/", 1)[-1] for p in memfs.ls(f"/assay-storage/cache/{SEGMENT_DIR}", detail=False))
    assert len([n for n in names if n.endswith(".seg")]) == 1  # 3 answers flushed, 1 pending
    assert len([n for n in names if n.endswith(".idx")]) == 1
    assert set(w.get_many(["k0", "k3"])) == {"k0", "k3"}  # its own pending answer too
    # a segment object without its index (a writer died between the two puts) is ignored
    memfs.pipe(f"/assay-storage/cache/{SEGMENT_DIR}/dead-000000.seg",
               orjson.dumps({"key": "ghost", "model": "m", "completion": completion("boo")}) + b"\n")
    r = SegmentCache(root, refresh_seconds=0.0)
    assert set(r.get_many(["k0", "k1", "k2", "k3", "ghost"])) == {"k0", "k1", "k2"}
    w.close()
    assert set(r.get_many(["k3"])) == {"k3"}
    assert merge_segments(root) == 0  # nothing to fold on an object store


def test_sqlite_answers_from_earlier_runs_are_read(tmp_path: Path) -> None:
    old = RequestCache(cache_path(tmp_path))
    old.put("paid", "m", completion("earlier"))
    old.close()
    seg = SegmentCache(tmp_path)
    assert seg.get_many(["paid"])["paid"]["text"] == "earlier"
    seg.close()
    assert os.path.exists(cache_path(tmp_path))


def _killed_writer(root: str) -> None:
    cache = SegmentCache(root)
    for k in ("a", "b", "c"):
        cache.put(k, "m", completion(k))
    os.kill(os.getpid(), signal.SIGKILL)  # dies without closing: no .closed marker


def test_segments_of_a_killed_writer_of_this_machine_are_folded_in(tmp_path: Path) -> None:
    proc = mp.get_context("spawn").Process(target=_killed_writer, args=(str(tmp_path),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    assert not list((tmp_path / SEGMENT_DIR).glob("*.closed"))
    idle = SegmentCache(tmp_path)  # a writer that stored nothing leaves only its .closed marker
    idle.close()
    assert merge_segments(tmp_path) == 3  # its process is gone: nobody will ever append again
    assert not list((tmp_path / SEGMENT_DIR).iterdir())
    sqlite = RequestCache(cache_path(tmp_path))
    assert sqlite.keys() == {"a", "b", "c"}
    sqlite.close()
