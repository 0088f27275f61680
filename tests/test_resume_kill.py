"""A run killed with SIGKILL at any moment ends, when rerun, with the output of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import read_jsonl, read_output, strip_timing, write_jsonl


def snapshot(run_dir: Path) -> dict[str, Any]:
    rejected = {p.name: read_jsonl(p) for p in sorted((run_dir / "rejected").glob("*.jsonl"))}
    return {
        "output": read_output(run_dir),
        "rejected": rejected,
        "invalid": read_jsonl(run_dir / "invalid" / "invalid.jsonl"),
        "stats": strip_timing(json.loads((run_dir / "stats.json").read_text())),
    }


TAG = f"assay-kill-test-{os.getpid()}"


def start(cfg: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "assay", "run", str(cfg), "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "ASSAY_TEST_TAG": TAG})


def tagged_processes() -> list[int]:
    """Processes started by this test's runs (the tag is inherited by their workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"ASSAY_TEST_TAG={TAG}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_sigkill_at_random_points_then_resume_equals_clean_run(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    rows: list[Any] = []
    for i in range(40_000):
        rid = f"r{i - 3}" if i % 97 == 0 and i else f"r{i}"
        rows.append({"id": rid, "domain": ("math", "code", "science", "chat")[i % 4], "source": "synthetic",
                     "prompt": f"Problem {i}: compute {i} * {i % 13}. " + "detail " * (i % 40),
                     "reference": {"answer": str(i * (i % 13))} if i % 5 else None,
                     "responses": [{"text": f"The answer is {i * (i % 13) + j}."} for j in range(i % 3)]})
        if i % 1000 == 0:
            rows.append("{broken json")
    write_jsonl(tmp_path / "in.jsonl", [r if isinstance(r, str) else {k: v for k, v in r.items() if v is not None}
                                        for r in rows])
    (tmp_path / "p.yaml").write_text(
        "inputs: [in.jsonl]\nshard_size: 1500\nworkers: 2\nseed: 7\nstages:\n"
        "  - collect: {per_domain: {code: {min_prompt_chars: 20}}}\n"
        "  - unique-ids\n"
        "  - sample: {fraction: 0.8}\n"
        "  - filter: {expr: 'labels.verifiable or domain == \"chat\"'}\n")
    cfg = tmp_path / "p.yaml"

    clean = tmp_path / "clean"
    t0 = time.monotonic()
    proc = start(cfg, clean)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
    full = time.monotonic() - t0
    expected = snapshot(clean)
    assert expected["stats"]["output"]["records"] > 20_000

    killed = tmp_path / "killed"
    kills = 0
    for _ in range(8):
        proc = start(cfg, killed)
        # each rerun resumes, so it has less left to do: kill early enough to land inside it
        time.sleep(rng.uniform(0.3, max(0.6, full * 0.4)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 4, "the run finished too fast to be killed: make the input bigger"
    # workers die with their parent (PR_SET_PDEATHSIG), also one that was still starting when it died
    deadline = time.monotonic() + 20
    while tagged_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tagged_processes(), "workers of a killed run outlived it"
    proc = start(cfg, killed)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
    got = snapshot(killed)
    assert got["output"] == expected["output"]
    assert got["rejected"] == expected["rejected"]
    assert got["invalid"] == expected["invalid"]
    assert got["stats"] == expected["stats"]
    assert not [p for p in killed.rglob("*") if ".tmp" in p.name]  # temporaries of the kills are cleaned


def test_a_killed_parent_counts_as_gone_while_it_is_a_zombie() -> None:
    """A worker that starts while its runner is being killed checks its parent once: a killed,
    not yet reaped parent is a zombie and must count as dead (it once let a worker outlive a run)."""
    from assay.procutil import parent_gone

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{child.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    assert parent_gone(child.pid)  # a zombie: exited, not reaped yet
    child.wait()
    assert parent_gone(child.pid)  # reaped: gone from the table
    assert not parent_gone(os.getppid())  # our own parent is alive and is our parent
    assert not parent_gone(os.getpid())  # alive, though not our parent (a forkserver's caller)

