"""dedup-exact and dedup-minhash on real MATH-500 problems with reformatted and near copies."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assay.dedup.clusters import components
from assay.dedup.minhash import MinHashDedup, optimal_bands
from assay.dedup.shingles import shingle_hashes
from assay.dedup.text import exact_key
from assay.errors import ConfigError
from assay.stage import build_stage
from conftest import REPO, assay, read_jsonl, read_output, write_jsonl


def math500(shared_data: Path, n: int = 500) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in open(shared_data / "math500" / "test.jsonl", encoding="utf-8")]
    return [{"id": f"math500/{i}", "domain": "math", "source": "math500", "prompt": r["problem"]}
            for i, r in enumerate(rows[:n])]


def apply(stage: str, records: list[dict[str, Any]], tmp_path: Path, *sets: str,
          drop: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    inp = write_jsonl(tmp_path / f"{stage}-in.jsonl", records)
    out = tmp_path / f"{stage}-out.jsonl"
    args = ["apply", stage, str(inp), str(out)]
    for s in sets:
        args += ["--set", s]
    assay(*args, *(["--drop"] if drop else []))
    rejected = tmp_path / f"{stage}-out.rejected.jsonl"
    return read_jsonl(out), read_jsonl(rejected) if rejected.exists() else []


# ---- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [
    ("Compute $\\frac{1}{2} + x$.", "compute \\frac 1 2+x"),
    ("Compute $\\dfrac{1}{2}+x$", "COMPUTE   \\frac12 + x !"),
    ("Find $\\left( 3, \\frac{\\pi}{2} \\right)$", "Find (3,\\frac{\\pi}{2})"),
    ("A farmer has 1,000 sheep; how many legs?", "a farmer has 1000 sheep how many legs"),
    ("Ｆｉｎｄ ｘ²", "Find x2"),  # NFKC: full-width letters and superscripts
    ("What is $2^{10}$?", "What is 2^10?"),
    ("Evaluate $\\lceil 3.6 \\rceil$.", "Evaluate \\lceil3.6\\rceil"),
])
def test_exact_key_ignores_formatting(a: str, b: str) -> None:
    assert exact_key(a) == exact_key(b)


@pytest.mark.parametrize("a, b", [
    ("Find x+1.", "Find x-1."),
    ("Compute 3.5 + 2", "Compute 35 + 2"),
    ("Is 2 < 3?", "Is 2 > 3?"),
    ("the cat", "thecat"),
    ("Find $\\frac{1}{2}$", "Find $\\frac{2}{1}$"),
])
def test_exact_key_keeps_meaning(a: str, b: str) -> None:
    assert exact_key(a) != exact_key(b)


# ---- dedup-exact ----------------------------------------------------------------------------


def reformat(text: str, rnd: random.Random) -> str:
    """A copy that differs only in formatting: case, spacing, LaTeX delimiters and sentence punctuation."""
    out = text.replace("\\left(", "(").replace("\\right)", ")").replace("\\dfrac", "\\frac")
    out = out.replace("$", "") if rnd.random() < 0.5 else out
    out = "  ".join(out.split())
    out = out.upper() if rnd.random() < 0.3 else out.lower()
    return out.rstrip(".") + (" ." if rnd.random() < 0.5 else "")


def test_dedup_exact_removes_reformatted_copies_and_names_the_survivor(shared_data: Path, tmp_path: Path) -> None:
    records = math500(shared_data, 200)
    rnd = random.Random(7)
    copies = []
    for i in range(0, 200, 5):
        copies.append({"id": f"copy/{i}", "domain": "math", "prompt": reformat(records[i]["prompt"], rnd)})
    kept, rejected = apply("dedup-exact", records + copies, tmp_path)
    assert len(rejected) == len(copies)
    # first seen survives when nothing else tells them apart
    assert {r["id"] for r in rejected} == {c["id"] for c in copies}
    for r in rejected:
        check = r["record"]["checks"]["dedup_exact"]
        i = int(r["id"].split("/")[1])
        assert check["survivor"] == f"math500/{i}"
        assert check["similarity"] == 1.0 and check["cluster_size"] == 2
        assert f"'math500/{i}'" in r["reason"]
    assert len(kept) == 200
    survivors = [r for r in kept if r["checks"]["dedup_exact"].get("cluster_size")]
    assert len(survivors) == len(copies)


def test_survivor_policy(tmp_path: Path) -> None:
    p = "What is the least positive integer multiple of 30 that can be written with only the digits 0 and 2?"
    base = {"domain": "math", "prompt": p}
    records = [
        {**base, "id": "plain-first"},
        {**base, "id": "long-solution", "reference": {"solution": "x" * 500}},
        {**base, "id": "two-responses", "responses": [{"text": "a"}, {"text": "b"}]},
        {**base, "id": "with-answer", "reference": {"answer": "2220"}},
        {**base, "id": "plain-last"},
    ]
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0]):
        kept, rejected = apply("dedup-exact", [records[i] for i in order], tmp_path)
        assert [r["id"] for r in kept] == ["with-answer"]
        assert {r["record"]["checks"]["dedup_exact"]["survivor"] for r in rejected} == {"with-answer"}
    # without the answer: most responses, then the longest solution, then the first seen
    rest = [r for r in records if r["id"] != "with-answer"]
    assert [r["id"] for r in apply("dedup-exact", rest, tmp_path)[0]] == ["two-responses"]
    rest = [r for r in rest if r["id"] != "two-responses"]
    assert [r["id"] for r in apply("dedup-exact", rest, tmp_path)[0]] == ["long-solution"]
    rest = [r for r in rest if r["id"] != "long-solution"]
    assert [r["id"] for r in apply("dedup-exact", rest, tmp_path)[0]] == ["plain-first"]


def test_dedup_exact_with_answer_keeps_different_answers(tmp_path: Path) -> None:
    p = "How many positive whole-number divisors does 196 have?"
    records = [{"id": "a", "domain": "math", "prompt": p, "reference": {"answer": "9"}},
               {"id": "b", "domain": "math", "prompt": p.upper(), "reference": {"answer": "$9$"}},
               {"id": "c", "domain": "math", "prompt": p, "reference": {"answer": "8"}}]
    kept, rejected = apply("dedup-exact", records, tmp_path, "with_answer=true")
    assert [r["id"] for r in kept] == ["a", "c"]
    assert [r["id"] for r in rejected] == ["b"]
    kept, _ = apply("dedup-exact", records, tmp_path)
    assert [r["id"] for r in kept] == ["a"]


def test_shared_ids_and_identical_records(tmp_path: Path) -> None:
    """Records are told apart by position, so repeated ids and byte-identical records work."""
    records = [{"id": "7", "domain": "math", "prompt": "Compute 1+1."},
               {"id": "7", "domain": "math", "prompt": "Compute 1+1."},
               {"id": "7", "domain": "math", "prompt": "Compute 2+2."},
               {"id": "8", "domain": "math", "prompt": "compute 2 + 2"}]
    kept, rejected = apply("dedup-exact", records, tmp_path)
    assert [(r["id"], r["prompt"]) for r in kept] == [("7", "Compute 1+1."), ("7", "Compute 2+2.")]
    assert sorted(r["record"]["prompt"] for r in rejected) == ["Compute 1+1.", "compute 2 + 2"]


def test_when_limits_what_is_indexed(tmp_path: Path) -> None:
    records = [{"id": "m1", "domain": "math", "prompt": "Add 2 and 3.", "reference": {"answer": "5"}},
               {"id": "c1", "domain": "code", "prompt": "Add 2 and 3."},
               {"id": "m2", "domain": "math", "prompt": "add 2 and 3"}]
    kept, rejected = apply("dedup-exact", records, tmp_path, 'when=domain == "math"')
    assert [r["id"] for r in kept] == ["m1", "c1"]
    assert "dedup_exact" not in (kept[1].get("checks") or {})
    assert rejected[0]["id"] == "m2"


def test_pipeline_with_shards_and_workers(shared_data: Path, tmp_path: Path) -> None:
    """The global stages through `assay run`: several shards decided in worker processes, stats counted."""
    records = math500(shared_data, 300)
    dups = [{**r, "id": f"dup/{i}", "prompt": " ".join(r["prompt"].lower().split())}
            for i, r in enumerate(records[:30])]
    near = [{**r, "id": f"near/{i}", "prompt": r["prompt"] + " Show your work and justify every step."}
            for i, r in enumerate(records[100:160]) if len(r["prompt"].split()) > 40]
    inp = write_jsonl(tmp_path / "in.jsonl", records + dups + near)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"inputs: [{inp}]\nshard_size: 70\nworkers: 2\n"
                   "stages:\n  - dedup-exact\n  - dedup-minhash: {threshold: 0.7}\n", encoding="utf-8")
    run = tmp_path / "run"
    assay("run", str(cfg), "--out", str(run), "-q")
    out = read_output(run)
    assert {r["id"] for r in out} == {r["id"] for r in records}
    stats = json.loads((run / "stats.json").read_text())
    exact, minhash = stats["stages"]
    assert exact["records_rejected"] == 30 and exact["metrics"]["duplicates"] == 30
    assert minhash["records_rejected"] == len(near) and minhash["metrics"]["duplicates"] == len(near)
    assert not list(run.rglob("merge-*")), "the merged on-disk index is removed after clustering"
    rejected = [json.loads(line) for f in (run / "rejected").glob("*.jsonl") for line in open(f)]
    for r in rejected:
        if r["stage"] == "dedup-minhash":
            assert r["record"]["checks"]["dedup_minhash"]["survivor"] == "math500/" + str(100 + int(r["id"][5:]))
    # rerunning the same command resumes: same output, nothing indexed again
    assay("run", str(cfg), "--out", str(run), "-q")
    assert read_output(run) == out
    assert json.loads((run / "stats.json").read_text())["stages"][1]["records_rejected"] == len(near)


# ---- dedup-minhash --------------------------------------------------------------------------


def perturb(text: str, rnd: random.Random, edits: int) -> str:
    words = text.split()
    for _ in range(edits):
        j = rnd.randrange(len(words))
        op = rnd.random()
        if op < 0.4:
            words[j] = "very"
        elif op < 0.7 and len(words) > 5:
            del words[j]
        else:
            words.insert(j, "indeed")
    return " ".join(words)


def true_jaccard(a: str, b: str) -> float:
    h, off = shingle_hashes([a, b], "word", 5)
    x, y = set(h[off[0]:off[1]].tolist()), set(h[off[1]:off[2]].tolist())
    return len(x & y) / len(x | y)


def test_minhash_finds_near_copies_and_not_distinct_problems(shared_data: Path, tmp_path: Path) -> None:
    records = [r for r in math500(shared_data) if len(r["prompt"].split()) >= 60]
    rnd = random.Random(3)
    near = [{"id": f"near/{k}", "domain": "math", "prompt": perturb(r["prompt"], rnd, 1 + k % 3),
             "reference": {"answer": "1"}} for k, r in enumerate(records[:40])]
    jaccard = {r["id"]: true_jaccard(r["prompt"], c["prompt"]) for r, c in zip(records, near, strict=False)}
    kept, rejected = apply("dedup-minhash", records + near, tmp_path)
    # the near copies carry a reference answer, so they survive and the originals go
    removed = {r["id"] for r in rejected}
    assert removed <= {r["id"] for r in records[:40]}, "a distinct problem was removed"
    clear = {i for i, j in jaccard.items() if j >= 0.85}
    assert len(clear) >= 15 and len(clear - removed) <= 1, f"missed {sorted(clear - removed)}"
    assert not {i for i, j in jaccard.items() if j < 0.7} & removed
    for r in rejected:
        check = r["record"]["checks"]["dedup_minhash"]
        assert check["survivor"] == "near/" + str([x["id"] for x in records].index(r["id"]))
        assert check["similarity"] >= 0.8 - 0.04 and abs(check["similarity"] - jaccard[r["id"]]) < 0.15  # margin
        assert "jaccard" in r["reason"]
    assert len(kept) == len(records) + len(near) - len(removed)


def test_minhash_clusters_are_connected_components(tmp_path: Path) -> None:
    base = [f"w{i}" for i in range(100)]
    a = " ".join(base)
    b = " ".join(base[:92] + [f"b{i}" for i in range(8)])  # jaccard(a, b) ~ 0.85
    c = " ".join([f"c{i}" for i in range(8)] + b.split()[8:])  # jaccard(b, c) ~ 0.85, jaccard(a, c) ~ 0.72
    d = "a completely different problem about counting sheep in a field of clover near the river bank"
    records = [{"id": k, "domain": "math", "prompt": t} for k, t in zip("abcd", (a, b, c, d), strict=True)]
    st = build_stage("dedup-minhash", {"threshold": 0.8, "shingle": "word", "ngram": 3, "num_perm": 256})
    assert isinstance(st, MinHashDedup)
    state = st.index(st.positioned(0, records))
    st.decide_batch(records, state)
    checks = {r["id"]: r["checks"]["dedup_minhash"] for r in records}
    assert checks["a"]["passed"] and checks["a"]["cluster_size"] == 3
    assert not checks["b"]["passed"] and not checks["c"]["passed"]
    assert checks["d"]["passed"] and checks["d"]["reason"] == "unique"
    # c is linked to a through b: its own similarity to the survivor may be lower than the threshold
    assert checks["c"]["survivor"] == "a" and checks["c"]["cluster_size"] == 3
    assert checks["c"]["similarity"] < 0.8
    assert checks["c"]["matched"] == "b" and checks["c"]["matched_similarity"] >= 0.8


def test_minhash_char_shingles(tmp_path: Path) -> None:
    records = [{"id": "1", "domain": "math", "prompt": "Find the remainder when 2^100 is divided by 7."},
               {"id": "2", "domain": "math", "prompt": "Find the remainder when 2^{100} is divided by 7"},
               {"id": "3", "domain": "math", "prompt": "Find the remainder when 3^100 is divided by 11."}]
    kept, rejected = apply("dedup-minhash", records, tmp_path, "shingle=char", "ngram=4", "threshold=0.85")
    assert [r["id"] for r in kept] == ["1", "3"]
    assert rejected[0]["record"]["checks"]["dedup_minhash"]["survivor"] == "1"


def test_minhash_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="bands"):
        build_stage("dedup-minhash", {"bands": 300, "num_perm": 128})
    with pytest.raises(ConfigError, match="shingle"):
        build_stage("dedup-minhash", {"shingle": "sentence"})
    assert optimal_bands(0.8, 128) == (9, 13)  # what datasketch picks for the same threshold
    assert build_stage("dedup-minhash", {"threshold": 0.8}).band_rows == (16, 8)  # verified: recall first
    assert build_stage("dedup-minhash", {"threshold": 0.8, "verify": False}).band_rows == (9, 13)


def test_shingle_hashes_are_stable_across_processes_and_batches() -> None:
    texts = ["The quick brown fox jumps over the lazy dog", "hi", "", "Ünïcödé text, with punctuation!!"]
    h, off = shingle_hashes(texts, "word", 3)
    alone = [shingle_hashes([t], "word", 3)[0].tolist() for t in texts]
    assert [h[off[i]:off[i + 1]].tolist() for i in range(len(texts))] == alone
    assert off[3] - off[2] == 0  # nothing to shingle
    assert off[2] - off[1] == 1  # shorter than n: one shingle of the whole text
    code = ("from assay.dedup.shingles import shingle_hashes; "
            f"print(shingle_hashes({texts!r}, 'word', 3)[0].tolist())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert json.loads(other.stdout) == h.tolist()


def test_signatures_in_two_threads_equal_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from assay.dedup import minhash, shingles

    rng = random.Random(5)
    words = [f"w{i}" for i in range(500)]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 300))) for _ in range(3000)]
    monkeypatch.setattr(minhash, "_SPLIT_AT", 10**9)
    one = minhash.signatures(texts, "word", 5, 64, 1)
    for _ in range(5):
        # fresh power tables: the first use grows them while the other threads read them
        monkeypatch.setattr(shingles, "_POWERS", shingles._Powers(shingles._PRIME))
        monkeypatch.setattr(minhash, "_SPLIT_AT", 1024)
        with ThreadPoolExecutor(4) as pool:  # several callers at once, each splitting its batch in two
            results = list(pool.map(lambda _: minhash.signatures(texts, "word", 5, 64, 1), range(4)))
        for sig, nonempty in results:
            assert np.array_equal(sig, one[0]) and np.array_equal(nonempty, one[1])


def test_power_tables_grow_safely_under_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from assay.dedup import shingles

    powers = shingles._Powers(shingles._PRIME)

    def use(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            n = rng.randint(1, 12_000_000)
            up, down = powers.get(n)
            assert len(up) == len(down) == n

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(use, range(6)))
    up, down = powers.get(1000)
    with np.errstate(over="ignore"):
        assert np.all(up * down == 1)  # P**i * P**-i == 1 (mod 2**64)


def test_union_find_components() -> None:
    a = np.array([5, 1, 9, 2, 7])
    b = np.array([1, 2, 8, 3, 9])
    nodes, roots = components(a, b)
    groups: dict[int, set[int]] = {}
    for n, r in zip(nodes.tolist(), roots.tolist(), strict=True):
        groups.setdefault(r, set()).add(n)
    assert sorted(map(sorted, groups.values())) == [[1, 2, 3, 5], [7, 8, 9]]
    assert set(groups) == {1, 7}  # the root is the smallest member


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_knn_pairs_with_every_index(kind: str) -> None:
    from assay.dedup.knn import similar_pairs

    rng = np.random.default_rng(0)
    base = rng.normal(size=(3000, 64)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    twins = base[:200] + rng.normal(scale=0.03, size=(200, 64)).astype(np.float32)
    twins /= np.linalg.norm(twins, axis=1, keepdims=True)
    vectors = np.concatenate([base, twins])
    a, b, sim = similar_pairs(vectors, 0.9, 5, kind=kind, nprobe=8)
    found = {(int(x), int(y)) for x, y in zip(a, b, strict=True)}
    planted = {(i, 3000 + i) for i in range(200)}
    assert len(found & planted) >= (200 if kind == "flat" else 190)
    assert found <= planted  # random directions in 64 dimensions are never that close
    assert (sim >= 0.9).all() and (a < b).all()
