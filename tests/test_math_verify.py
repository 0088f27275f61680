"""The `math-verify` stage: comparisons, guards against false positives, the CLI and pipelines."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from assay.verify.math_compare import as_number, judge, quick_judge
from conftest import assay, read_jsonl, read_output, write_jsonl


def decide(gold: str, pred: str | None, choices: list[str] | None = None, final: str | None = None) -> bool:
    return judge(gold, pred, choices, final).passed


# ---- comparisons -----------------------------------------------------------------------------

@pytest.mark.parametrize("gold, pred", [
    # math-verify's equivalences
    (r"\frac{1}{2}", "0.5"),
    ("0.5", r"\frac12"),
    (r"3\sqrt{2}", r"\sqrt{18}"),
    (r"\dfrac{\sqrt{3}}{2}", r"\frac{\sqrt3}{2}"),
    (r"\{1,2\}", "2, 1"),
    ("(1, 2)", "(1,2)"),
    (r"\frac{\pi}{3}", r"\pi/3"),
    ("x^2+2x+1", "(x+1)^2"),
    # numbers: thousands separators, currency, units, decimals
    ("7425000", "7,425,000"),
    ("1234", r"\$1,234"),
    ("1000", "1 000"),
    ("32349", r"32,\!349"),
    ("10000", "10{,}000"),
    ("18", "18.00"),
    ("18", "18 dollars"),
    ("5", r"5\text{ cm}^2"),
    ("12", "12 m"),
    ("1.22", "1,22"),
    ("1500000", "1.5e6"),
    (r"-\frac{3}{4}", "-0.75"),
    ("45", r"45^\circ"),
    # percentages: the number or its fraction
    ("10", "10%"),
    ("0.1", r"10\%"),
    (r"10\%", "0.1"),
    (r"28\%", "28 percent"),
    # x = 2 vs 2, either way round
    ("2", "x = 2"),
    ("x=2", "2"),
    ("y = 2x+3", "2x+3"),
    # text answers
    (r"\text{Monday}", "monday"),
    (r"\text{even}", "Even."),
    ("no solution", r"\text{No solution}"),
    # choice letters without options
    ("C", "(C)"),
    (r"\text{(C)}", "C"),
    # a \pm answer and a list that only parses part by part
    (r"\frac{1 \pm \sqrt{5}}{2}", r"\frac{1+\sqrt5}{2}, \frac{1-\sqrt5}{2}"),
    (r"x = \frac{1}{2}, x = \frac{-1 \pm \sqrt{13}}{4}", r"x = \frac{1}{2}, x = \frac{-1 \pm \sqrt{13}}{4}"),
    # mixed numbers
    (r"12\frac{3}{5}", "12.6"),
    (r"1\frac{1}{4}", r"\frac{5}{4}"),
    (r"2\frac{1}{2} \text{ cups}", "2.5"),
    # a decimal rounded to the places it shows, for an exact reference
    ("1/3", "0.33"),
    (r"(\frac{3}{5},\frac{8}{3}]", "(0.6,2.6667]"),
])
def test_equal_answers_pass(gold: str, pred: str) -> None:
    j = judge(gold, pred)
    assert j.passed, j.reason
    assert j.code == "correct"


@pytest.mark.parametrize("gold, pred", [
    ("18", "19"),
    ("3", "3.0001"),
    ("1/3", "0.3"),  # one decimal place is not an answer to 1/3
    ("12", "12 pi"),
    ("12", "12 x"),
    ("2", "2 or 3"),
    (r"\frac{\pi}{4}", r"45^\circ"),
    ("10", "10.5%"),
    (r"\text{even}", "odd"),
    ("no", "on"),  # as sympy products n*o == o*n: text answers never go through sympy
    ("x=2", "y=2"),
    ("(1, 2)", "(2, 1)"),
    ("B", "C"),
    ("1.22", "1,23"),
    (r"12\frac{3}{5}", r"\frac{36}{5}"),  # a mixed number, not a product
])
def test_different_answers_fail(gold: str, pred: str) -> None:
    j = judge(gold, pred)
    assert not j.passed, j.reason
    assert j.code in ("wrong_answer", "unparseable_answer")


@pytest.mark.parametrize("gold, pred", [
    (r"\frac{", r"\frac{"),
    (r"\boxed{W(n) = 1 \text{ and } W(n) = -1", "-1"),  # math-verify reads the fragment "-1" of it
    (r"\sqrt{", "2"),
    ("}{", "}{"),
])
def test_a_reference_that_does_not_parse_never_passes(gold: str, pred: str) -> None:
    j = judge(gold, pred)
    assert not j.passed
    assert j.code in ("gold_unparseable", "wrong_answer")


def test_math_verify_fragment_false_positive_is_guarded() -> None:
    # plain math-verify parses only "1" of this reference, and of the wrong answer, and passes it
    from math_verify import parse, verify

    gold, pred = r"$1 - \frac{1}{\mathrm{e}}$", r"$1 + \frac{1}{\mathrm{e}}$"
    assert verify(parse(gold), parse(pred)) is True
    assert not decide(gold, pred)
    assert decide(gold, r"1 - e^{-1}")


def test_multiple_choice_letters_and_option_texts() -> None:
    choices = ["Paris", "London", "Berlin", "Rome"]
    assert decide("A", "A", choices)
    assert decide("A", "(A)", choices)
    assert decide("A", "Paris", choices)
    assert decide("A", "A) Paris", choices)
    assert decide("A", "The answer is (A).", choices)
    assert decide("0", "paris", choices)  # MMLU keeps the option's index
    assert not decide("A", "B", choices)
    assert not decide("A", "London", choices)
    assert not decide("A", "E", choices)  # not an option
    j = judge("A", "Madrid", choices)
    assert not j.passed and "names none of the choices" in j.reason
    numeric = ["12", "15", "18", "21"]
    assert decide("C", "18", numeric)
    assert not decide("C", "15", numeric)
    assert judge("Z", "A", choices).code == "gold_unparseable"


def test_unmarked_answers_are_read_as_math_verify_reads_them() -> None:
    assert decide("34", None, final="Final Answer: The largest $n$ is 34.")
    assert decide("(7,6)", None, final=r"So the ordered pair $(x, y)$ that solves the system is $(7, 6)$.")
    assert not decide("12", None, final="So there are 13 sequences.")
    # never for choices or words: "A" and "no" occur in any sentence
    assert judge("A", None, ["x", "y"], "A cat sat on the mat.").code == "no_answer"
    assert judge("no", None, None, "no way to tell").code == "no_answer"


def test_quick_judge_needs_no_math_verify() -> None:
    assert quick_judge("1,234", "1234").passed  # type: ignore[union-attr]
    assert quick_judge(r"\frac{1}{2}", r"\sqrt{2}/2") is None  # symbolic: left to the workers
    assert as_number("12 pi") is None and as_number("$1,234.50").value == 1234.5  # type: ignore[union-attr]


# ---- the stage ---------------------------------------------------------------------------------

def _record(rid: str, gold: str | None, texts: list[str], **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": rid, "domain": "math", "prompt": f"problem {rid}",
                           "responses": [{"text": t} for t in texts], **extra}
    if gold is not None:
        rec["reference"] = {"answer": gold}
    return rec


def _checks(path: Path) -> dict[str, list[dict[str, Any]]]:
    return {r["id"]: [resp["checks"]["math_verify"] for resp in r.get("responses", [])] for r in read_jsonl(path)}


def test_apply_writes_checks_with_answer_forms_and_codes(tmp_path: Path) -> None:
    rows = [
        _record("think", "18", ["<think>maybe \\boxed{17}</think>\nSo the answer is \\boxed{18}.",
                                "<think>it is 18, surely \\boxed{18}", "The answer is $\\boxed{19}$."]),
        _record("latex", "\\frac{1}{2}", ["We get \\boxed{\\sqrt{2}^2/4}.", "no idea"]),
        _record("noref", None, ["\\boxed{2}"]),
        _record("field", "0.5", ["blah"]),
        _record("mc", "B", ["The answer is (B).", "Answer: London", "Answer: C"], domain="science",
                meta={"choices": ["Paris", "London", "Rome", "Berlin"]}),
    ]
    rows[3]["responses"][0]["answer"] = "1/2"
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assay("apply", "math-verify", str(inp), str(out))
    checks = _checks(out)
    think = checks["think"]
    assert [c["passed"] for c in think] == [True, False, False]
    assert [c["code"] for c in think] == ["correct", "no_answer", "wrong_answer"]
    assert think[0]["answer"] == "18" and think[0]["score"] == 1.0 and think[0]["gold_parsed"] == "18"
    assert think[1]["score"] == 0.0 and "no final answer" in think[1]["reason"]
    latex = checks["latex"]
    assert latex[0]["passed"] and latex[0]["pred_parsed"] and latex[0]["gold_parsed"] == "1/2"
    assert latex[1]["code"] == "no_answer"
    assert checks["noref"][0]["code"] == "no_reference" and not checks["noref"][0]["passed"]
    assert checks["field"][0]["passed"] and checks["field"][0]["answer"] == "1/2"
    assert [c["passed"] for c in checks["mc"]] == [True, True, False]


def test_skip_records_without_reference_and_drop_failures(tmp_path: Path) -> None:
    rows = [_record("noref", None, ["\\boxed{2}"]), _record("ok", "4", ["\\boxed{4}", "\\boxed{5}"])]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assay("apply", "math-verify", str(inp), str(out), "--set", "missing_reference=skip", "--drop")
    kept = {r["id"]: r for r in read_jsonl(out)}
    assert "math_verify" not in (kept["noref"]["responses"][0].get("checks") or {})
    assert [r["text"] for r in kept["ok"]["responses"]] == ["\\boxed{4}"]
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    assert len(rejected) == 1 and rejected[0]["response"]["text"] == "\\boxed{5}"


def test_strict_mode_fails_unmarked_answers(tmp_path: Path) -> None:
    rows = [_record("a", "7", ["So she has 7 apples left."])]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    assay("apply", "math-verify", str(inp), str(tmp_path / "lenient.jsonl"))
    assay("apply", "math-verify", str(inp), str(tmp_path / "strict.jsonl"), "--set", "unmarked=false")
    assert _checks(tmp_path / "lenient.jsonl")["a"][0]["passed"]
    assert _checks(tmp_path / "strict.jsonl")["a"][0]["code"] == "no_answer"


def test_a_comparison_past_its_time_limit_fails_as_timeout(tmp_path: Path) -> None:
    # symbolic comparisons take well over 5 ms; numbers are decided without the workers
    rows = [_record("slow", r"\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{15+2\sqrt{33}}",
                    [r"\boxed{\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{2\sqrt{33}+15}}", r"\boxed{4}"])]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    assay("apply", "math-verify", str(inp), str(tmp_path / "out.jsonl"), "--set", "timeout_s=0.005")
    checks = _checks(tmp_path / "out.jsonl")["slow"]
    assert checks[0]["code"] == "timeout" and not checks[0]["passed"]
    assert checks[1]["code"] in ("wrong_answer", "timeout")


def _gsm8k_records(shared_data: Path, n: int) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    rows, labels = [], {}
    path = shared_data / "gsm8k_model_solutions" / "example_model_solutions.jsonl"
    for i, line in enumerate(path.read_text().splitlines()[:n]):
        row = json.loads(line)
        models = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
        rows.append(_record(f"gsm/{i}", row["ground_truth"].rsplit("A:", 1)[1].strip(),
                            [row[m]["solution"] for m in models]))
        for j, m in enumerate(models):
            labels[f"gsm/{i}/{j}"] = row[m]["is_correct"]
    return rows, labels


def _qwen_records(shared_data: Path, n: int) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    rows, labels = [], {}
    path = shared_data / "qwen25math_rm_maj_cot100" / "math_cot_100.jsonl"
    for line in path.read_text().splitlines()[:n]:
        row = json.loads(line)
        responses, scores = (v if isinstance(v, list) else ast.literal_eval(v) for v in (row["code"], row["score"]))
        rows.append(_record(f"qwen/{row['idx']}", str(row["gt"]), responses))
        for j, s in enumerate(scores):
            labels[f"qwen/{row['idx']}/{j}"] = bool(s)
    return rows, labels


def test_agrees_with_labels_on_real_model_solutions(shared_data: Path, tmp_path: Path) -> None:
    g_rows, g_labels = _gsm8k_records(shared_data, 60)
    q_rows, q_labels = _qwen_records(shared_data, 12)
    inp = write_jsonl(tmp_path / "in.jsonl", g_rows + q_rows)
    out = tmp_path / "out.jsonl"
    assay("apply", "math-verify", str(inp), str(out))
    got = {f"{rid}/{j}": c["passed"] for rid, cs in _checks(out).items() for j, c in enumerate(cs)}
    labels = {**g_labels, **q_labels}
    agree = sum(got[k] == v for k, v in labels.items())
    assert len(got) == len(labels) == 60 * 4 + 12 * 8
    assert agree / len(labels) >= 0.98


def test_multiple_choice_on_real_mmlu_questions(shared_data: Path, tmp_path: Path) -> None:
    rows = []
    for i, line in enumerate((shared_data / "mmlu_stem" / "test.jsonl").read_text().splitlines()[:30]):
        q = json.loads(line)
        right, wrong = q["answer"], (q["answer"] + 1) % len(q["choices"])
        letter = "ABCD"[right]
        rows.append(_record(f"mmlu/{i}", letter, [f"Thinking... the answer is ({letter}).",
                                                   f"Answer: {q['choices'][right]}",
                                                   f"The answer is {'ABCD'[wrong]}."],
                            domain="science", meta={"choices": q["choices"]}))
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assay("apply", "math-verify", str(inp), str(out))
    for rid, cs in _checks(out).items():
        passed = [c["passed"] for c in cs]
        # an option text that also appears as another option cannot name one choice
        assert passed[0] and not passed[2], (rid, cs)
        assert passed[1] or "names none" in cs[1]["reason"], (rid, cs)


def test_pipeline_with_when_and_the_persistent_cache(shared_data: Path, tmp_path: Path) -> None:
    g_rows, _ = _gsm8k_records(shared_data, 20)
    chat = {"id": "chat", "domain": "chat", "prompt": "Say hi", "responses": [{"text": "hi"}]}
    q_rows, _ = _qwen_records(shared_data, 3)
    inp = write_jsonl(tmp_path / "in.jsonl", g_rows + q_rows + [chat])
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(f"""
inputs: [{inp}]
workers: 2
cache_dir: {tmp_path / "cache"}
stages:
  - math-verify: {{when: 'domain == "math"'}}
