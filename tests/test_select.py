"""The `select` stage: rules, quotas and routing select exactly what they say."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import assay, read_jsonl, read_output, write_jsonl

LEVEL_DIFFICULTY = {1: 0.1, 2: 0.3, 3: 0.5, 4: 0.7, 5: 0.9}


def labelled_math500(shared_data: Path) -> list[dict[str, Any]]:
    """MATH-500 with the labels the `label` stage gives it; every third record has no reference answer."""
    out = []
    with open(shared_data / "math500" / "test.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            rec = {"id": f"math500/{i}", "domain": "math", "source": "math500", "prompt": row["problem"],
                   "meta": {"level": row["level"], "subject": row["subject"]},
                   "labels": {"difficulty": LEVEL_DIFFICULTY[row["level"]],
                              "category": row["subject"].lower().replace(" & ", "_").replace(" ", "_"),
                              "language": "en"}}
            if i % 3:
                rec["reference"] = {"answer": row["answer"]}
            out.append(rec)
    return out


@pytest.fixture
def math500(shared_data: Path, tmp_path: Path) -> tuple[list[dict[str, Any]], Path]:
    records = labelled_math500(shared_data)
    return records, write_jsonl(tmp_path / "math500.jsonl", records)


def select(inp: Path, out: Path, *sets: str, drop: bool = True) -> list[dict[str, Any]]:
    args = ["apply", "select", str(inp), str(out)]
    for s in sets:
        args += ["--set", s]
    assay(*args, *(["--drop"] if drop else []))
    return read_jsonl(out)


def test_rules_keep_exactly_the_matching_records(math500: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    records, inp = math500
    kept = select(inp, tmp_path / "out.jsonl", "rules=labels.difficulty >= 0.3 and labels.category != \"geometry\"")
    want = [r["id"] for r in records if r["labels"]["difficulty"] >= 0.3 and r["labels"]["category"] != "geometry"]
    assert [r["id"] for r in kept] == want
    assert all(r["checks"]["select"]["passed"] for r in kept)
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    assert len(rejected) == 500 - len(want)
    assert {r["code"] for r in rejected} == {"select: rule"}
    assert "labels.difficulty >= 0.3" in rejected[0]["reason"]


def test_comma_separated_rules_all_apply(math500: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    records, inp = math500
    kept = select(inp, tmp_path / "out.jsonl", 'rules=labels.difficulty > 0.5, domain in ["math", "science"], '
                  "verifiable")
    want = [r["id"] for r in records if r["labels"]["difficulty"] > 0.5 and "reference" in r]
    assert [r["id"] for r in kept] == want


def test_without_drop_every_record_stays_with_its_check(math500: tuple[list[dict[str, Any]], Path],
                                                        tmp_path: Path) -> None:
    records, inp = math500
    kept = select(inp, tmp_path / "out.jsonl", "rules=labels.difficulty >= 0.9", drop=False)
    assert len(kept) == 500
    passed = Counter(r["checks"]["select"]["passed"] for r in kept)
    assert passed[True] == sum(r["labels"]["difficulty"] >= 0.9 for r in records)


def test_quota_max_per_category(math500: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    records, inp = math500
    kept = select(inp, tmp_path / "out.jsonl", "quotas={by: labels.category, max: 40}")
    sizes = Counter(r["labels"]["category"] for r in records)
    assert Counter(r["labels"]["category"] for r in kept) == {c: min(n, 40) for c, n in sizes.items()}
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    assert len(rejected) == 500 - len(kept)
    assert {r["code"] for r in rejected} == {"select: quota labels.category"}


def test_quota_fraction_per_difficulty_bucket_with_overrides(math500: tuple[list[dict[str, Any]], Path],
                                                              tmp_path: Path) -> None:
    records, inp = math500
    quota = "quotas={by: labels.difficulty, edges: [0.3, 0.7], names: [easy, medium, hard], fraction: 0.5, " \
            "groups: {easy: 0.1, hard: {max: 1000}}}"
    kept = select(inp, tmp_path / "out.jsonl", quota)

    def bucket(d: float) -> str:
        return "easy" if d < 0.3 else "medium" if d < 0.7 else "hard"

    sizes = Counter(bucket(r["labels"]["difficulty"]) for r in records)
    got = Counter(bucket(r["labels"]["difficulty"]) for r in kept)
    assert got == {"easy": math.floor(sizes["easy"] * 0.1), "medium": math.floor(sizes["medium"] * 0.5),
                   "hard": sizes["hard"]}


def test_quotas_apply_in_order_to_rule_survivors(math500: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    records, inp = math500
    kept = select(inp, tmp_path / "out.jsonl", "rules=labels.difficulty >= 0.5",
                  "quotas=[{by: labels.category, max: 30}, {by: labels.difficulty, max: 50}]")
    by_cat = Counter(r["labels"]["category"] for r in kept)
    by_diff = Counter(r["labels"]["difficulty"] for r in kept)
    assert all(n <= 30 for n in by_cat.values())
    assert all(n <= 50 for n in by_diff.values())
    assert min(r["labels"]["difficulty"] for r in kept) >= 0.5
    # the category quota saw only rule survivors: each category keeps min(30, its hard records)
    hard = Counter(r["labels"]["category"] for r in records if r["labels"]["difficulty"] >= 0.5)
    assert len(kept) <= sum(min(30, n) for n in hard.values())
    assert len(kept) == sum(by_diff.values()) and max(by_diff.values()) == 50


def test_quotas_are_deterministic_and_depend_on_the_seed(math500: tuple[list[dict[str, Any]], Path],
                                                          tmp_path: Path) -> None:
    _, inp = math500
    quota = "quotas={by: labels.category, max: 10}"
    a = [r["id"] for r in select(inp, tmp_path / "a.jsonl", quota)]
    b = [r["id"] for r in select(inp, tmp_path / "b.jsonl", quota)]
    c = [r["id"] for r in select(inp, tmp_path / "c.jsonl", quota, "seed=7")]
    d = [r["id"] for r in select(inp, tmp_path / "d.jsonl", quota, "seed=7")]
    assert a == b and c == d
    assert len(a) == len(c) == 70
    assert set(a) != set(c)


def test_selection_does_not_depend_on_shards_or_workers(math500: tuple[list[dict[str, Any]], Path],
                                                         tmp_path: Path) -> None:
    _, inp = math500
    kept = []
    for shard_size, workers in ((1000, 1), (37, 2)):
        cfg = tmp_path / f"p{shard_size}.yaml"
        cfg.write_text(f"""
