"""Math, science and chat source adapters, the adapter registry, malformed rows, and sources
through the real pipeline (`assay run`, `assay sources`).

GSM8K, MATH-500 and MMLU read the real samples in ../shared/data; the other formats have no
sample there, so their rows are written here in the public schema (named at each row).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assay.errors import RecordError, SourceError
from assay.record import validate_record
from assay.sources import RowAt, build_source, sources
from conftest import assay, read_jsonl, read_output, write_jsonl

ALL_SOURCES = {"gsm8k", "math", "numinamath", "openr1-math", "openmathreasoning", "apps", "codecontests",
               "codeforces", "humaneval", "mbpp", "leetcode", "orca", "natural-reasoning", "mmlu"}


def load(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def convert_all(name: str, rows: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    src = build_source(name, options)
    return [validate_record(src.convert(row, RowAt("data.jsonl", i + 1, i))) for i, row in enumerate(rows)]


def convert_one(name: str, row: dict[str, Any], **options: Any) -> dict[str, Any]:
    return convert_all(name, [row], **options)[0]


def source_error(name: str, row: dict[str, Any], **options: Any) -> SourceError:
    with pytest.raises(SourceError) as info:
        convert_one(name, row, **options)
    return info.value


# ---- GSM8K and MATH -------------------------------------------------------------------------------------


def test_gsm8k_answers_and_solutions(shared_data: Path) -> None:
    rows = load(shared_data / "gsm8k" / "test.jsonl")
    recs = convert_all("gsm8k", rows)
    assert len(recs) == 1319 and len({r["id"] for r in recs}) == 1319
    first = recs[0]
    assert first["id"] == "gsm8k/0" and first["domain"] == "math" and first["source"] == "gsm8k"
    assert first["prompt"] == rows[0]["question"]
    assert first["reference"]["answer"] == "18"
    assert first["reference"]["solution"].endswith("$18 every day at the farmer’s market.")
    assert all("<<" not in r["reference"]["solution"] and "####" not in r["reference"]["solution"] for r in recs)
    # every answer is a plain integer: thousands separators are removed ("1,450,000" -> "1450000")
    assert all(r["reference"]["answer"].lstrip("-").isdigit() for r in recs)
    big = next(r for r, row in zip(recs, rows, strict=True) if "#### 1,450,000" in row["answer"])
    assert big["reference"]["answer"] == "1450000"
    kept = convert_one("gsm8k", rows[0], strip_calculator=False)
    assert "<<16-3-4=9>>" in kept["reference"]["solution"]


def test_gsm8k_bad_rows() -> None:
    assert source_error("gsm8k", {"question": "q", "answer": "no marker"}).field == "answer"
    assert source_error("gsm8k", {"question": "q", "answer": "text ####  "}).field == "answer"
    assert source_error("gsm8k", {"answer": "#### 1"}).field == "question"
    assert source_error("gsm8k", {"question": ["q"], "answer": "#### 1"}).field == "question"
    # copies that keep only the final number
    assert convert_one("gsm8k", {"question": "q", "answer": 18})["reference"] == {"answer": "18"}
    assert convert_one("gsm8k", {"question": "q", "answer": "1,200"})["reference"] == {"answer": "1200"}
    assert convert_one("gsm8k", {"question": "q", "answer": "So #### $7."})["reference"]["answer"] == "7"


def test_math500_levels_subjects_and_answers(shared_data: Path) -> None:
    rows = load(shared_data / "math500" / "test.jsonl")
    recs = convert_all("math", rows)
    assert len(recs) == 500
    first = recs[0]
    assert first["id"] == "math/test/precalculus/807.json"
    assert first["reference"]["answer"] == r"\left( 3, \frac{\pi}{2} \right)"
    assert first["labels"]["category"] == "Precalculus" and first["meta"]["level"] == 2
    assert {r["meta"]["level"] for r in recs} == {1, 2, 3, 4, 5}
    assert all(r["reference"]["answer"] == row["answer"] for r, row in zip(recs, rows, strict=True))
    # Without `answer` (the original MATH layout) the last \boxed{} of the solution is the answer,
    # and it agrees with MATH-500's own answers on every problem.
    original = [{"problem": r["problem"], "solution": r["solution"], "level": f"Level {r['level']}",
                 "type": r["subject"]} for r in rows]
    recs2 = convert_all("math", original)
    assert [r["reference"]["answer"] for r in recs2] == [row["answer"] for row in rows]
    assert recs2[0]["id"] == "math/0" and recs2[0]["meta"]["level"] == 2
    assert recs2[0]["labels"]["category"] == "Precalculus"


def test_math_original_layout_edge_cases() -> None:
    # hendrycks/competition_math: problem, level ("Level 5" or "Level ?"), type, solution
    row = {"problem": "Compute $1+1$.", "level": "Level ?", "type": "Prealgebra",
           "solution": r"It is $\boxed{\frac{4}{2}}$, i.e. $\boxed{2}$."}
    rec = convert_one("math", row)
    assert rec["reference"]["answer"] == "2" and "level" not in rec["meta"]
    nested = convert_one("math", {**row, "solution": r"So $\boxed{\{1, \{2\}\}}$ and $\fbox{x^{2}}$"})
    assert nested["reference"]["answer"] == "x^{2}"
    assert "answer" not in convert_one("math", {**row, "solution": "no box"})["reference"]
    assert "answer" not in convert_one("math", row, answer_from_solution=False)["reference"]
    assert source_error("math", {**row, "level": ["5"]}).field == "level"
    assert source_error("math", {"solution": "x"}).field == "problem"


# ---- NuminaMath 1.5 ----------------------------------------------------------------------------------------

# AI-MO/NuminaMath-1.5 dataset card: problem, solution, answer, problem_type, question_type,
# problem_is_valid, solution_is_valid, source, synthetic.
NUMINA_ROWS: list[dict[str, Any]] = [
    {"problem": "Find all real $x$ with $x^2=4$.", "solution": r"$x=\pm 2$, so $\boxed{\pm 2}$.", "answer": r"\pm 2",
     "problem_type": "Algebra", "question_type": "math-word-problem", "problem_is_valid": "Yes",
     "solution_is_valid": "Yes", "source": "olympiads", "synthetic": False},
    {"problem": "Prove that $\\sqrt 2$ is irrational.", "solution": "Suppose ...", "answer": "proof",
     "problem_type": "Number Theory", "question_type": "proof", "problem_is_valid": "Yes",
     "solution_is_valid": "Yes", "source": "olympiads", "synthetic": False},
    {"problem": "What is 2+3?", "solution": "", "answer": "notfound", "problem_type": "Algebra",
     "question_type": "math-word-problem", "problem_is_valid": "Yes", "solution_is_valid": "No",
     "source": "cn_k12", "synthetic": True},
]


def test_numinamath_answers_categories_and_flags() -> None:
    solved, proof, notfound = convert_all("numinamath", NUMINA_ROWS)
    assert solved["id"] == "numinamath/0" and solved["reference"]["answer"] == r"\pm 2"
    assert solved["labels"]["category"] == "Algebra"
    assert solved["meta"] == {"question_type": "math-word-problem", "origin": "olympiads",
                              "problem_is_valid": True, "solution_is_valid": True, "synthetic": False}
    assert "answer" not in proof["reference"] and proof["meta"]["answer_given"] == "proof"
    assert "reference" not in notfound and notfound["meta"]["solution_is_valid"] is False
    # NuminaMath-CoT layout (source, problem, solution, messages): no `answer` field
    cot = convert_one("numinamath", {"source": "synthetic_math", "problem": "1+1?",
                                     "solution": r"So $\boxed{2}$.", "messages": []})
    assert cot["reference"]["answer"] == "2" and cot["meta"]["origin"] == "synthetic_math"


# ---- OpenR1-Math ---------------------------------------------------------------------------------------------

# open-r1/OpenR1-Math-220k dataset card: problem, solution, answer, problem_type, question_type, source,
# uuid, is_reasoning_complete, generations, correctness_math_verify, correctness_llama, finish_reasons,
# correctness_count, messages. Generations are DeepSeek-R1 outputs with a <think> block.
OPENR1_ROW: dict[str, Any] = {
    "problem": "Let $a+b=5$ and $ab=6$. Find $a^2+b^2$.",
    "solution": "$a^2+b^2=(a+b)^2-2ab=25-12=13$.",
    "answer": "13",
    "problem_type": "Algebra",
    "question_type": "math-word-problem",
    "source": "olympiads",
    "uuid": "0f6f9b4e-6b2a-5c3f-9d9e-2c1a3a7c1b11",
    "is_reasoning_complete": [True, True, False],
    "generations": [
        "<think>\nWe have (a+b)^2 = 25, so a^2+b^2 = 25 - 12 = 13.\n</think>\n\nThe answer is $\\boxed{13}$.",
        "<think>\nMaybe 12.\n</think>\n\n$\\boxed{12}$",
        "<think>\nLet me think about this for a very long time and",
    ],
    "correctness_math_verify": [True, False, False],
    "correctness_llama": None,
    "finish_reasons": [None, None, "length"],
    "correctness_count": 1,
    "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
}


def test_openr1_generations_become_responses_with_reasoning_apart() -> None:
    rec = convert_one("openr1-math", OPENR1_ROW)
    assert rec["id"] == "openr1-math/0f6f9b4e-6b2a-5c3f-9d9e-2c1a3a7c1b11"
    assert rec["reference"] == {"answer": "13", "solution": OPENR1_ROW["solution"]}
    assert rec["labels"] == {"category": "Algebra"}
    assert rec["meta"] == {"question_type": "math-word-problem", "origin": "olympiads", "correctness_count": 1}
    good, wrong, cut = rec["responses"]
    assert good["reasoning"] == "We have (a+b)^2 = 25, so a^2+b^2 = 25 - 12 = 13."
    assert good["text"] == "The answer is $\\boxed{13}$." and "<think>" not in good["text"]
    assert good["model"] == "DeepSeek-R1" and "finish_reason" not in good
    assert good["meta"] == {"correct_math_verify": True, "reasoning_complete": True}
    assert wrong["meta"]["correct_math_verify"] is False
    assert cut["text"] == "" and cut["finish_reason"] == "length"
    assert cut["reasoning"].startswith("Let me think") and cut["meta"]["reasoning_complete"] is False
    assert "responses" not in convert_one("openr1-math", OPENR1_ROW, include_generations=False)


def test_split_think_variants() -> None:
    from assay.sources.common import split_think

    assert split_think("plain answer") == (None, "plain answer")
    assert split_think("reasoning only, no open tag</think>\nfinal") == ("reasoning only, no open tag", "final")
    assert split_think("<THINK>r</THINK>t") == ("r", "t")
    assert split_think("<think></think>\nfinal") == (None, "final")


def test_openr1_bad_rows() -> None:
    assert source_error("openr1-math", {**OPENR1_ROW, "generations": ["ok", 3]}).field == "generations[1]"
    assert source_error("openr1-math", {**OPENR1_ROW, "finish_reasons": "stop"}).field == "finish_reasons"
    assert source_error("openr1-math", {**OPENR1_ROW, "generations": "text"}).field == "generations"


# ---- OpenMathReasoning -----------------------------------------------------------------------------------

# nvidia/OpenMathReasoning dataset card: problem, generated_solution, generation_model, problem_type
# (has_answer_extracted / no_answer_extracted / converted_proof), expected_answer, problem_source,
# inference_mode (cot / tir / genselect), pass_rate_72b_tir (a string, "n/a" when unknown).
OMR_ROWS: list[dict[str, Any]] = [
    {"problem": "Find the remainder of $2^{10}$ divided by 7.",
     "generated_solution": "<think>\n2^3 = 8 = 1 mod 7, so 2^10 = 2 mod 7.\n</think>\nThe remainder is $\\boxed{2}$.",
     "generation_model": "DeepSeek-R1", "problem_type": "has_answer_extracted", "expected_answer": "2",
     "problem_source": "aops_c4_high_school_math", "inference_mode": "cot", "pass_rate_72b_tir": "0.75"},
    {"problem": "Evaluate the sum ...", "generated_solution": "<think>\n...\n</think>\n$\\boxed{5}$",
     "generation_model": "QwQ-32B", "problem_type": "no_answer_extracted", "expected_answer": "5",
     "problem_source": "aops_c6_high_school_olympiads", "inference_mode": "cot", "pass_rate_72b_tir": "n/a"},
]


def test_openmathreasoning_reference_only_when_extracted() -> None:
    extracted, majority = convert_all("openmathreasoning", OMR_ROWS)
    assert extracted["reference"] == {"answer": "2"}
    assert extracted["meta"] == {"problem_type": "has_answer_extracted", "origin": "aops_c4_high_school_math",
                                 "inference_mode": "cot", "pass_rate_72b_tir": 0.75}
    (resp,) = extracted["responses"]
    assert resp["model"] == "DeepSeek-R1" and resp["text"] == "The remainder is $\\boxed{2}$."
    assert resp["reasoning"] == "2^3 = 8 = 1 mod 7, so 2^10 = 2 mod 7."
    assert "reference" not in majority and majority["meta"]["majority_answer"] == "5"
    assert "pass_rate_72b_tir" not in majority["meta"]
    trusted = convert_one("openmathreasoning", OMR_ROWS[1], majority_answer_as_reference=True)
    assert trusted["reference"] == {"answer": "5"}


# ---- Natural Reasoning ------------------------------------------------------------------------------------

# facebook/natural_reasoning dataset card: question, reference_answer, responses [{response_model, response}].
NATURAL_ROWS: list[dict[str, Any]] = [
    {"question": "A ball is thrown upward at 20 m/s. How high does it rise (g = 10 m/s^2)?",
     "reference_answer": "20 m",
     "responses": [{"response_model": "Llama-3.3-70B-Instruct", "response": "Using v^2 = 2gh, h = 20 m."}]},
    {"question": "Discuss the implications of Gödel's incompleteness theorems.", "reference_answer": "",
     "responses": [{"response_model": "Llama-3.3-70B-Instruct", "response": "They show that ..."}]},
]


def test_natural_reasoning_reference_and_responses() -> None:
    with_answer, open_ended = convert_all("natural-reasoning", NATURAL_ROWS)
    assert with_answer["domain"] == "science" and with_answer["reference"] == {"answer": "20 m"}
    assert with_answer["responses"] == [{"text": "Using v^2 = 2gh, h = 20 m.", "model": "Llama-3.3-70B-Instruct"}]
    assert "reference" not in open_ended
    assert convert_one("natural-reasoning", NATURAL_ROWS[0], record_domain="math")["domain"] == "math"
    assert source_error("natural-reasoning", {**NATURAL_ROWS[0], "responses": [5]}).field == "responses[0]"
    with pytest.raises(Exception, match="record_domain"):
        build_source("natural-reasoning", {"record_domain": "code"})


# ---- Orca / OpenOrca ----------------------------------------------------------------------------------------

# Open-Orca/OpenOrca dataset card: id, system_prompt, question, response.
# Open-Orca/SlimOrca: conversations [{from: system|human|gpt, value}].
ORCA_ROWS: list[dict[str, Any]] = [
    {"id": "niv.242684", "system_prompt": "You are an AI assistant. Provide a detailed answer.",
     "question": "Translate 'good morning' into French.", "response": "Bonjour."},
    {"id": "flan.1", "system_prompt": "", "question": "Is the sky blue?", "response": "Yes, on a clear day."},
]


def test_orca_messages_and_response() -> None:
    with_system, without = convert_all("orca", ORCA_ROWS, model="gpt-4")
    assert with_system["id"] == "orca/niv.242684" and with_system["domain"] == "chat"
    assert with_system["messages"] == [
        {"role": "system", "content": "You are an AI assistant. Provide a detailed answer."},
        {"role": "user", "content": "Translate 'good morning' into French."}]
    assert with_system["responses"] == [{"text": "Bonjour.", "model": "gpt-4"}]
    assert without["messages"] == [{"role": "user", "content": "Is the sky blue?"}]
    slim = {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi?"},
                              {"from": "gpt", "value": "Hello."}]}
    rec = convert_one("orca", slim)
    assert rec["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    assert rec["responses"] == [{"text": "Hello."}]
    assert source_error("orca", {"conversations": [{"from": "alien", "value": "x"}]}).field == "conversations[0].from"
    assert source_error("orca", {"conversations": [{"from": "gpt", "value": "x"}]}).field == "conversations"
    assert source_error("orca", {"id": "x", "response": "r"}).field == "question"


# ---- MMLU ------------------------------------------------------------------------------------------------------


def test_mmlu_stem_letters_options_and_subjects(shared_data: Path) -> None:
    rows = load(shared_data / "mmlu_stem" / "test.jsonl")
    recs = convert_all("mmlu", rows)
    assert len(recs) == 3018
    first = recs[0]
    assert first["domain"] == "science" and first["reference"]["answer"] == "C"
    assert first["labels"]["category"] == "college_biology"
    assert first["prompt"].startswith(rows[0]["question"] + "\n\nA. maintain the population")
    assert "\nD. increase the mortality rate" in first["prompt"]
    assert first["meta"]["choices"] == rows[0]["choices"] and first["meta"]["answer_text"] == rows[0]["choices"][2]
    letters = [r["reference"]["answer"] for r in recs]
    assert {x: letters.count(x) for x in "ABCD"} == {"A": 645, "B": 719, "C": 783, "D": 871}


def test_mmlu_other_layouts() -> None:
    # cais/mmlu: question, subject, choices, answer (int)
    cais = convert_one("mmlu", {"question": "2+2?", "subject": "elementary_mathematics", "choices": ["3", "4"],
                                "answer": 1}, instruction="Answer with the letter.")
    assert cais["reference"]["answer"] == "B" and cais["prompt"] == "2+2?\n\nA. 3\nB. 4\n\nAnswer with the letter."
    # TIGER-Lab/MMLU-Pro: question_id, question, options (up to 10), answer (letter), answer_index, cot_content
    pro = convert_one("mmlu", {"question_id": 70, "question": "Pick J.", "options": list("abcdefghij"),
                               "answer": "J", "answer_index": 9, "cot_content": "A: Let's think.", "category": "math",
                               "src": "ori_mmlu-x"})
    assert pro["id"] == "mmlu/70" and pro["reference"] == {"answer": "J", "solution": "A: Let's think."}
    assert "\nJ. j" in pro["prompt"] and pro["labels"]["category"] == "math"
    # lukaemon/mmlu: input, A, B, C, D, target (letter)
    luk = convert_one("mmlu", {"input": "Capital of France?", "A": "Rome", "B": "Paris", "C": "Oslo", "D": "Bern",
                               "target": "B"})
    assert luk["reference"]["answer"] == "B" and luk["meta"]["answer_text"] == "Paris"
    assert convert_one("mmlu", {"question": "q", "choices": ["x", "y"], "answer": "y"})["reference"]["answer"] == "B"
    assert source_error("mmlu", {"question": "q", "choices": ["x", "y"], "answer": 4}).field == "answer"
    assert source_error("mmlu", {"question": "q", "choices": ["x", "y"], "answer": "maybe"}).field == "answer"
    assert source_error("mmlu", {"question": "q", "choices": ["x", "y"]}).field == "answer"
    assert source_error("mmlu", {"question": "q", "choices": "x,y", "answer": 0}).field == "choices"
    assert source_error("mmlu", {"question": "q", "choices": ["x"], "answer": 0}).field == "choices"


# ---- every adapter: registry and malformed rows ---------------------------------------------------------------


def test_every_format_is_registered_with_a_summary() -> None:
    known = sources()
    assert ALL_SOURCES <= set(known)
    for name in ALL_SOURCES:
        cls = known[name]
        assert cls.__doc__ and cls.__doc__.strip().split("\n\n")[0], name
        assert cls.domain in ("math", "code", "science", "chat")


WEIRD_VALUES: list[Any] = [None, 0, 1.5, True, "", "text", [], [1, "a", None], {}, {"x": [1]}, "{not json", "[1, 2"]


@pytest.mark.parametrize("name", sorted(ALL_SOURCES))
def test_malformed_rows_raise_record_errors_only(name: str) -> None:
    """Whatever shape a row has, an adapter maps it or raises a RecordError (SourceError) naming why."""
    src = build_source(name)
    fields = ["question", "answer", "problem", "solution", "prompt", "test", "test_list", "entry_point", "task_id",
              "input_output", "solutions", "starter_code", "generations", "finish_reasons", "choices", "options",
              "public_tests", "private_tests", "official_tests", "examples", "description", "responses",
              "conversations", "system_prompt", "response", "reference_answer", "generated_solution", "level",
              "expected_answer", "problem_id", "id", "uuid", "meta", "name", "time_limit", "memory_limit_bytes",
              "text", "code", "canonical_solution", "generated_solutions", "correctness_math_verify", "target"]
    base = {f: "x" for f in fields}
    rows: list[dict[str, Any]] = [{}, base]
    for field in fields:
        for value in WEIRD_VALUES:
            rows.append({**base, field: value})
    for i, row in enumerate(rows):
        try:
            validate_record(src.convert(dict(row), RowAt("f.jsonl", i + 1, i)))
        except RecordError as exc:
            assert str(exc)
    with pytest.raises(SourceError):
        src.convert({}, RowAt("f.jsonl", 1, 0))


def test_unknown_source_and_bad_option_are_one_sentence() -> None:
    from assay.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown source 'gsm9k'; known sources: .*gsm8k"):
        build_source("gsm9k")
    with pytest.raises(ConfigError, match="unknown parameter 'include_privat_tests'"):
        build_source("codecontests", {"include_privat_tests": True})


# ---- through the CLI -------------------------------------------------------------------------------------------


def test_assay_sources_lists_every_adapter() -> None:
    out = assay("sources").stdout
    for name in ALL_SOURCES:
        assert name in out
    detail = assay("sources", "codecontests").stdout
    assert "include_generated_tests" in detail and "solution_language" in detail


def test_pipeline_run_with_gsm8k_and_a_malformed_row(tmp_path: Path, shared_data: Path) -> None:
    rows = load(shared_data / "gsm8k" / "test.jsonl")[:30]
    data = tmp_path / "gsm8k_mixed.jsonl"
    lines: list[Any] = [*rows[:10], {"question": "What is 1+1?", "answer": "It is two."}, "{broken json", *rows[10:]]
    write_jsonl(data, lines)
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"inputs:\n  - {{path: {data}, source: gsm8k, limit: 20}}\nshard_size: 8\n")
    run = tmp_path / "run"
    assay("run", str(config), "--out", str(run), "--quiet")
    out = read_output(run)
    # limit 20 counts rows read: 18 good ones, the unmappable row and the broken line
    assert len(out) == 18
    assert [r["id"] for r in out[:10]] == [f"gsm8k/{i}" for i in range(10)]
    assert out[0]["reference"]["answer"] == "18" and out[0]["source"] == "gsm8k" and out[0]["domain"] == "math"
    assert all(r["prompt"] and r["reference"]["answer"] and r["reference"]["solution"] for r in out)
    invalid = read_jsonl(run / "invalid" / "invalid.jsonl")
    assert [(Path(e["file"]).name, e["line"]) for e in invalid] == [("gsm8k_mixed.jsonl", 11),
                                                                   ("gsm8k_mixed.jsonl", 12)]
    assert "field 'answer'" in invalid[0]["error"] and "####" in invalid[0]["error"]
    assert invalid[0]["data"]["answer"] == "It is two."
    assert invalid[1]["error"].startswith("invalid JSON")
    stats = json.loads((run / "stats.json").read_text())
    assert "18" in json.dumps(stats)


def test_pipeline_reads_hub_style_parquet_with_nested_fields(tmp_path: Path) -> None:
    """CodeContests as the Hub ships it (Parquet, struct and list columns) through `assay run`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from test_sources_code import CODECONTESTS_ROW

    rows = [dict(CODECONTESTS_ROW, name=f"{i}_A. Problem {i}") for i in range(5)]
    rows[3] = {**rows[3], "description": None}
    folder = tmp_path / "code_contests" / "data"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "test-00000-of-00001.parquet")
    config = tmp_path / "p.yaml"
    config.write_text(f"inputs:\n  - path: {tmp_path / 'code_contests'}\n    source: codecontests\n"
                      "    options: {include_generated_tests: true}\n")
    run = tmp_path / "run"
    assay("run", str(config), "--out", str(run), "--quiet")
    out = read_output(run)
    assert [r["id"] for r in out] == [f"codecontests/{i}_A. Problem {i}" for i in (0, 1, 2, 4)]
    assert out[0]["reference"]["solution"] == "print(int(input()))"
    assert len(out[0]["reference"]["tests"]["cases"]) == 4 and out[0]["meta"]["time_limit_s"] == 2.5
    (bad,) = read_jsonl(run / "invalid" / "invalid.jsonl")
    assert bad["line"] == 4 and "field 'description'" in bad["error"]


