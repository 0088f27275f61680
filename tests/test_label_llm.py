"""The `label` stage's LLM backend: the JSON contract, re-asking on bad output, a real local model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assay.select import llm_labels
from conftest import assay, read_jsonl, write_jsonl
from faultserver import FaultServer

CATS = ["algebra", "geometry", "number_theory", "algorithms"]


@pytest.mark.parametrize(("text", "want"), [
    ('{"category": "algebra", "difficulty": 3, "quality": 4}', ("algebra", 0.25, 4)),
    ('```json\n{"category": "Number Theory", "difficulty": "10", "quality": 5}\n```', ("number_theory", 0.95, 5)),
    ('Sure! Here it is: {"category": "geometry", "difficulty": 1.0, "quality": 1} Hope it helps.',
     ("geometry", 0.05, 1)),
])
def test_parse_reads_the_labels(text: str, want: tuple[str, float, int]) -> None:
    got = llm_labels.parse(text, CATS)
    assert (got["category"], got["difficulty"], got["quality"]) == want
    assert got["difficulty_from"] == "llm"


@pytest.mark.parametrize(("text", "words"), [
    ("I think it is algebra, fairly easy.", "no JSON object"),
    ('{"category": "poetry", "difficulty": 3, "quality": 4}', "not one of"),
    ('{"category": "algebra", "difficulty": 11, "quality": 4}', "from 1 to 10"),
    ('{"category": "algebra", "difficulty": 2.5, "quality": 4}', "integer"),
    ('{"category": "algebra", "difficulty": 2, "quality": true}', "integer"),
    ('{"category": "algebra", "difficulty": 2}', "quality"),
    ('{"difficulty": 2, "quality": 3}', "category"),
])
def test_parse_refuses_what_breaks_the_contract(text: str, words: str) -> None:
    with pytest.raises(llm_labels.LabelParseError, match=words):
        llm_labels.parse(text, CATS)


def test_prompt_and_schema_name_the_categories() -> None:
    msgs = llm_labels.messages("x" * 50, CATS, "Prefer algorithms for code.", max_chars=20)
    assert msgs[0]["role"] == "system" and msgs[1]["role"] == "user"
    assert "x" * 20 + "\n[... truncated]" in msgs[1]["content"] and "x" * 21 not in msgs[1]["content"]
    assert "algebra, geometry, number_theory, algorithms" in msgs[1]["content"]
    assert "Prefer algorithms for code." in msgs[1]["content"]
    schema = llm_labels.schema(CATS)
    assert schema["properties"]["category"]["enum"] == CATS
    assert schema["required"] == ["category", "difficulty", "quality"]


def _problems(shared_data: Path, n: int) -> list[dict[str, Any]]:
    out = []
    with open(shared_data / "math500" / "test.jsonl", encoding="utf-8") as f:
        for i, line in zip(range(n), f, strict=False):
            row = json.loads(line)
            out.append({"id": f"math500/{i}", "domain": "math", "prompt": row["problem"],
                        "reference": {"answer": row["answer"]}, "meta": {"level": row["level"]}})
    return out


def scripted_labeller(body: dict[str, Any]) -> tuple[str, str | None]:
    """Garbage on the first try (temperature 0), a valid label when asked again."""
    if body.get("temperature") == 0:
        return "<think>hmm</think>It looks like algebra to me.", None
    return '<think>ok</think>{"category": "geometry", "difficulty": 7, "quality": 4}', None


def test_unparseable_output_is_asked_again(shared_data: Path, tmp_path: Path, cache_dir: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", _problems(shared_data, 3))
    out = tmp_path / "out.jsonl"
    with FaultServer(answer=scripted_labeller) as server:
        assay("apply", "label", str(inp), str(out), "--set", "backends=heuristic,llm", "--set", "keep=[]",
              "--set", f"teacher.base_url={server.url}", "--set", "teacher.model=fault",
              "--set", f"categories={','.join(CATS)}")
        assert server.count() == 6  # one bad and one good answer per record
        sent = server.chat_requests()[0].body
    assert "algebra, geometry, number_theory, algorithms" in sent["messages"][1]["content"]
    for rec in read_jsonl(out):
        assert rec["labels"]["category"] == "geometry"
        assert rec["labels"]["difficulty"] == 0.65 and rec["labels"]["difficulty_from"] == "llm"
        assert rec["labels"]["quality"] == 4
        assert rec["checks"]["label"]["passed"] is True


def always_garbage(body: dict[str, Any]) -> tuple[str, str | None]:
    return "I would rather not say.", None


def test_output_that_never_parses_keeps_the_heuristic_labels(shared_data: Path, tmp_path: Path,
                                                             cache_dir: Path) -> None:
    records = _problems(shared_data, 2)
    inp = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    with FaultServer(answer=always_garbage) as server:
        common = ["--set", "backends=heuristic,llm", "--set", f"teacher.base_url={server.url}",
                  "--set", "teacher.model=fault", "--set", "parse_retries=1"]
        assay("apply", "label", str(inp), str(out), *common)
        assert server.count() == 4
        kept = read_jsonl(out)
        for rec, src in zip(kept, records, strict=True):
            assert rec["labels"]["difficulty_from"] == "meta.level"
            assert rec["labels"]["difficulty"] == (src["meta"]["level"] - 0.5) / 5
            assert rec["checks"]["label"]["code"] == "unparseable"
            assert rec["checks"]["label"]["passed"] is True  # on_error: keep
        dropped = tmp_path / "dropped.jsonl"
        assay("apply", "label", str(inp), str(dropped), *common, "--set", "on_error=drop", "--drop")
        assert read_jsonl(dropped) == []
        assert len(read_jsonl(tmp_path / "dropped.rejected.jsonl")) == 2


def test_llm_backend_needs_an_endpoint(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "domain": "math", "prompt": "What is 2 + 2?"}])
    proc = assay("apply", "label", str(inp), str(tmp_path / "o.jsonl"), "--set", "backends=llm", check=False)
    assert proc.returncode == 2
    assert "teacher" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_local_model_labels_real_problems(shared_data: Path, tmp_path: Path, cache_dir: Path) -> None:
    """SmolLM2-135M through the embedded llama.cpp server: weak labels, but a real model whose
    output the schema constrains and the parser accepts."""
    inp = write_jsonl(tmp_path / "in.jsonl", _problems(shared_data, 2))
    out = tmp_path / "out.jsonl"
    assay("apply", "label", str(inp), str(out), "--set", "backends=heuristic,llm", "--set", "teacher.local=true",
          "--set", "keep=[]", "--set", "max_tokens=64")
    for rec in read_jsonl(out):
        labels = rec["labels"]
        assert rec["checks"]["label"]["passed"] is True, rec["checks"]
        assert labels["difficulty_from"] == "llm"
        assert labels["category"] in llm_labels.DEFAULT_CATEGORIES
        assert 0.0 < labels["difficulty"] < 1.0 and labels["quality"] in range(1, 6)
