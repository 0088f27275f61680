"""`assay export`: a real run (rules, select-responses) exported as messages / ShareGPT / Alpaca to
JSONL, Parquet and a Hugging Face dataset folder, loaded back with `datasets`, plus the card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assay.rules.synth import reasoning_text
from conftest import assay, read_jsonl, read_output, write_jsonl

datasets = pytest.importorskip("datasets")

SYSTEM = "You are a careful Python programmer."


def math_records(shared_data: Path, n: int = 6) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (shared_data / "math500" / "test.jsonl").read_text().splitlines()[:n]]
    out = []
    for i, row in enumerate(rows):
        def trace(seed: int, row: dict[str, Any] = row) -> str:
            return (f"<think>\n{reasoning_text(150, seed)}\n\nSo the answer is {row['answer']}.\n</think>\n\n"
                    f"{row['solution']}")

        out.append({"id": f"math500/{i}", "domain": "math", "source": "math500", "prompt": row["problem"],
                    "reference": {"answer": row["answer"]},
                    "labels": {"level": row["level"], "subject": row["subject"], "difficulty": row["level"] / 5},
                    "responses": [{"text": trace(10 * i), "model": "teacher-a"},
                                  {"text": trace(10 * i + 1), "model": "teacher-b"},
                                  {"text": trace(10 * i + 2)[:400], "finish_reason": "length"}]})
    return out


def code_records(shared_data: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (shared_data / "humaneval" / "HumanEval.jsonl").read_text().splitlines()[:2]]
    out = []
    for i, row in enumerate(rows):
        code = row["prompt"] + row["canonical_solution"]
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": row["prompt"]}]
        if i == 1:  # a second turn: the first exchange becomes Alpaca history
            messages = [messages[0], {"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."},
                        {"role": "user", "content": row["prompt"]}]
        out.append({"id": row["task_id"], "domain": "code", "source": "humaneval", "messages": messages,
                    "responses": [{"text": f"```python\n{code}```",
                                   "reasoning": f"I need to implement {row['entry_point']} as the docstring says. "
                                                + reasoning_text(80, 99 + i)}]})
    return out


def sky_record(shared_data: Path) -> dict[str, Any]:
    line = (shared_data / "long_cot_traces_skythought" / "sky_t1_math_corrupt_0.5_32b_amc23.jsonl").read_text()
    d = json.loads(line.splitlines()[1])
    return {"id": "sky/1", "domain": "math", "source": "skythought", "prompt": d["question"],
            "reference": {"answer": str(d["gt"])}, "responses": [{"text": d["code"][0]}]}


@pytest.fixture(scope="module")
def run_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    records = math_records(shared_data) + code_records(shared_data) + [sky_record(shared_data)]
    inp = write_jsonl(tmp / "in.jsonl", records)
    cfg = tmp / "pipeline.yaml"
    cfg.write_text(f"name: export-test\ninputs: [{inp}]\nstages:\n  - rules\n  - select-responses\n")
    assay("run", str(cfg), "--out", str(tmp / "run"), "-q")
    return tmp / "run"


def kept_responses(run: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(rec, r) for rec in read_output(run) for r in rec["responses"]]


def test_the_run_keeps_what_the_export_expects(run_dir: Path) -> None:
    kept = kept_responses(run_dir)
    assert len(kept) == 6 * 2 + 2 + 1  # the truncated math responses were rejected
    assert all(rec["labels"]["pass_rate"] == pytest.approx(2 / 3, abs=1e-3) for rec, _ in kept
               if rec["source"] == "math500")


def test_messages_jsonl(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft" / "train.jsonl"
    assay("export", str(run_dir), "--format", "messages", "--to", str(out))
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    kept = kept_responses(run_dir)
    assert ds.num_rows == len(kept)
    by_id = {row["id"]: row for row in ds}
    for rec, _resp in kept:
        rows = [r for i, r in by_id.items() if i.startswith(rec["id"] + "#")]
        assert rows
        for row in rows:
            msgs = row["messages"]
            assert msgs[-1]["role"] == "assistant"
            content = msgs[-1]["content"]
            assert content.startswith("<think>\n") and "\n</think>\n\n" in content
            assert "<|begin_of_thought|>" not in content and "<|end_of_solution|>" not in content
            reasoning, answer = content[len("<think>\n"):].split("\n</think>\n\n")
            assert reasoning.strip() and answer.strip()
            if rec["domain"] == "code":
                assert msgs[0] == {"role": "system", "content": SYSTEM} and "```python" in answer
            else:
                assert msgs[0] == {"role": "user", "content": rec["prompt"]}
                assert "\\boxed" in answer
    assert (tmp_path / "sft" / "README.md").exists()


def test_sharegpt_parquet_is_typed(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft.parquet"
    assay("export", str(run_dir), "--format", "sharegpt", "--to", str(out))
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    feats = ds.features
    assert feats["pass_rate"].dtype == "float64" and feats["level"].dtype == "int64"
    assert feats["difficulty"].dtype == "float64" and feats["subject"].dtype == "string"
    row = next(r for r in ds if r["record_id"] == "math500/0")
    assert [t["from"] for t in row["conversations"]] == ["human", "gpt"]
    assert row["level"] == 2 and row["domain"] == "math" and row["model"] in ("teacher-a", "teacher-b")
    code = next(r for r in ds if r["record_id"] == "HumanEval/0")
    assert [t["from"] for t in code["conversations"]] == ["system", "human", "gpt"]
    assert code["level"] is None  # the code records carry no level


def test_alpaca_hf_dataset_folder(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    assay("export", str(run_dir), "--format", "alpaca", "--to", str(out), "--system", "Be concise.")
    ds = datasets.load_from_disk(str(out))
    assert ds.num_rows == len(kept_responses(run_dir))
    assert {"instruction", "input", "output", "system", "history"} <= set(ds.column_names)
    multi = next(r for r in ds if r["record_id"] == "HumanEval/1")
    assert multi["history"] == [["Say hi.", "Hi."]]
    assert multi["system"] == "Be concise.\n\n" + SYSTEM
    assert multi["instruction"].startswith("\n\ndef ") or "def " in multi["instruction"]
    assert multi["output"].startswith("<think>\nI need to implement")
    card = (out / "README.md").read_text()
    assert "format: `alpaca`" in card
    # exporting again over its own folder works; a folder holding other files is refused
    assay("export", str(run_dir), "--format", "alpaca", "--to", str(out))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    proc = assay("export", str(run_dir), "--to", str(tmp_path / "busy"), check=False)
    assert proc.returncode == 2 and "already holds other files" in proc.stderr


def test_reasoning_beside_the_answer_or_dropped(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "field.jsonl"
    assay("export", str(run_dir), "--to", str(out), "--reasoning", "field")
    rows = datasets.load_dataset("json", data_files=str(out), split="train")
    for row in rows:
        last = row["messages"][-1]
        assert "<think>" not in last["content"] and last["reasoning_content"]
    plain = tmp_path / "plain.jsonl"
    assay("export", str(run_dir), "--to", str(plain), "--format", "sharegpt", "--reasoning", "none")
    for row in read_jsonl(plain):
        assert "<think>" not in row["conversations"][-1]["value"] and "reasoning" not in row
    custom = tmp_path / "custom.jsonl"
    assay("export", str(run_dir), "--to", str(custom), "--think-template",
          "<reasoning>{reasoning}</reasoning>\\n{answer}")
    first = read_jsonl(custom)[0]["messages"][-1]["content"]
    assert first.startswith("<reasoning>") and "</reasoning>\n" in first


def test_dataset_card(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "card" / "data.jsonl"
    assay("export", str(run_dir), "--to", str(out))
    card = (tmp_path / "card" / "README.md").read_text()
    assert card.startswith("---\npretty_name: \"export-test\"")
    for section in ("## Format", "## Counts per stage", "## Counts per source", "## Label distributions",
                    "## Decontamination", "## Pipeline config"):
        assert section in card
    assert "| rules | 9 | 9 |" in card  # records in / out of the rules stage
    assert "| math500 | 6 | 12 |" in card and "| humaneval | 2 | 2 |" in card
    assert "- `subject`" in card and "Algebra" in card and "- `pass_rate`" in card
    assert "(3 rows without it)" in card  # code and Sky-T1 rows have no level
    assert "no `decontaminate` stage" in card
    assert "select-responses" in card.split("## Pipeline config")[1]


def test_card_lists_the_decontamination_benchmarks(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = (copy / "config.yaml").read_text()
    cfg = cfg.replace("  - rules\n", "  - decontaminate: {benchmarks: [../shared/data/math500/test.jsonl, "
                                     "../shared/data/aime_amc/aime24.jsonl], ngram: 13}\n  - rules\n")
    (copy / "config.yaml").write_text(cfg)
    assay("export", str(copy), "--to", str(tmp_path / "d.jsonl"))
    card = (tmp_path / "README.md").read_text()
    decon = card.split("## Decontamination")[1].split("##")[0]
    assert "`../shared/data/math500/test.jsonl`" in decon and "`../shared/data/aime_amc/aime24.jsonl`" in decon
    assert '"ngram": 13' in decon


def test_a_foreign_readme_is_kept(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# my project\n")
    assay("export", str(run_dir), "--to", str(tmp_path / "train.jsonl"))
    assert (tmp_path / "README.md").read_text() == "# my project\n"
    assert "## Counts per stage" in (tmp_path / "train.README.md").read_text()


def test_not_a_run_directory(tmp_path: Path) -> None:
    proc = assay("export", str(tmp_path), "--to", str(tmp_path / "x.jsonl"), check=False)
    assert proc.returncode == 2 and "not an assay run directory" in proc.stderr


def test_only_passing_and_two_exports_in_one_folder(tmp_path: Path) -> None:
    good = f"<think>\n{reasoning_text(200, 5)}\nSo the answer is 9.\n</think>\n\nHence \\boxed{{9}}."
    rec = {"id": "q", "domain": "math", "prompt": "What is 4 + 5?",
           "responses": [{"text": good}, {"text": good, "finish_reason": "length"}]}
    inp = write_jsonl(tmp_path / "in.jsonl", [rec])
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"inputs: [{inp}]\nstages:\n  - rules: {{drop: false}}\n")
    assay("run", str(cfg), "--out", str(tmp_path / "run"), "-q")
    assay("export", str(tmp_path / "run"), "--to", str(tmp_path / "out" / "all.jsonl"))
    assay("export", str(tmp_path / "run"), "--to", str(tmp_path / "out" / "passing.jsonl"), "--only-passing")
    assert len(read_jsonl(tmp_path / "out" / "all.jsonl")) == 2
    assert [r["id"] for r in read_jsonl(tmp_path / "out" / "passing.jsonl")] == ["q#0"]
    assert 'path: "all.jsonl"' in (tmp_path / "out" / "README.md").read_text()
    assert 'path: "passing.jsonl"' in (tmp_path / "out" / "passing.README.md").read_text()
