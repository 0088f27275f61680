"""Final-answer extraction and the reasoning split."""

from __future__ import annotations

import json
import time

import pytest

from assay.verify.extract import clean_answer, extract_answer, last_boxed, split_reasoning


@pytest.mark.parametrize("text, expected", [
    # boxed, nested braces, the last one wins
    (r"so \boxed{\frac{1}{\sqrt{2}}} and done", r"\frac{1}{\sqrt{2}}"),
    (r"first \boxed{3}, then after more work \boxed{\{1,2\}}.", r"\{1,2\}"),
    (r"The value is $\boxed{\left(3, \frac{\pi}{2}\right)}$.", r"\left(3, \frac{\pi}{2}\right)"),
    (r"\fbox{12}", "12"),
    (r"hence \boxed 5 is it", "5"),
    (r"The solutions are $\boxed{2}$ and $\boxed{3}$.", "2, 3"),
    (r"\boxed{\text{(B)}}", r"\text{(B)}"),
    # tags and phrases
    ("<answer>17</answer>", "17"),
    (r"<answer>the value is \boxed{9}</answer>", "9"),
    ("The final answer is $x = 2$. I hope it is correct.", "x = 2"),
    ("**Final Answer**\n\n42 dollars\n\nThat is all.", "42 dollars"),
    ("Final answer: 3.5.", "3.5"),
    ("So the answer is 12%. Since that is what we found.", "12%"),
    ("The answer is \\(\\frac{3}{4}\\) cups.", r"\frac{3}{4}"),
    ("Answer: x = 2", "x = 2"),
    ("We get 7 cm.\nThe answer is 7 cm", "7 cm"),
    ("Final Answer: The largest $n$ is 34.", "34"),
    ("We found $x$. Answer: $12$ and $13$", "12, 13"),
    # other languages
    ("La réponse est Au.", "Au"),
    ("Die Antwort ist 7.", "7"),
    ("所以答案是 5", "5"),
    # chat-template tokens after the answer
    ("So the answer is 4. <|im_end|>\n<|im_start|>user\nThe answer is 5", "4"),
    # GSM8K
    ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 1,234", "1,234"),
    ("She makes 9 * 2 = $18 every day.\nA: 18", "18"),
    # multiple choice
    ("The answer is (B).", "B"),
    ("Answer: C", "C"),
    ("Therefore the correct option is **D**.", "D"),
    ("After weighing the options:\n(A)", "A"),
])
def test_extracts_the_final_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", [
    "",
    "I am not sure how to solve this; maybe we should think about 5 and 6 more carefully tomorrow.",
    r"the answer would be in \boxed{unclosed",
    "<think>I think the answer is \\boxed{5} but let me check",  # cut off while thinking
    "no idea",
    "Answer $\n 9 \n$",  # inline math does not cross lines: the marked answer is unreadable
])
def test_no_answer(text: str) -> None:
    assert extract_answer(text) is None


def test_only_the_part_after_the_reasoning_counts() -> None:
    assert extract_answer(r"<think>maybe \boxed{5}</think> The answer is \boxed{7}.") == "7"
    assert extract_answer(r"<think>the answer is \boxed{5}</think>Sorry, I cannot decide.") is None
    # DeepSeek-R1 templates put <think> in the prompt: only the closing tag is in the response
    assert extract_answer("hmm, 5? no.\n</think>\n\n42") == "42"
    sky = ("<|begin_of_thought|>\nthe answer is \\boxed{5}\n<|end_of_thought|>\n\n<|begin_of_solution|>\n"
           "Thus it is \\( \\boxed{204} \\).<|end_of_solution|>")
    assert extract_answer(sky) == "204"


def test_split_reasoning() -> None:
    assert split_reasoning("<think> a b </think>\nfinal") == ("a b", "final")
    assert split_reasoning("plain text") == (None, "plain text")
    assert split_reasoning("<think>never closed") == ("never closed", "")
    assert split_reasoning("x</think>y") == ("x", "y")
    sky = "<|begin_of_thought|>r<|end_of_thought|><|begin_of_solution|>s<|end_of_solution|>"
    assert split_reasoning(sky) == ("r", "s")


def test_last_boxed_skips_escaped_braces() -> None:
    assert last_boxed(r"\boxed{\{x \mid x > 0\}}") == r"\{x \mid x > 0\}"
    assert last_boxed("no box") is None


def test_clean_answer() -> None:
    assert clean_answer(" $\\frac{1}{2}$. ") == r"\frac{1}{2}"
    assert clean_answer("**(C)**") == "C"
    assert clean_answer("5!") == "5!"
    assert clean_answer(r"\boxed{4}") == "4"


def test_long_adversarial_text_is_fast() -> None:
    nasty = "\\boxed{" * 20_000 + "answer is " * 20_000 + "{" * 50_000
    started = time.perf_counter()
    extract_answer(nasty)
    assert time.perf_counter() - started < 2.0


def test_real_sky_t1_traces(shared_data) -> None:
    path = shared_data / "long_cot_traces_skythought" / "sky_t1_math_correct_5k_14b_aime24.jsonl"
    import ast

    agree = total = truncated = 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        responses, preds = (v if isinstance(v, list) else ast.literal_eval(v) for v in (row["code"], row["pred"]))
        for resp, pred in zip(responses, preds, strict=True):
            if "<|end_of_thought|>" not in resp:  # cut off while thinking: no answer, whatever its last number
                truncated += 1
                assert extract_answer(resp) is None
                continue
            total += 1
            agree += extract_answer(resp) == pred
    assert total >= 5 and truncated >= 5
    assert agree == total