seed: 3
shard_size: {shard_size}
workers: {workers}
inputs: [{inp}]
stages:
  - select:
      rules: ['labels.difficulty >= 0.3']
      quotas: [{{by: labels.category, fraction: 0.5}}]
""")
        assay("run", str(cfg), "--out", str(tmp_path / f"run{shard_size}"), "-q")
        kept.append(sorted(r["id"] for r in read_output(tmp_path / f"run{shard_size}")))
    assert kept[0] == kept[1]


def test_prefer_keeps_the_hardest_first(math500: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    records, inp = math500
    kept = select(inp, tmp_path / "out.jsonl", "quotas={by: labels.category, max: 20}", "prefer=labels.difficulty")
    for cat in {r["labels"]["category"] for r in records}:
        pool = sorted((r["labels"]["difficulty"] for r in records if r["labels"]["category"] == cat), reverse=True)
        got = sorted((r["labels"]["difficulty"] for r in kept if r["labels"]["category"] == cat), reverse=True)
        assert got == pool[:20]


def test_duplicate_ids_still_get_exact_quotas(tmp_path: Path) -> None:
    rows = [{"id": "same", "domain": "math", "prompt": f"What is {i} + {i}?", "labels": {"category": "arith"}}
            for i in range(10)]
    inp = write_jsonl(tmp_path / "dups.jsonl", rows)
    kept = select(inp, tmp_path / "out.jsonl", "quotas={by: labels.category, max: 3}")
    assert len(kept) == 3


def test_missing_labels_fall_in_the_null_group_and_fail_rules(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "domain": "math", "prompt": "What is 2 + 2?"} for i in range(6)]
    rows += [{"id": f"l{i}", "domain": "math", "prompt": "What is 3 + 3?", "labels": {"category": "arith"}}
             for i in range(4)]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    kept = select(inp, tmp_path / "out.jsonl", "quotas={by: labels.category, groups: {null: 2}}")
    assert Counter(r.get("labels", {}).get("category") for r in kept) == {None: 2, "arith": 4}
    assert select(inp, tmp_path / "out2.jsonl", "rules=labels.difficulty < 0.5") == []


def test_routing_unverifiable_records(math500: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    records, inp = math500
    kept = select(inp, tmp_path / "out.jsonl", "unverifiable_route=judge-only", "default_route=verify")
    assert len(kept) == 500 and all("checks" not in r for r in kept)  # routing alone drops and checks nothing
    routes = {r["id"]: r["route"] for r in kept}
    for rec in records:
        assert routes[rec["id"]] == ("verify" if "reference" in rec else "judge-only")


def test_named_routes_first_match_wins(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "domain": "code", "prompt": "Write f.", "reference": {"tests": {"kind": "assert",
                                                                                   "code": "assert f() == 1"}}},
        {"id": "b", "domain": "code", "prompt": "Write g."},
        {"id": "c", "domain": "chat", "prompt": "Tell me a story about a cat."},
        {"id": "d", "domain": "math", "prompt": "2+2?", "reference": {"answer": "4"}, "labels": {"difficulty": 0.9}},
    ]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    kept = select(inp, tmp_path / "out.jsonl", "unverifiable_route=judge-only",
                  "routes={hard: 'labels.difficulty >= 0.8', sandbox: 'domain == \"code\"'}")
    assert {r["id"]: r.get("route") for r in kept} == {"a": "sandbox", "b": "judge-only", "c": "judge-only",
                                                       "d": "hard"}


def test_pipeline_routes_feed_later_when(math500: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    records, inp = math500
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(f"""
inputs: [{inp}]
stages:
  - label
  - language: {{allow: [en]}}
  - select:
      rules: ['labels.difficulty >= 0.3', 'labels.quality >= 3']
      quotas: [{{by: labels.category, max: 25}}]
      unverifiable_route: judge-only
  - filter: {{name: judge-only-hard, when: 'route == "judge-only"', expr: 'labels.difficulty >= 0.7'}}
