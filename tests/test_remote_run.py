"""A run directory on an object store (s3:// through fsspec), against a real S3 API (moto's server
on loopback): the same results as a local run, resume from the store alone, kills, leases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from assay.config import load_config
from assay.errors import AssayError
from assay.runner.pipeline import Runner
from assay.runner.remote import RemoteRun, mirror_path
from conftest import assay, read_jsonl, strip_timing, write_jsonl


def store(url: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(use_listings_cache=False), url[len("s3://"):]


def snapshot_store(url: str) -> dict[str, Any]:
    """What a user downloads from the store: output, rejected, invalid and stats (no timings)."""
    fs, root = store(url)

    def lines(key: str) -> list[Any]:
        return [json.loads(x) for x in fs.cat_file(key).decode().splitlines() if x.strip()]

    output = []
    for key in sorted(fs.find(f"{root}/output")):
        output.extend(lines(key))
    rejected = {key.rsplit("/", 1)[-1]: lines(key) for key in sorted(fs.find(f"{root}/rejected"))}
    return {"output": output, "rejected": rejected, "invalid": lines(f"{root}/invalid/invalid.jsonl"),
            "stats": strip_timing(json.loads(fs.cat_file(f"{root}/stats.json")))}


def snapshot_local(run_dir: Path) -> dict[str, Any]:
    output = []
    for part in sorted((run_dir / "output").glob("part-*.jsonl")):
        output.extend(read_jsonl(part))
    return {"output": output,
            "rejected": {p.name: read_jsonl(p) for p in sorted((run_dir / "rejected").glob("*.jsonl"))},
            "invalid": read_jsonl(run_dir / "invalid" / "invalid.jsonl"),
            "stats": strip_timing(json.loads((run_dir / "stats.json").read_text()))}


def markers(url: str) -> dict[str, bytes]:
    fs, root = store(url)
    keys = [k for k in fs.find(f"{root}/stages") if "/done/" in k]
    return dict(zip(keys, [fs.cat_file(k) for k in keys], strict=True))


def make_input(path: Path, n: int) -> Path:
    rows: list[Any] = []
    for i in range(n):
        near = i % 50 == 7  # a near duplicate of the record before it
        base = i - 1 if near else i
        rows.append({"id": f"r{i}", "domain": ("math", "code", "science", "chat")[i % 4], "source": "synthetic",
                     "prompt": f"Problem {base}: how many ways are there to arrange {base % 17} red and "
                               f"{base % 11} blue beads on a necklace of {base % 23 + 3} places"
                               + (" please" if near else "") + ". " + "detail " * (i % 9),
                     "reference": {"answer": str(base % 97)} if i % 5 else None,
                     "responses": [{"text": f"The answer is {base % 97 + j}."} for j in range(i % 3)]})
        if i % 700 == 0:
            rows.append("{broken json")
    return write_jsonl(path, rows)


PIPELINE = """
inputs: [in.jsonl]
shard_size: 400
workers: 2
seed: 3
stages:
  - collect: {per_domain: {code: {min_prompt_chars: 20}}}
  - unique-ids
  - dedup-minhash
  - sample: {fraction: 0.9}
  - filter: {expr: 'labels.verifiable or domain == "chat"'}
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    make_input(tmp_path / "in.jsonl", 4000)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(PIPELINE)
    return cfg


def run(cfg: Path, out: str, **kw: Any) -> Any:
    return Runner(load_config(cfg), out, **kw).run(config_text=cfg.read_text())


def test_a_run_on_s3_equals_the_local_run_and_resumes_from_the_store_alone(
        tmp_path: Path, pipeline: Path, s3_bucket: str) -> None:
    local = tmp_path / "local"
    run(pipeline, str(local))
    expected = snapshot_local(local)
    assert expected["stats"]["output"]["records"] > 1000
    assert expected["stats"]["stages"][2]["records_rejected"] > 0  # dedup-minhash found the near copies

    url = f"{s3_bucket}/runs/first"
    result = run(pipeline, url)
    assert result.location == url
    assert snapshot_store(url) == expected
    assert snapshot_local(result.run_dir) == expected  # this machine's copy is the same
    done = markers(url)
    assert len(done) == 6 * expected["stats"]["shards"]

    # rerun: every shard of every stage is done in the store; nothing is redone
    run(pipeline, url)
    assert markers(url) == done
    assert snapshot_store(url) == expected

    # another machine: no local copy at all; it resumes from the store and redoes nothing
    shutil.rmtree(mirror_path(url))
    run(pipeline, url)
    assert markers(url) == done
    assert snapshot_store(url) == expected

    # a changed stage invalidates that stage and the ones after it, in the store too
    pipeline.write_text(PIPELINE.replace("fraction: 0.9", "fraction: 0.5"))
    result = run(pipeline, url)
    assert sorted(result.invalidated) == ["04-sample", "05-filter"]
    after = markers(url)
    assert {k: v for k, v in after.items() if "/04-" not in k and "/05-" not in k} == \
        {k: v for k, v in done.items() if "/04-" not in k and "/05-" not in k}
    assert after.keys() == done.keys() and after != done
    assert snapshot_store(url)["stats"]["output"]["records"] < expected["stats"]["output"]["records"]


