"""dedup-semantic with the real MiniLM model: reworded, renamed and reformatted copies of MATH-500
problems are found, distinct problems are not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import assay, read_jsonl, write_jsonl

# Hand-written copies of MATH-500 problems (row of ../shared/data/math500/test.jsonl -> (how, text))
# that a contaminated training set could hold. Also used by test_decontaminate.py.
PARAPHRASES: dict[int, tuple[str, str]] = {
    2: ("reworded, LaTeX as plain text",
        "Let f(x) = (3x - 2)/(x - 2). Find f(-2) + f(-1) + f(0), written as a common fraction."),
    3: ("reworded", "How many positive integer divisors does the number 196 have?"),
    5: ("reworded, numbers as digits",
        "A regular hexagon is split into 6 equilateral triangles. One triangle has a perimeter of 21 inches. "
        "Find the perimeter of the hexagon in inches."),
    6: ("reworded, numbers as digits", "Find the least positive perfect cube that equals the sum of 3 consecutive "
        "integers."),
    8: ("LaTeX as plain text", "Find the distance between the points (2, -6) and (-4, 3). Give your answer in "
        "simplest radical form."),
    11: ("variables renamed, reworded",
         "Suppose $q(t)$ is a degree-5 polynomial with $q(t) = \\dfrac{t}{t^2-1}$ for $t = 2, 3, 4, \\ldots, 7$. "
         "Determine $q(8)$."),
    12: ("reworded", "The proper divisors of 12 are 1, 2, 3, 4, 6. A proper divisor of a whole number N is a "
         "positive divisor smaller than N. Compute the sum of the proper divisors of the sum of the proper "
         "divisors of 284."),
    16: ("LaTeX as plain text", "Compute 1 - 2 + 3 - 4 + 5 - ... + 99 - 100."),
    19: ("variables renamed, reworded",
         "Let $b>0$ be a real number such that every root of $y^3 + by^2 + by + 1 = 0$ is real. What is the "
         "minimum possible value of $b$?"),
    20: ("LaTeX as plain text", "Evaluate (1 + 2i) * 6 - 3i."),
}

# Rows whose copies are only reformatted (whitespace, case, `\dfrac`, `$` signs, thousands separators).
REFORMATTED_ROWS = (30, 32, 40, 45)


def math500_rows(shared_data: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in open(shared_data / "math500" / "test.jsonl", encoding="utf-8")]


def test_semantic_dedup_finds_paraphrases_and_keeps_distinct_problems(shared_data: Path, tmp_path: Path) -> None:
    rows = math500_rows(shared_data)[:60]
    records = [{"id": f"math500/{i}", "domain": "math", "prompt": r["problem"]} for i, r in enumerate(rows)]
    copies = [{"id": f"para/{i}", "domain": "math", "prompt": text, "reference": {"answer": rows[i]["answer"]}}
              for i, (_, text) in PARAPHRASES.items()]
    inp = write_jsonl(tmp_path / "in.jsonl", records + copies)
    out = tmp_path / "out.jsonl"
    assay("apply", "dedup-semantic", str(inp), str(out), "--set", "threshold=0.9", "--drop")
    kept = read_jsonl(out)
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    # each paraphrase has a reference answer, so it survives and the original goes
    assert sorted(r["id"] for r in rejected) == sorted(f"math500/{i}" for i in PARAPHRASES)
    for r in rejected:
        check = r["record"]["checks"]["dedup_semantic"]
        assert check["survivor"] == "para/" + r["id"].split("/")[1]
        assert 0.9 <= check["similarity"] <= 1.0 and check["cluster_size"] == 2
        assert "cosine" in r["reason"]
    assert len(kept) == len(records)
    survivors = {r["id"]: r["checks"]["dedup_semantic"] for r in kept if r["id"].startswith("para/")}
    assert all(c["passed"] and c["cluster_size"] == 2 for c in survivors.values())

    # a stricter threshold turns only the closest pairs into duplicates
    strict = tmp_path / "strict.jsonl"
    assay("apply", "dedup-semantic", str(inp), str(strict), "--set", "threshold=0.97", "--drop")
    assert 0 < len(read_jsonl(tmp_path / "strict.rejected.jsonl")) < len(PARAPHRASES)


def test_rewordings_with_the_same_numbers_are_duplicates(shared_data: Path, tmp_path: Path) -> None:
    rows = math500_rows(shared_data)
    reworded = {  # MiniLM scores these 0.88-0.89 against the originals: under the 0.9 threshold
        2: "Let f(x) = (3x - 2)/(x - 2). Compute f(-2) + f(-1) + f(0) and give the result as a fraction.",
        3: "Find the number of positive integer divisors of 196.",
        8: "Compute the distance between (2,-6) and (-4,3), in simplest radical form.",
        10: "Find the smallest positive multiple of 30 whose digits are all 0s and 2s.",
    }
    records = [{"id": f"math500/{i}", "domain": "math", "prompt": rows[i]["problem"]} for i in reworded]
    records += [{"id": f"re/{i}", "domain": "math", "prompt": t, "reference": {"answer": rows[i]["answer"]}}
                for i, t in reworded.items()]
    records += [{"id": "other/1", "domain": "math", "prompt": "How many positive divisors does 200 have?"},
                {"id": "other/2", "domain": "math", "prompt": "What is the distance between (1, 2) and (4, 6)?"}]
    inp = write_jsonl(tmp_path / "in.jsonl", records)
    assay("apply", "dedup-semantic", str(inp), str(tmp_path / "out.jsonl"), "--drop")
    rejected = {r["id"]: r["record"]["checks"]["dedup_semantic"] for r in read_jsonl(tmp_path / "out.rejected.jsonl")}
    assert set(rejected) == {f"math500/{i}" for i in reworded}, sorted(rejected)
    assert all(0.8 <= c["similarity"] < 0.9 for c in rejected.values())
    assay("apply", "dedup-semantic", str(inp), str(tmp_path / "off.jsonl"), "--drop", "--set", "numbers_cosine=null")
    assert not (tmp_path / "off.rejected.jsonl").exists() or read_jsonl(tmp_path / "off.rejected.jsonl") == []
