"""The `language` stage on real multilingual text: prompts, responses, code and math mixed in."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.select.language import Detector, Language
from assay.select.segments import segments, strip_non_language
from assay.stage import StageContext, build_stage
from conftest import assay, read_jsonl, write_jsonl

TEXTS = {
    "en": "A bakery sells muffins in boxes of six. If Maria buys four boxes and gives away nine muffins, "
          "how many muffins does she have left?",
    "zh": "一家面包店以每盒六个的方式出售松饼。如果玛丽亚买了四盒，送出了九个松饼，她还剩下多少个松饼？",
    "fr": "Une boulangerie vend des muffins par boîtes de six. Si Maria achète quatre boîtes et en donne neuf, "
          "combien de muffins lui reste-t-il ?",
    "de": "Eine Bäckerei verkauft Muffins in Schachteln zu sechs Stück. Wenn Maria vier Schachteln kauft und "
          "neun Muffins verschenkt, wie viele Muffins hat sie dann noch?",
    "ru": "Пекарня продаёт кексы в коробках по шесть штук. Если Мария купит четыре коробки и отдаст девять "
          "кексов, сколько кексов у неё останется?",
    "ja": "あるパン屋はマフィンを6個入りの箱で売っています。マリアが4箱買って9個をあげると、マフィンは何個残りますか？",
    "es": "Una panadería vende magdalenas en cajas de seis. Si María compra cuatro cajas y regala nueve "
          "magdalenas, ¿cuántas magdalenas le quedan?",
}

CODE_EN = """Write a function that returns the sum of the squares of a list of integers.

```python
def sum_squares(xs: list[int]) -> int:
    total = 0
    for x in xs:
        total += x * x
    return total
```

Make sure it also handles an empty list, for which the result is zero."""

CODE_ZH = """请实现一个函数，返回整数列表中所有元素的平方和。

```python
def sum_squares(xs):
    return sum(x * x for x in xs)
```

注意：空列表的结果应当为零，并且函数不能修改输入列表。"""

MATH_FR = r"""Soit $f(x) = x^2 + 3x - 4$. Déterminer tous les réels $x$ tels que $f(f(x)) = 0$,
puis calculer la somme \[\sum_{k=1}^{n} \frac{1}{k(k+1)}\] pour tout entier naturel $n$."""

# An R1-style trace that drifts from English into Chinese half-way, then back.
SWITCHING = ("Okay, let me think about this problem carefully. We need the number of muffins left after "
             "giving some away, so first I count all the muffins she bought. "
             "首先，四盒一共有二十四个松饼。然后她送出了九个，所以还剩下十五个松饼。我们再检查一遍这个结果是否正确。 "
             "So the answer is fifteen muffins, which matches the computation above.")


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_single_language_text_is_identified(detector: Detector, lang: str) -> None:
    guess = detector.guess(TEXTS[lang])
    assert guess.language == lang
    assert guess.share == 1.0
    assert guess.score > 0.5


def test_code_and_math_do_not_count(detector: Detector) -> None:
    en = detector.guess(CODE_EN)
    assert (en.language, en.share) == ("en", 1.0)
    zh = detector.guess(CODE_ZH)
    assert (zh.language, zh.share) == ("zh", 1.0)
    fr = detector.guess(MATH_FR)
    assert (fr.language, fr.share) == ("fr", 1.0)
    kept = strip_non_language(CODE_EN + "\n" + MATH_FR)
    for token in ("def", "sum_squares", "total +=", "x^2", "\\frac", "f(f(x))"):
        assert token not in kept


def test_code_switching_gives_a_share_below_one(detector: Detector) -> None:
    guess = detector.guess(SWITCHING)
    assert guess.language == "en"
    assert 0.4 < guess.share < 0.9
    assert set(guess.mix) == {"en", "zh"}
    assert guess.mix["en"] + guess.mix["zh"] == pytest.approx(1.0, abs=1e-3)


def test_text_without_words_has_no_language(detector: Detector) -> None:
    guess = detector.guess("$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\n```\nprint(1 + 2)\n```\n42")
    assert guess.language is None


def test_short_sentences_are_merged_with_their_neighbours() -> None:
    segs = segments("Wait. Hmm. Let me recompute the total number of apples in the basket. Okay.")
    assert len(segs) == 1
    assert segs[0].script == "latin"


def _stage(**params: object) -> Language:
    st = build_stage("language", dict(params))
    assert isinstance(st, Language)
    st.setup(StageContext(cache_dir=Path("/tmp")))
    return st


def test_stage_labels_prompt_and_each_response() -> None:
    rec = {"id": "r1", "domain": "math", "prompt": TEXTS["de"],
           "responses": [{"text": TEXTS["en"]}, {"text": SWITCHING}, {"text": "", "reasoning": TEXTS["ru"]}]}
    st = _stage(allow=["en", "de"], min_share=0.9)
    st.process_batch([rec])
    assert rec["labels"]["language"] == "de"
    assert rec["checks"]["language"]["passed"] is True
    r_en, r_mix, r_ru = rec["responses"]
    assert r_en["labels"]["language"] == "en" and r_en["checks"]["language"]["passed"]
    assert r_mix["labels"]["language_share"] < 0.9
    assert r_mix["checks"]["language"]["passed"] is False
    assert r_mix["checks"]["language"]["code"] == "mixed languages"
    assert r_ru["labels"]["language"] == "ru"
    assert r_ru["checks"]["language"]["code"] == "language ru"
    assert st.stats() == {"prompt_languages": {"de": 1}, "response_languages": {"en": 2, "ru": 1}}


def test_no_check_without_allow_or_min_share() -> None:
    rec = {"id": "r1", "domain": "chat", "prompt": TEXTS["ja"]}
    st = _stage()
    assert st.check_names() == []
    st.process_batch([rec])
    assert rec["labels"]["language"] == "ja"
    assert "checks" not in rec


def test_unsure_short_text_never_fails_and_can_default() -> None:
    rec = {"id": "r1", "domain": "math", "prompt": "Evaluate $\\log_2 64$."}
    st = _stage(allow=["en"])
    st.process_batch([rec])
    assert rec["labels"]["language_score"] < 0.5
    assert rec["checks"]["language"]["passed"] is True
    rec2 = {"id": "r2", "domain": "math", "prompt": "Evaluate $\\log_2 64$."}
    _stage(allow=["en"], default_language="en").process_batch([rec2])
    assert rec2["labels"]["language"] == "en"


def test_allow_accepts_region_codes() -> None:
    assert _stage(allow=["EN-us", "zh_CN"]).allow == ["en", "zh"]


def test_apply_drops_other_languages_and_mixed_responses(tmp_path: Path) -> None:
    rows = [{"id": lang, "domain": "chat", "prompt": text} for lang, text in sorted(TEXTS.items())]
    rows.append({"id": "code-en", "domain": "code", "prompt": CODE_EN,
                 "responses": [{"text": TEXTS["en"]}, {"text": SWITCHING}]})
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assay("apply", "language", str(inp), str(out), "--set", "allow=en,zh", "--set", "min_share=0.9", "--drop")
    kept = read_jsonl(out)
    assert sorted(r["id"] for r in kept) == ["code-en", "en", "zh"]
    code = next(r for r in kept if r["id"] == "code-en")
    assert [r["text"] for r in code["responses"]] == [TEXTS["en"]]
    rejected = read_jsonl(tmp_path / "out.rejected.jsonl")
    assert sorted(r["id"] for r in rejected if r["kind"] == "record") == ["de", "es", "fr", "ja", "ru"]
    assert [r["kind"] for r in rejected if r["id"] == "code-en"] == ["response"]