def test_apply_collect_with_a_source(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "humaneval.jsonl"
    assay("apply", "collect", str(shared_data / "humaneval" / "HumanEval.jsonl"), str(out), "--source", "humaneval",
          "--quiet")
    recs = read_jsonl(out)
    assert len(recs) == 164 and all(r["reference"]["tests"]["kind"] == "assert" for r in recs)


def test_pipeline_reads_a_save_to_disk_folder(tmp_path: Path) -> None:
    """OpenR1-Math rows saved with `datasets` (`save_to_disk`, Arrow files) through `assay run`."""
    datasets = pytest.importorskip("datasets")
    rows = [dict(OPENR1_ROW, uuid=f"u{i}", correctness_llama=[None, None, None]) for i in range(6)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "openr1"))
    config = tmp_path / "p.yaml"
    config.write_text(f"inputs:\n  - {{path: {tmp_path / 'openr1'}, source: openr1-math}}\n")
    run = tmp_path / "run"
    assay("run", str(config), "--out", str(run), "--quiet")
    out = read_output(run)
    assert [r["id"] for r in out] == [f"openr1-math/u{i}" for i in range(6)]
    assert out[0]["responses"][0]["reasoning"].startswith("We have") and out[0]["reference"]["answer"] == "13"
    assert out[0]["responses"][2]["finish_reason"] == "length"


def test_ids_use_the_rows_own_id_else_the_index() -> None:
    at = RowAt("f.jsonl", 8, 7)
    src = build_source("orca")
    assert src.convert({"id": "niv.1", "question": "q"}, at)["id"] == "orca/niv.1"
    assert src.convert({"id": 12, "question": "q"}, at)["id"] == "orca/12"
    assert src.convert({"question": "q"}, at)["id"] == "orca/7"
    assert src.convert({"id": {"odd": 1}, "question": "q"}, at)["id"] == "orca/7"
    assert src.convert({"id": "  ", "question": "q"}, at)["id"] == "orca/7"
    assert build_source("gsm8k", {"id_prefix": "gsm8k/test"}).convert(
        {"question": "q", "answer": "#### 1"}, at)["id"] == "gsm8k/test/7"
