"""Truncation: the model stopped before it finished."""

from __future__ import annotations

import re

from pydantic import Field

from assay.record import Verdict
from assay.rules.base import Rule, rule
from assay.rules.trace import Trace

_FENCE_LINE = re.compile(r"^[ \t]*```", re.M)


@rule("truncation")
class Truncation(Rule):
    """Fails responses cut off before the end: finish_reason `length`, a reasoning or solution block
    that never closes, an unclosed code fence, or usage at the token limit."""

    finish_reasons: list[str] = Field(default_factory=lambda: ["length", "max_tokens"],
                                      description="finish_reason values that mean the response was cut off")
    max_completion_tokens: int | None = Field(None, ge=1, description="also fail when usage.completion_tokens "
                                              "reaches this (the max_tokens the teacher was given)")
    check_code_fences: bool = Field(True, description="an odd number of ``` fences in the answer means it was cut")

    def evaluate(self, trace: Trace) -> Verdict:
        st = trace.structure
        resp = trace.response
        fails: list[tuple[str, str]] = []
        finish = resp.get("finish_reason")
        if finish in self.finish_reasons:
            fails.append(("finish_length", f"finish_reason is {finish!r}"))
        if self.max_completion_tokens is not None:
            used = (resp.get("usage") or {}).get("completion_tokens")
            if isinstance(used, (int, float)) and used >= self.max_completion_tokens:
                fails.append(("token_limit", f"{int(used)} completion tokens (limit {self.max_completion_tokens})"))
        if not st.reasoning_closed and st.pair is not None:
            fails.append(("unclosed_reasoning", f"{st.pair[0]} never closed by {st.pair[1]}"))
        if st.solution_pair is not None and st.solution_opens > st.solution_closes:
            fails.append(("unclosed_solution", f"{st.solution_pair[0]} never closed by {st.solution_pair[1]}"))
        if self.check_code_fences and st.answer and "```" in st.answer:
            fences = len(_FENCE_LINE.findall(st.answer))
            if fences % 2:
                fails.append(("unclosed_code_fence", f"{fences} code fences: the last block is never closed"))
        if fails:
            return Verdict(False, 0.0, "; ".join(r for _, r in fails), fails[0][0])
        return Verdict(True, 1.0, f"complete (finish_reason {finish!r})" if finish else "complete")