def test_a_shard_redone_on_another_machine_is_downloaded_not_trusted_from_the_local_copy(
        tmp_path: Path, pipeline: Path, s3_bucket: str) -> None:
    """A machine whose copy of a shard is older than the store's must read the store's."""
    url = f"{s3_bucket}/runs/second"
    run(pipeline, url)
    stale = tmp_path / "stale-copy"
    shutil.copytree(mirror_path(url), stale)
    # "another machine" redoes the sample stage with other parameters, then this one resumes
    shutil.rmtree(mirror_path(url))
    pipeline.write_text(PIPELINE.replace("fraction: 0.9", "fraction: 0.6"))
    run(pipeline, url)
    expected = snapshot_store(url)
    shutil.rmtree(mirror_path(url))
    shutil.copytree(stale, mirror_path(url))  # this machine still holds the 0.9 shards
    before = markers(url)
    run(pipeline, url)
    assert markers(url) == before  # nothing redone...
    assert snapshot_store(url) == expected  # ...and the outputs are the store's, not the stale copy's


def test_a_run_directory_url_that_holds_other_files_is_refused(s3_bucket: str, pipeline: Path) -> None:
    fs, root = store(s3_bucket)
    fs.pipe_file(f"{root}/data/keep.txt", b"user data")
    with pytest.raises(AssayError, match="not an assay run directory"):
        run(pipeline, f"{s3_bucket}/data")
    assert fs.cat_file(f"{root}/data/keep.txt") == b"user data"


def test_a_live_lease_refuses_a_second_run_and_a_stale_one_is_taken_over(
        s3_bucket: str, pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{s3_bucket}/runs/leased"
    remote = RemoteRun(url)
    lease = {"owner": "someone", "host": "another-machine", "pid": 1, "renewed": time.time()}
    fs, root = store(url)
    fs.pipe_file(f"{root}/.lease.json", json.dumps(lease).encode())
    with pytest.raises(AssayError, match=r"another assay run .*another-machine.* holds"):
        run(pipeline, url)
    assert remote.names(remote.local) == [".lease.json"]  # nothing written
    fs.pipe_file(f"{root}/.lease.json", json.dumps({**lease, "renewed": time.time() - 3600}).encode())
    run(pipeline, url)
    assert ".lease.json" not in remote.names(remote.local)  # released at the end
    assert snapshot_store(url)["stats"]["output"]["records"] > 1000


def _start(cfg: Path, out: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "assay", "run", str(cfg), "--out", out, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env})


def test_sigkill_mid_run_on_s3_then_resume_equals_a_clean_run(tmp_path: Path, s3_bucket: str) -> None:
    make_input(tmp_path / "in.jsonl", 12_000)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(PIPELINE.replace("shard_size: 400", "shard_size: 500"))
    clean = f"{s3_bucket}/runs/clean"
    t0 = time.monotonic()
    proc = _start(cfg, clean, {})
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
    full = time.monotonic() - t0
    expected = snapshot_store(clean)

    killed = f"{s3_bucket}/runs/killed"
    kills = 0
    for k in range(4):
        # each kill on a machine of its own (a fresh local copy), or on the same one
        proc = _start(cfg, killed, {"ASSAY_RUN_MIRROR": str(tmp_path / f"node-{k % 2}")})
        time.sleep(1.0 + (full - 1.0) * (0.25 + 0.15 * k))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 2, "the run finished too fast to be killed: make the input bigger"
    proc = _start(cfg, killed, {"ASSAY_RUN_MIRROR": str(tmp_path / "node-9")})
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
    got = snapshot_store(killed)
    assert got == expected
    fs, root = store(killed)
    assert not [k for k in fs.find(root) if ".tmp" in k]  # whole objects only, never temporaries


