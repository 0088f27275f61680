"""decontaminate against the shared benchmark files: copies, reformatted and reworded problems are
caught and named (benchmark, item, evidence); distinct problems pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import assay, read_jsonl, write_jsonl
from test_dedup_semantic import PARAPHRASES


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def all_benchmarks(d: Path) -> list[str]:
    return [str(d / "math500" / "test.jsonl"), str(d / "aime_amc"), str(d / "humaneval" / "HumanEval.jsonl"),
            str(d / "mbpp"), str(d / "leetcode_contest_deepseek" / "leetcode_20240121_jul.jsonl"),
            str(d / "mmlu_stem" / "test.jsonl")]


def decontaminate(records: list[dict[str, Any]], tmp_path: Path, *sets: str,
                  drop: bool = False) -> list[dict[str, Any]]:
    inp = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    args = ["apply", "decontaminate", str(inp), str(out)]
    for s in sets:
        args += ["--set", s]
    assay(*args, *(["--drop"] if drop else []))
    return read_jsonl(out)


def contaminated_copies(d: Path) -> list[tuple[dict[str, Any], str, int]]:
    """(record, benchmark it copies, row) for copies a training set could hold."""
    math = rows(d / "math500" / "test.jsonl")
    aime = rows(d / "aime_amc" / "aime24.jsonl")
    aime25 = rows(d / "aime_amc" / "aime25.jsonl")
    human = rows(d / "humaneval" / "HumanEval.jsonl")
    mbpp = rows(d / "mbpp" / "mbpp.jsonl")
    leet = rows(d / "leetcode_contest_deepseek" / "leetcode_20240121_jul.jsonl")
    mmlu = rows(d / "mmlu_stem" / "test.jsonl")
    out = [
        # verbatim inside a longer prompt
        ({"domain": "math", "prompt": "Solve carefully.\n\n" + math[32]["problem"] + "\n\nAnswer in \\boxed{}."},
         "math500/test.jsonl", 32),
        # reformatted: LaTeX delimiters dropped, `\dfrac`, spacing and case changed, variables renamed
        ({"domain": "math", "prompt": math[19]["problem"].replace("$a$", "$b$").replace("$a.$", "$b.$")
          .replace("ax", "by").replace("x^3", "y^3").replace("$", "").upper()}, "math500/test.jsonl", 19),
        ({"domain": "math", "prompt": aime[0]["problem"].replace("$9$", "nine") + " Show all work."},
         "aime_amc/aime24.jsonl", 0),
        ({"domain": "math", "prompt": aime25[3]["prompt"].split("\nPlease reason")[0]}, "aime_amc/aime25.jsonl", 3),
        ({"domain": "code", "prompt": "Complete the function.\n" + human[10]["prompt"]},
         "humaneval/HumanEval.jsonl", 10),
        ({"domain": "code", "prompt": mbpp[5]["text"] + " Use bit operations."}, "mbpp/mbpp.jsonl", 5),
        ({"domain": "code", "prompt": leet[7]["prompt_sft"][:1500]}, "leetcode_20240121_jul.jsonl", 7),
        ({"domain": "science", "prompt": mmlu[5]["question"] + "\nA) ...\nB) ..."}, "mmlu_stem/test.jsonl", 5),
    ]
    for k, (rec, _, _) in enumerate(out):
        rec["id"] = f"copy/{k}"
    return out


def test_ngram_overlap_names_benchmark_item_and_evidence(shared_data: Path, tmp_path: Path) -> None:
    copies = contaminated_copies(shared_data)
    clean = [{"id": f"gsm8k/{i}", "domain": "math", "prompt": r["question"]}
             for i, r in enumerate(rows(shared_data / "gsm8k" / "test.jsonl")[:400])]
    out = decontaminate([c for c, _, _ in copies] + clean, tmp_path,
                        "benchmarks=" + ",".join(all_benchmarks(shared_data)), "methods=ngram")
    checks = {r["id"]: r["checks"]["decontaminate"] for r in out}
    for rec, bench, row in copies:
        check = checks[rec["id"]]
        assert not check["passed"], f"{rec['id']} ({bench}) not caught: {check['reason']}"
        assert check["benchmark"].endswith(bench) and check["item"] == row, check
        assert check["method"] == "ngram" and check["evidence"] in check["reason"]
        assert check["score"] == 1.0 and check["code"].startswith("contaminated: ")
        assert f"item {row}" in check["reason"]
    assert checks["copy/0"]["item_id"] == rows(shared_data / "math500" / "test.jsonl")[32]["unique_id"]
    flagged = [i for i, c in checks.items() if i.startswith("gsm8k/") and not c["passed"]]
    assert not flagged, [checks[i]["reason"] for i in flagged]


def test_short_items_need_most_of_their_ngrams(tmp_path: Path) -> None:
    bench = write_jsonl(tmp_path / "bench.jsonl", [
        {"text": "Write a python function to find the sum of all odd numbers in a list."},
        {"text": "Write a python function to find the maximum of two numbers."},
        {"text": "Simplify $\\sqrt{242}$."},  # too short for n-grams: left to the embeddings
    ])
    records = [
        {"id": "same", "domain": "code", "prompt": "write a Python function to find the maximum of two numbers"},
        {"id": "stock-phrase", "domain": "code", "prompt": "Write a python function to find the sum of all even "
         "digits of a number, ignoring zeros."},
        {"id": "short", "domain": "math", "prompt": "Simplify sqrt(242)."},
    ]
    out = decontaminate(records, tmp_path, f"benchmarks={bench}", "methods=ngram")
    checks = {r["id"]: r["checks"]["decontaminate"] for r in out}
    assert not checks["same"]["passed"] and checks["same"]["item"] == 1
    assert checks["stock-phrase"]["passed"], checks["stock-phrase"]
    assert checks["short"]["passed"]


def test_embeddings_catch_paraphrases(shared_data: Path, tmp_path: Path) -> None:
    math = rows(shared_data / "math500" / "test.jsonl")
    records = [{"id": f"para/{i}", "domain": "math", "prompt": text} for i, (_, text) in PARAPHRASES.items()]
    aime = rows(shared_data / "aime_amc" / "aime24.jsonl")
    records.append({"id": "aime-reworded", "domain": "math", "prompt": (
        "Every morning, Aya takes a 9 km walk and afterwards stops at a coffee shop. If she walks at a constant "
        "speed of s km per hour, the walk takes her 4 hours, including t minutes spent at the coffee shop. If "
        "she walks at s+2 km per hour, the walk takes her 2 hours and 24 minutes, including t minutes spent at "
        "the coffee shop. Suppose Aya walks at s+1/2 km per hour. Find the number of minutes the walk takes "
        "her, including the t minutes spent in the coffee shop.")})
    # rewritten from scratch: MiniLM puts it next to the right item, a little under 0.9, and the
    # numbers (9, 4, 2, 24, 1/2) are the item's: caught by the numbers rule
    heavy = {"id": "aime-rewritten", "domain": "math", "prompt": (
        "Each morning Aya walks 9 km and then stops at a coffee shop. At a constant speed of s km/h the whole "
        "trip takes 4 hours, including t minutes at the coffee shop; at s+2 km/h it takes 2 hours 24 minutes, "
        "again including t minutes at the shop. If she walks at s + 1/2 km/h, how many minutes does the trip "
        "take, counting the t minutes at the shop?")}
    clean = [{"id": f"gsm8k/{i}", "domain": "math", "prompt": r["question"]}
             for i, r in enumerate(rows(shared_data / "gsm8k" / "test.jsonl")[:60])]
    benchmarks = [str(shared_data / "math500" / "test.jsonl"), str(shared_data / "aime_amc" / "aime24.jsonl")]
    # the same setting with other numbers is another problem
    other_numbers = {"id": "aime-other-numbers", "domain": "math", "prompt": heavy["prompt"].replace(
        "9 km", "12 km").replace("4 hours", "5 hours").replace("24 minutes", "30 minutes")}
    out = decontaminate([*records, heavy, other_numbers, *clean], tmp_path, "benchmarks=" + ",".join(benchmarks),
                        drop=True)
    rejected = {r["id"]: r for r in read_jsonl(tmp_path / "out.rejected.jsonl")}
    expected = {r["id"] for r in records} | {"aime-rewritten"}
    assert set(rejected) == expected, sorted(set(rejected) ^ expected)
    for i in PARAPHRASES:
        check = rejected[f"para/{i}"]["record"]["checks"]["decontaminate"]
        assert check["benchmark"].endswith("math500/test.jsonl") and check["item"] == i
        assert check["item_id"] == math[i]["unique_id"]
        assert check["similarity"] is not None or check["method"] == "ngram"
        if check["method"] == "embedding":
            assert check["similarity"] >= 0.9 and f"cosine {check['similarity']:.3f}" in check["reason"]
    aime_check = rejected["aime-reworded"]["record"]["checks"]["decontaminate"]
    assert aime_check["benchmark"].endswith("aime24.jsonl") and aime_check["item"] == 0
    assert aime_check["item_id"] == str(aime[0]["id"])
    heavy_check = rejected["aime-rewritten"]["record"]["checks"]["decontaminate"]
    assert heavy_check["method"] == "embedding+numbers" and heavy_check["item"] == 0
    assert 0.75 <= heavy_check["similarity"] < 0.9 and "the same numbers (" in heavy_check["reason"]
    assert out[0]["id"] == "aime-other-numbers" and out[0]["checks"]["decontaminate"]["passed"]
    out = out[1:]
    assert [r["id"] for r in out] == [r["id"] for r in clean]
    assert all(r["checks"]["decontaminate"]["score"] < 0.85 for r in out)
    assert all(r["checks"]["decontaminate"]["reason"].startswith("clean; nearest: ") for r in out)


def test_benchmark_formats_and_errors(shared_data: Path, tmp_path: Path) -> None:
    math = rows(shared_data / "math500" / "test.jsonl")[:50]
    table = pa.table({"uid": [r["unique_id"] for r in math], "body": [r["problem"] for r in math]})
    pq.write_table(table, tmp_path / "bench.parquet")
    records = [{"id": "c", "domain": "math", "prompt": "Please solve: " + math[9]["problem"]},
               {"id": "d", "domain": "math", "prompt": "Name three colours of the rainbow and explain why."}]
    out = decontaminate(records, tmp_path, f"benchmarks={tmp_path / 'bench.parquet'}", "text_field=body",
                        "methods=ngram")
    assert not out[0]["checks"]["decontaminate"]["passed"] and out[0]["checks"]["decontaminate"]["item"] == 9
    assert out[1]["checks"]["decontaminate"]["passed"]

    inp = write_jsonl(tmp_path / "in.jsonl", records)
    proc = assay("apply", "decontaminate", str(inp), str(tmp_path / "o.jsonl"), "--set",
                 f"benchmarks={tmp_path / 'bench.parquet'}", "--set", "methods=ngram", check=False)
    assert proc.returncode != 0 and "no text field found" in proc.stderr and "body" in proc.stderr
    proc = assay("apply", "decontaminate", str(inp), str(tmp_path / "o.jsonl"), "--set",
                 f"benchmarks={tmp_path / 'missing.jsonl'}", check=False)
    assert proc.returncode != 0 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "Compute 1+1 for the first time."}\n{"problem": \n', encoding="utf-8")
    proc = assay("apply", "decontaminate", str(inp), str(tmp_path / "o.jsonl"), "--set", f"benchmarks={broken}",
                 "--set", "methods=ngram", check=False)
    assert proc.returncode != 0 and "line 2" in proc.stderr


@pytest.mark.parametrize("params", [{}, {"methods": ["ngram"], "benchmarks": []}])
def test_benchmarks_are_required(params: dict[str, Any]) -> None:
    from assay.errors import ConfigError
    from assay.stage import build_stage

    with pytest.raises(ConfigError, match="benchmarks"):
        build_stage("decontaminate", params)


def test_rewordings_that_keep_the_numbers_are_caught(shared_data: Path, tmp_path: Path) -> None:
    math = rows(shared_data / "math500" / "test.jsonl")
    reworded = {  # MATH-500 problems said again in other words: MiniLM scores them 0.79-0.89
        0: "Express the rectangular point (0, 3) in polar form (r, theta) with r positive and theta between 0 "
           "and 2pi.",
        2: "Let f(x) = (3x - 2)/(x - 2). Compute f(-2) + f(-1) + f(0) and give the result as a fraction.",
        3: "Find the number of positive integer divisors of 196.",
        8: "Compute the distance between (2,-6) and (-4,3), in simplest radical form.",
        10: "Find the smallest positive multiple of 30 whose digits are all 0s and 2s.",
    }
    others = {  # the same kind of problem with other numbers, and a list of variables
        "n1": "How many positive divisors does 200 have?",
        "n2": "What is the distance between the points (1, 2) and (4, 6)?",
        "n3": "Which one of the following is equal to P(A, B, C, D, E, F, G, H, I, J, K, L, M, N) given Boolean "
              "random variables and no independence assumptions?",
    }
    records = [{"id": f"re/{i}", "domain": "math", "prompt": t} for i, t in reworded.items()]
    records += [{"id": k, "domain": "math", "prompt": t} for k, t in others.items()]
    out = {r["id"]: r["checks"]["decontaminate"] for r in decontaminate(
        records, tmp_path, "benchmarks=" + str(shared_data / "math500" / "test.jsonl"))}
    for i in reworded:
        check = out[f"re/{i}"]
        assert not check["passed"] and check["item"] == i and check["item_id"] == math[i]["unique_id"], check
        assert check["method"] in ("embedding", "embedding+numbers"), check
    assert all(out[k]["passed"] for k in others), {k: out[k]["reason"] for k in others}
    off = {r["id"]: r["checks"]["decontaminate"] for r in decontaminate(
        records, tmp_path / "off", "benchmarks=" + str(shared_data / "math500" / "test.jsonl"),
        "numbers_cosine=null")}
    assert sum(not off[f"re/{i}"]["passed"] for i in reworded) < len(reworded)  # the rule is what catches them

