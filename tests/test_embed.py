"""The embedding helper: the packaged MiniLM offline, bf16 where the CPU has it, the disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assay.dedup.embed import Embedder, cpu_has_bf16, resolve_model
from assay.errors import ConfigError
from conftest import assay, write_jsonl


def texts(shared_data: Path, n: int = 12) -> list[str]:
    rows = [json.loads(line) for line in open(shared_data / "math500" / "test.jsonl", encoding="utf-8")]
    return [r["problem"] for r in rows[:n]]


def test_cache_returns_the_same_vectors_across_instances(shared_data: Path, tmp_path: Path) -> None:
    items = texts(shared_data)
    first = Embedder(cache_dir=tmp_path)
    assert first.precision == ("bf16" if cpu_has_bf16() else "fp32")
    vecs = first.encode(items + items[:3])  # repeats are embedded once
    assert vecs.shape == (15, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=2e-3)
    assert np.array_equal(vecs[:3], vecs[12:])
    assert first.stats == {"embedded": 12, "cached": 3}
    first.close()
    cache_files = list((tmp_path / "embeddings").glob("*.sqlite"))
    assert len(cache_files) == 1 and cache_files[0].name.startswith("all-MiniLM-L6-v2-")

    second = Embedder(cache_dir=tmp_path)
    again = second.encode(list(reversed(items)))
    assert second.stats == {"embedded": 0, "cached": 12}
    assert np.array_equal(again[::-1], vecs[:12])  # cached vectors are bit-identical to fresh ones
    # paraphrase closer than an unrelated problem
    other = second.encode(["How many positive integer divisors does the number 196 have?"])[0]
    sims = vecs[:12] @ other
    assert int(np.argmax(sims)) == 3 and sims[3] > 0.9


def test_precision_and_model_path_name_the_cache(shared_data: Path, tmp_path: Path) -> None:
    items = texts(shared_data, 4)
    fp32 = Embedder(cache_dir=tmp_path, precision="fp32")
    explicit = Embedder(str(resolve_model(None)), cache_dir=tmp_path, precision="fp32")
    assert fp32.fingerprint != Embedder(cache_dir=tmp_path, precision="bf16").fingerprint
    a = fp32.encode(items)
    b = explicit.encode(items)
    assert explicit.stats["embedded"] == 4  # a model given by path has its own cache
    assert np.allclose(a, b, atol=2e-3)
    if cpu_has_bf16():
        bf16 = Embedder(cache_dir=tmp_path, precision="bf16").encode(items)
        assert (np.einsum("ij,ij->i", a, bf16) > 0.99).all()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a local folder"):
        Embedder(str(tmp_path / "no-such-model"))
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "domain": "math", "prompt": "Compute 1+1."}])
    proc = assay("apply", "dedup-semantic", str(inp), str(tmp_path / "out.jsonl"), "--set",
                 f"model={tmp_path / 'no-such-model'}", check=False)
    assert proc.returncode != 0
    assert "not a local folder" in proc.stderr and "Traceback" not in proc.stderr
