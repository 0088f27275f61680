"""Shared test helpers: where the public sample data lives, running the CLI, writing records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`../shared/data` next to the repository (or $ASSAY_SHARED_DATA)."""
    env = os.environ.get("ASSAY_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", Path("/work/shared/data")]
    for c in candidates:
        if c.is_dir():
            return c
    raise RuntimeError("the shared sample data is missing: set ASSAY_SHARED_DATA to the shared/data folder")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row))
            f.write("\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


TIMING = {"seconds", "wall_seconds", "records_per_s"}


def strip_timing(obj: Any) -> Any:
    """Stats without what changes from run to run (durations and rates)."""
    if isinstance(obj, dict):
        return {k: strip_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [strip_timing(v) for v in obj]
    return obj


def read_output(run_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in sorted((run_dir / "output").glob("part-*.jsonl")):
        out.extend(read_jsonl(part))
    return out


def assay(*args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "assay", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"assay {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep persistent caches of a test inside its temporary folder."""
    d = tmp_path / "cache"
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    if "ASSAY_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("ASSAY_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "assay-cache"))


def quickstart_copy(dest: Path, extra: str = "") -> Path:
    """examples/quickstart.yaml written elsewhere (its relative paths made absolute), plus `extra` YAML."""
    src = REPO / "examples"
    text = (src / "quickstart.yaml").read_text()
    text = text.replace("path: quickstart.jsonl", f"path: {src / 'quickstart.jsonl'}")
    text = text.replace("benchmarks/mini_eval.jsonl", str(src / "benchmarks" / "mini_eval.jsonl"))
    cfg = dest / "quickstart.yaml"
    cfg.write_text(text + ("\n" + extra + "\n" if extra else ""))
    return cfg


@pytest.fixture(scope="session")
def s3_server() -> Any:
    """A real S3 API (moto's server) on loopback; yields the environment that points boto/s3fs at it.
    The variables are the standard AWS ones, so worker processes and `assay` subprocesses see it too."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket (s3://NAME) and a private folder for this test's node-local run mirrors."""
    import uuid

    import s3fs

    name = f"assay-test-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem().mkdir(name)
    monkeypatch.setenv("ASSAY_RUN_MIRROR", str(tmp_path / "mirrors"))
    return f"s3://{name}"