""")
    run = tmp_path / "run"
    assay("run", str(cfg), "--out", str(run), "-q")
    out = read_output(run)
    stats = json.loads((run / "stats.json").read_text())
    sel = next(s for s in stats["stages"] if s["stage"] == "select")
    assert sel["records_out"] <= 7 * 25
    assert max(Counter(r["labels"]["category"] for r in out).values()) <= 25
    assert all(r["labels"]["difficulty"] >= 0.3 for r in out)
    assert all(r["labels"]["difficulty"] >= 0.7 for r in out if r.get("route") == "judge-only")
    assert all(r.get("route") is None for r in out if "reference" in r)
    assert sel["metrics"]["routes"]["judge-only"] == sum(1 for r in records if "reference" not in r)
    rejected = read_jsonl(next((run / "rejected").glob("*.jsonl")))
    assert {r["stage"] for r in rejected} <= {"language", "select", "judge-only-hard"}


def test_bad_rules_and_quotas_are_one_sentence(math500: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    _, inp = math500
    for setting, words in (("rules=labels.difficulty >=", "not valid"),
                           ("rules=__import__('os')", "not allowed"),
                           ("quotas={by: labels.category}", "needs max, fraction or groups"),
                           ("quotas={by: labels.difficulty, edges: [0.7, 0.3], max: 1}", "edges must increase"),
                           ("quotas={by: labels.difficulty, edges: [0.5], names: [a], max: 1}", "2 buckets")):
        proc = assay("apply", "select", str(inp), str(tmp_path / "o.jsonl"), "--set", setting, check=False)
        assert proc.returncode == 2, setting
        assert words in proc.stderr, (setting, proc.stderr)
        assert "Traceback" not in proc.stderr