""")
    assay("run", str(cfg), "--out", str(tmp_path / "run1"), "-q")
    out = {r["id"]: r for r in read_output(tmp_path / "run1")}
    assert "chat" in out and "checks" not in out["chat"]["responses"][0]  # routed past by when:
    assert all(resp["checks"]["math_verify"]["passed"] for r in out.values() if r["domain"] == "math"
               for resp in r["responses"])
    rejected = read_jsonl(next((tmp_path / "run1" / "rejected").glob("*.jsonl")))
    assert rejected and all(not x.get("response", {}).get("checks", {}).get("math_verify", {}).get("passed", True)
                            for x in rejected if x["kind"] == "response")
    stats = json.loads((tmp_path / "run1" / "stats.json").read_text())["stages"][0]
    assert stats["skipped"] == 1 and stats["responses_rejected"] > 0
    first = stats["metrics"]
    assert first.get("decided_math_verify", 0) > 0
    # a second run with a new run directory decides the symbolic pairs from the persistent cache
    assay("run", str(cfg), "--out", str(tmp_path / "run2"), "-q")
    second = json.loads((tmp_path / "run2" / "stats.json").read_text())["stages"][0]["metrics"]
    assert second.get("decided_math_verify", 0) == 0
    assert second["decided_cached"] >= first["decided_math_verify"]
    assert read_output(tmp_path / "run2") == read_output(tmp_path / "run1")
