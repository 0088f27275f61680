"""Format: exactly one well-formed reasoning block and a non-empty answer after it; for math a
final answer the verifier can extract, for code a fenced code block in the answer."""

from __future__ import annotations

import re

from pydantic import Field

from assay.record import Verdict
from assay.rules.base import Rule, rule
from assay.rules.trace import Trace

_FENCED_CODE = re.compile(r"(?:^|\n)[ \t]*(```|~~~)[^\n]*\n.*?\n[ \t]*\1", re.S)


def has_code_block(text: str) -> bool:
    return _FENCED_CODE.search(text) is not None


@rule("format")
class Format(Rule):
    """Fails responses without exactly one well-formed reasoning block (markers from the stage's
    `reasoning_markers`), with an empty answer after it, a math answer the verifier cannot
    extract, or code answers without a fenced code block."""

    require_reasoning: bool = Field(True, description="a response must carry reasoning (inline block or "
                                    "`reasoning` field)")
    allow_missing_open: bool = Field(True, description="accept `reasoning</think>answer` without the opening "
                                     "marker (R1 chat templates put `<think>` in the prompt)")
    allow_text_before: bool = Field(False, description="accept text before the opening marker")
    min_reasoning_chars: int = Field(1, ge=0, description="fewest non-space characters in the reasoning")
    min_answer_chars: int = Field(1, ge=0, description="fewest non-space characters in the answer")
    answer_domains: list[str] = Field(default_factory=lambda: ["math"], description="domains whose answer must "
                                      "hold a final answer the math verifier can extract (\\boxed{}, 'answer is')")
    code_domains: list[str] = Field(default_factory=lambda: ["code"], description="domains whose answer must hold "
                                    "a fenced code block")

    def evaluate(self, trace: Trace) -> Verdict:
        st = trace.structure
        fails: list[tuple[str, str]] = []
        if st.shape == "inline" and st.pair is not None:
            open_, close = st.pair
            if st.opens > 1 or st.closes > 1:
                fails.append(("several_reasoning_blocks", f"{st.opens}x {open_} and {st.closes}x {close}: "
                                                          "one reasoning block expected"))
            elif st.open_after_close:
                fails.append(("misordered_markers", f"{open_} comes after {close}"))
            elif st.closes and not st.opens and not self.allow_missing_open:
                fails.append(("missing_open_marker", f"{close} without {open_}"))
            elif not st.closes:
                fails.append(("unclosed_reasoning", f"{open_} is never closed by {close}"))
            if st.prefix.strip() and not self.allow_text_before:
                fails.append(("text_before_reasoning", f"text before {open_}: '{st.prefix.strip()[:40]}'"))
            if st.field_and_inline and trace.response["reasoning"].strip() not in (st.reasoning or ""):
                fails.append(("two_reasonings", "the `reasoning` field differs from the reasoning block in the text"))
        elif st.shape == "none" and self.require_reasoning:
            fails.append(("no_reasoning", "no reasoning block and no `reasoning` field"))
        if st.reasoning is not None and len(st.reasoning.strip()) < self.min_reasoning_chars and st.reasoning_closed:
            fails.append(("empty_reasoning", "the reasoning block is empty"))
        if st.solution_pair is not None:
            s_open, s_close = st.solution_pair
            if st.solution_opens != 1 or st.solution_closes > 1:
                fails.append(("malformed_solution", f"{st.solution_opens}x {s_open} and {st.solution_closes}x "
                                                    f"{s_close}: one solution block expected"))
        answer = st.answer.strip()
        if st.reasoning_closed and len(answer) < self.min_answer_chars:
            fails.append(("empty_answer", "nothing after the reasoning"))
        elif answer:
            if trace.domain in self.answer_domains:
                from assay.verify.extract import extract_answer

                if trace.response.get("answer") in (None, "") and extract_answer(answer) is None:
                    fails.append(("no_final_answer", "no final answer the verifier can extract "
                                                     "(\\boxed{...}, 'the answer is ...')"))
            if trace.domain in self.code_domains and not has_code_block(answer):
                fails.append(("no_code_block", "no fenced code block (```) in the answer"))
        if fails:
            return Verdict(False, 0.0, "; ".join(r for _, r in fails), fails[0][0])
        return Verdict(True, 1.0, "well-formed")
