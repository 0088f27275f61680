"""The `label` stage: heuristic labels from real source metadata, empirical difficulty from samples."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from assay.select import metadata as md
from assay.select.label import Label
from assay.stage import StageContext, build_stage
from conftest import assay, read_jsonl, write_jsonl


def math500_records(shared_data: Path) -> list[dict[str, Any]]:
    """MATH-500 rows as records, metadata kept in `meta` the way source adapters keep it."""
    out = []
    with open(shared_data / "math500" / "test.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            out.append({"id": f"math500/{i}", "domain": "math", "source": "math500", "prompt": row["problem"],
                        "reference": {"answer": row["answer"]},
                        "meta": {"level": row["level"], "subject": row["subject"]}})
    return out


def _stage(**params: Any) -> Label:
    st = build_stage("label", params)
    assert isinstance(st, Label)
    st.setup(StageContext(cache_dir=Path("/tmp")))
    return st


@pytest.mark.parametrize("through", ["records", "source"])
def test_math500_levels_and_subjects(shared_data: Path, tmp_path: Path, through: str) -> None:
    records = math500_records(shared_data)
    out = tmp_path / "labelled.jsonl"
    if through == "source":  # the `math` adapter puts the level in meta and the subject in labels.category
        assay("apply", "label", str(shared_data / "math500" / "test.jsonl"), str(out), "--source", "math")
    else:
        assay("apply", "label", str(write_jsonl(tmp_path / "math500.jsonl", records)), str(out))
    labelled = read_jsonl(out)
    assert len(labelled) == 500
    expected = {1: 0.1, 2: 0.3, 3: 0.5, 4: 0.7, 5: 0.9}
    for rec in labelled:
        assert rec["labels"]["difficulty"] == expected[rec["meta"]["level"]]
        assert rec["labels"]["difficulty_from"] == "meta.level"
        assert rec["labels"]["category"] == rec["meta"]["subject"].lower().replace(" & ", "_").replace(" ", "_")
    levels = Counter(r["meta"]["level"] for r in records)
    assert Counter(r["labels"]["difficulty"] for r in labelled) == {expected[k]: n for k, n in levels.items()}
    assert {r["labels"]["category"] for r in labelled} == {
        "algebra", "counting_probability", "geometry", "intermediate_algebra", "number_theory", "prealgebra",
        "precalculus"}


def test_apps_difficulty_through_its_source(shared_data: Path, tmp_path: Path) -> None:
    raw = [json.loads(line) for line in open(shared_data / "apps_coderl_sample" / "apps_train_sample.jsonl")]
    out = tmp_path / "apps.jsonl"
    assay("apply", "label", str(shared_data / "apps_coderl_sample" / "apps_train_sample.jsonl"), str(out),
          "--source", "apps")
    labelled = read_jsonl(out)
    assert len(labelled) == len(raw) == 5
    want = {"introductory": 0.2, "interview": 0.5, "competition": 0.8}
    assert sorted(r["labels"]["difficulty"] for r in labelled) == sorted(want[r["difficulty"]] for r in raw)
    assert all(r["labels"]["difficulty_from"] == "meta.difficulty" for r in labelled)


def test_leetcode_difficulty_through_its_source(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "leetcode_contest_deepseek" / "leetcode_20240121_jul.jsonl"
    raw = [json.loads(line) for line in open(path)]
    out = tmp_path / "leetcode.jsonl"
    assay("apply", "label", str(path), str(out), "--source", "leetcode")
    labelled = read_jsonl(out)
    want = {"Easy": 0.2, "Medium": 0.5, "Hard": 0.8}
    assert Counter(r["labels"]["difficulty"] for r in labelled) == Counter(want[r["meta"]["difficulty"]] for r in raw)
    assert Counter(r["labels"]["difficulty"] for r in labelled) == {0.5: 91, 0.2: 45, 0.8: 44}


@pytest.mark.parametrize(("meta", "domain", "difficulty", "source"), [
    ({"rating": 800}, "code", 0.0, "meta.rating"),
    ({"rating": 2150, "difficulty": "EASY"}, "code", 0.5, "meta.rating"),  # the rating is more precise
    ({"rating": 4000}, "code", 1.0, "meta.rating"),
    ({"difficulty": "MEDIUM_HARD"}, "code", 0.65, "meta.difficulty"),  # TACO
    ({"difficulty": 2}, "code", 0.5, "meta.difficulty"),  # CodeContests enum MEDIUM
    ({"difficulty": "C"}, "code", 0.45, "meta.difficulty"),  # CodeContests names the Codeforces index
    ({"difficulty": 9}, "code", 0.45, "meta.difficulty"),  # enum 9 = index C
    ({"difficulty": 7.5}, "math", 0.7, "meta.difficulty"),  # Omni-MATH 1-10
    ({"level": "Level 4"}, "math", 0.7, "meta.level"),
    ({"difficulty": "UNKNOWN_DIFFICULTY"}, "code", None, None),
    ({"level": 9}, "math", None, None),  # out of the 1-5 scale: no guess
    ({}, "math", None, None),
])
def test_difficulty_from_each_kind_of_metadata(meta: dict[str, Any], domain: str, difficulty: float | None,
                                               source: str | None) -> None:
    rec = {"id": "x", "domain": domain, "prompt": "Find the number of ways to tile a 2 by n board.", "meta": meta}
    _stage().process(rec)
    assert rec["labels"].get("difficulty") == difficulty
    assert rec["labels"].get("difficulty_from") == source


def test_category_kept_from_source_renamed_and_defaulted() -> None:
    st = _stage(category_map={"Precalculus": "algebra"}, default_category="domain")
    kept = {"id": "a", "domain": "math", "prompt": "p" * 20, "labels": {"category": "olympiad"},
            "meta": {"subject": "Geometry"}}
    renamed = {"id": "b", "domain": "math", "prompt": "p" * 20, "meta": {"subject": "Precalculus"}}
    default = {"id": "c", "domain": "code", "prompt": "p" * 20, "meta": {"tags": ["dp", "greedy"]}}
    for rec in (kept, renamed, default):
        st.process(rec)
    assert kept["labels"]["category"] == "olympiad"
    assert renamed["labels"]["category"] == "algebra"
    assert default["labels"]["category"] == "code"
    assert default["labels"]["tags"] == ["dp", "greedy"]
    raw = {"id": "d", "domain": "math", "prompt": "p" * 20, "labels": {"category": "Olympiad Geometry"}}
    _stage().process(raw)
    assert raw["labels"]["category"] == "olympiad_geometry"
    raw["labels"]["category"] = "Olympiad Geometry"
    _stage(normalise_category=False).process(raw)
    assert raw["labels"]["category"] == "Olympiad Geometry"


def test_quality_flags_visible_defects() -> None:
    assert md.quality_flags("In the figure below, find the area of the shaded region.") == ["missing_figure"]
    assert md.quality_flags("As shown in the diagram, [asy]draw((0,0)--(1,1));[/asy] find AB.") == []
    assert md.quality_flags("Solve it.") == ["too_short"]
    assert md.heuristic_quality(["missing_figure", "too_short"]) == 1
    rec = {"id": "q", "domain": "math", "prompt": "As shown in the figure, triangle ABC has AB = 3. Find BC."}
    _stage().process(rec)
    assert rec["labels"]["quality"] == 3
    assert rec["labels"]["quality_flags"] == ["missing_figure"]
    scored = {"id": "q2", "domain": "math", "prompt": "p" * 30, "meta": {"quality": 2}}
    _stage().process(scored)
    assert scored["labels"]["quality"] == 2


def qwen_records(shared_data: Path) -> list[dict[str, Any]]:
    """100 MATH problems x 8 sampled responses, each already judged correct or not (`score`)."""
    out = []
    for line in open(shared_data / "qwen25math_rm_maj_cot100" / "math_cot_100.jsonl", encoding="utf-8"):
        row = json.loads(line)
        responses = [{"text": text, "checks": {"math_verify": {"passed": bool(ok), "score": float(bool(ok)),
                                                                "reason": ""}}}
                     for text, ok in zip(row["code"], row["score"], strict=True)]
        out.append({"id": f"qwen/{row['idx']}", "domain": "math", "prompt": row["question"],
                    "reference": {"answer": row["gt"]}, "meta": {"level": row["level"]}, "responses": responses})
    return out


def test_empirical_difficulty_is_one_minus_pass_rate(shared_data: Path, tmp_path: Path) -> None:
    records = qwen_records(shared_data)
    inp = write_jsonl(tmp_path / "qwen.jsonl", records)
    out = tmp_path / "out.jsonl"
    assay("apply", "label", str(inp), str(out), "--set", "backends=heuristic,empirical")
    labelled = {r["id"]: r for r in read_jsonl(out)}
    by_level: dict[str, list[float]] = {}
    for rec in records:
        got = labelled[rec["id"]]["labels"]
        flags = [r["checks"]["math_verify"]["passed"] for r in rec["responses"]]
        assert got["difficulty"] == pytest.approx(1 - sum(flags) / len(flags), abs=1e-4)
        assert got["difficulty_from"] == "pass_rate"
        assert got["samples"] == 8
        by_level.setdefault(rec["meta"]["level"], []).append(got["difficulty"])
    mean = {k: sum(v) / len(v) for k, v in by_level.items()}
    assert mean["Level 5"] > max(mean[f"Level {k}"] for k in range(1, 5))


def test_empirical_needs_enough_verified_samples() -> None:
    ok = {"passed": True, "score": 1.0, "reason": ""}
    bad = {"passed": False, "score": 0.0, "reason": ""}
    rec = {"id": "e", "domain": "code", "prompt": "p" * 20, "meta": {"difficulty": "interview"},
           "responses": [{"text": "a", "checks": {"code_verify": ok}}, {"text": "b"},
                         {"text": "c", "checks": {"code_verify": bad, "rules": ok}}]}
    st = _stage(backends=["heuristic", "empirical"], min_samples=3)
    st.process(rec)
    assert rec["labels"]["difficulty"] == 0.5  # 2 verified < 3: the heuristic stands
    assert rec["labels"]["difficulty_from"] == "meta.difficulty"
    _stage(backends=["heuristic", "empirical"], min_samples=2).process(rec)
    assert rec["labels"]["difficulty"] == 0.5 and rec["labels"]["pass_rate"] == 0.5
    assert rec["labels"]["difficulty_from"] == "pass_rate"
    assert rec["labels"]["samples"] == 2


def test_bad_parameters_are_one_sentence(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "domain": "math", "prompt": "p"}])
    proc = assay("apply", "label", str(inp), str(tmp_path / "o.jsonl"), "--set", "backends=oracle", check=False)
    assert proc.returncode == 2
    assert "backends" in proc.stderr and "Traceback" not in proc.stderr
    proc = assay("apply", "label", str(inp), str(tmp_path / "o.jsonl"), "--set", "rating_range=[3000,800]",
                 check=False)
    assert proc.returncode == 2 and "low < high" in proc.stderr


def test_degenerate_prompts_get_low_quality_and_real_ones_do_not(shared_data: Path) -> None:
    assert "repetitive" in md.quality_flags("x" * 5000)
    assert "repetitive" in md.quality_flags("Compute 2 + 2 and explain. " * 40)
    assert md.heuristic_quality(md.quality_flags("x" * 200_000)) == 1  # repetitive and too long
    flagged = []
    for path in sorted(shared_data.glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            text = row.get("problem") or row.get("question") or row.get("prompt") or row.get("text")
            if isinstance(text, str) and {"repetitive", "too_long"} & set(md.quality_flags(text)):
                flagged.append((path.name, text[:60]))
    assert flagged == []  # MATH-500, GSM8K, HumanEval, MBPP, APPS, LeetCode, MMLU, traces: none flagged
