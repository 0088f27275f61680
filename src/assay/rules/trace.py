"""A response as the rules see it: reasoning and answer split once, shared by every rule.

Two shapes of response are understood:

- inline: `text` holds the reasoning block (`<think>...</think>answer`, Sky-T1's
  `<|begin_of_thought|>...<|end_of_thought|><|begin_of_solution|>...<|end_of_solution|>`);
  a text that only closes the block (`...</think>answer`) is read as reasoning from the start,
  since R1 chat templates open `<think>` in the prompt;
- field: `reasoning` holds the reasoning (an API's `reasoning_content`) and `text` only the answer.

When `text` carries markers they decide (the `reasoning` field then usually repeats the block).
Everything here is a handful of `str.find`/`str.count` calls: linear and cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assay.record import Record, Response

Pair = tuple[str, str]

REASONING_MARKERS: list[Pair] = [("<think>", "</think>"), ("<|begin_of_thought|>", "<|end_of_thought|>")]
SOLUTION_MARKERS: list[Pair] = [("<|begin_of_solution|>", "<|end_of_solution|>")]


@dataclass(slots=True)
class Structure:
    """What the markers say about one response."""

    shape: str  # "inline" | "field" | "none"
    reasoning: str | None  # None when the response has no reasoning at all
    answer: str  # the part shown to the user, solution markers removed
    pair: Pair | None = None  # the reasoning markers found in `text`
    opens: int = 0  # occurrences of the open / close marker in `text`
    closes: int = 0
    open_after_close: bool = False
    prefix: str = ""  # text before the open marker
    reasoning_closed: bool = True
    solution_opens: int = 0
    solution_closes: int = 0
    solution_pair: Pair | None = None
    field_and_inline: bool = False  # reasoning both in the `reasoning` field and inline in `text`


def _unwrap_solution(answer: str, pairs: list[Pair], st: Structure) -> str:
    for open_, close in pairs:
        n_open, n_close = answer.count(open_), answer.count(close)
        if not n_open and not n_close:
            continue
        st.solution_pair, st.solution_opens, st.solution_closes = (open_, close), n_open, n_close
        start = answer.find(open_)
        begin = start + len(open_) if start >= 0 else 0
        end = answer.find(close, begin)
        return answer[begin: end if end >= 0 else len(answer)]
    return answer


def parse_structure(text: str, field_reasoning: str | None, reasoning_markers: list[Pair],
                    solution_markers: list[Pair]) -> Structure:
    """Split a response into reasoning and answer and count its markers."""
    for open_, close in reasoning_markers:
        opens, closes = text.count(open_), text.count(close)
        if not opens and not closes:
            continue
        st = Structure("inline", None, "", pair=(open_, close), opens=opens, closes=closes)
        start = text.find(open_)
        if closes:
            end = text.rfind(close)  # after the last close: nothing inside a block reads as the answer
            first_close = text.find(close)
            st.open_after_close = start > first_close
            begin = start + len(open_) if 0 <= start < end else 0
            st.prefix = text[:start] if 0 <= start < end else ""
            st.reasoning = text[begin:end]
            answer = text[end + len(close):]
        else:
            st.reasoning = text[start + len(open_):]
            st.prefix = text[:start]
            st.reasoning_closed = False
            answer = ""
        st.answer = _unwrap_solution(answer, solution_markers, st)
        st.field_and_inline = bool(field_reasoning and field_reasoning.strip())
        return st
    if field_reasoning is not None and field_reasoning.strip():
        st = Structure("field", field_reasoning, "")
        st.answer = _unwrap_solution(text, solution_markers, st)
        return st
    st = Structure("none", None, "")
    st.answer = _unwrap_solution(text, solution_markers, st)
    return st


class Trace:
    """One response of one record, with the parse and the derived views computed at most once."""

    __slots__ = ("_cache", "_record_cache", "domain", "record", "response", "structure", "text")

    def __init__(self, record: Record, response: Response, reasoning_markers: list[Pair],
                 solution_markers: list[Pair], record_cache: dict[str, Any] | None = None):
        self.record = record
        self.response = response
        self.domain: str = record.get("domain") or ""
        self.text: str = response.get("text") or ""
        field = response.get("reasoning")
        self.structure = parse_structure(self.text, field if isinstance(field, str) else None,
                                         reasoning_markers, solution_markers)
        self._cache: dict[str, Any] = {}
        self._record_cache: dict[str, Any] = {} if record_cache is None else record_cache

    @property
    def reasoning(self) -> str | None:
        return self.structure.reasoning

    @property
    def answer(self) -> str:
        return self.structure.answer

    @property
    def full_text(self) -> str:
        """Everything the model wrote: the reasoning (also when it came as a field) and the text."""
        st = self.structure
        if st.shape == "field" and st.reasoning:
            return st.reasoning + "\n\n" + self.text
        return self.text

    def cached(self, key: str, make: Any) -> Any:
        """Memoise a derived value (word lists, token counts) shared between rules."""
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = make()
            return value

    def record_cached(self, key: str, make: Any) -> Any:
        """Memoise a value of the record (the prompt's language), shared by its responses."""
        try:
            return self._record_cache[key]
        except KeyError:
            value = self._record_cache[key] = make()
            return value

    @property
    def words(self) -> list[str]:
        return self.cached("words", self.full_text.split)