def test_report_show_and_export_read_a_run_on_s3(tmp_path: Path, pipeline: Path, s3_bucket: str) -> None:
    url = f"{s3_bucket}/runs/cli"
    assay("run", str(pipeline), "--out", url, "--quiet")
    fs, root = store(url)
    assert fs.exists(f"{root}/report.html")  # the run's report is uploaded with the results
    first = snapshot_store(url)["output"][0]["id"]
    shutil.rmtree(mirror_path(url))  # read from another machine
    shown = assay("show", url, "-n", "1").stdout
    assert first in shown
    out = tmp_path / "sft.jsonl"
    assay("export", url, "--to", str(out))
    exported = read_jsonl(out)
    assert len(exported) > 0
    assay("report", url)
    assert fs.exists(f"{root}/report.html")

    # another machine reruns with a change; this machine's copy is stale and must not be trusted
    pipeline.write_text(PIPELINE.replace("fraction: 0.9", "fraction: 0.4"))
    assay("run", str(pipeline), "--out", url, "--quiet", env={"ASSAY_RUN_MIRROR": str(tmp_path / "other")})
    now = snapshot_store(url)
    assay("export", url, "--to", str(out))
    assert len(read_jsonl(out)) < len(exported)
    assert snapshot_local(mirror_path(url)) == now


def test_a_merge_spill_is_downloaded_once_by_a_node_that_lacks_it(s3_bucket: str) -> None:
    """Ray tasks of the distributed dedup merges read the driver's spill: on an object-store run
    a node without the folder downloads it (the columns file last, so a whole folder is complete)."""
    import numpy as np

    from assay.dedup.spill import Parts, Spill
    from assay.engines.ray_dedup import node_spill

    remote = RemoteRun(f"{s3_bucket}/runs/spill")
    path = remote.local / "stages" / "03-dedup" / "merge-abc"
    spill = Spill(path)
    spill.append_ids([f"id{i}" for i in range(1000)])
    spill.append("emb", np.arange(4000, dtype=np.float32).reshape(1000, 4))
    spill.close()
    remote.put_tree(path)
    want = Parts([path]).rows("emb", np.array([0, 999]))
    shutil.rmtree(path)
    got = node_spill((str(path), remote))
    assert got == path and (path / "columns.json").exists()
    assert np.array_equal(Parts([got]).rows("emb", np.array([0, 999])), want)
    assert node_spill(str(path)) == path  # a plain path is used as it is


def test_fresh_starts_over_in_the_store(pipeline: Path, s3_bucket: str) -> None:
    url = f"{s3_bucket}/runs/fresh"
    run(pipeline, url)
    expected = snapshot_store(url)
    done = markers(url)
    fs, root = store(url)
    fs.pipe_file(f"{root}/stages/99-gone/fingerprint", b"old")  # a stage folder of an older pipeline
    Runner(load_config(pipeline), url).run(fresh=True, config_text=pipeline.read_text())
    again = markers(url)
    assert again.keys() == done.keys() and not set(again.values()) & set(done.values())  # all redone
    assert snapshot_store(url) == expected
    assert not fs.exists(f"{root}/stages/99-gone")


def test_workers_on_another_machine_use_their_own_copy_and_the_store(
        tmp_path: Path, pipeline: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver on one machine, its workers on another (each with its own local copy of the run,
    none shared): workers download the shards they read and upload what they write; the driver
    downloads what it needs. Same results as a local run."""
    expected = (run(pipeline, str(tmp_path / "local")), snapshot_local(tmp_path / "local"))[1]
    url = f"{s3_bucket}/runs/two-machines"
    monkeypatch.setenv("ASSAY_RUN_MIRROR", str(tmp_path / "driver-machine"))
    runner = Runner(load_config(pipeline), url)
    # the worker processes start after this: they see the other machine's copy
    monkeypatch.setenv("ASSAY_RUN_MIRROR", str(tmp_path / "worker-machine"))
    runner.run(config_text=pipeline.read_text())
    assert snapshot_store(url) == expected
    driver = mirror_path(url).name
    worker_copy = tmp_path / "worker-machine" / driver / "stages"
    driver_copy = tmp_path / "driver-machine" / driver / "stages"
    # shards of the per-record stages were written on the worker machine...
    assert sorted(p.name for p in (worker_copy / "05-filter" / "shards").glob("*.jsonl"))
    # ...the global stage's partial indexes too; its merge ran on the driver, from downloaded partials
    assert list((worker_copy / "03-dedup-minhash" / "partials").glob("*.pkl"))
    assert list((driver_copy / "03-dedup-minhash" / "partials").glob("*.pkl"))
    # the decide pass on the worker machine read the state the driver uploaded
    assert list((worker_copy / "03-dedup-minhash").glob("state-*.pkl"))
    assert snapshot_local(tmp_path / "driver-machine" / driver) == expected
