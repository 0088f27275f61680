"""Helpers shared by the public-format adapters: typed field access, JSON-string fields,
`\\boxed{}` answers, `<think>` splitting, test-case building and prompt text for code problems.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, Source

# Words that mark a reference answer as absent rather than an answer (NuminaMath uses the first two).
NO_ANSWER = frozenset({"proof", "notfound", "not found", "none", "n/a", ""})

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Adapter(Source):
    """Base of the public-format adapters: a row of an unexpected shape becomes a SourceError.

    Subclasses implement `map`; the named checks (`need`, `opt`, ...) give the precise message,
    and anything they miss still ends as a SourceError (invalid/ output) instead of a crash.
    """

    def convert(self, row: dict[str, Any], at: RowAt) -> Record:
        try:
            return self.map(row, at)
        except SourceError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as exc:
            raise SourceError(f"row cannot be mapped ({type(exc).__name__}: {exc})") from None

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        raise NotImplementedError


class CodeAdapter(Adapter):
    """Code adapters share the instruction that follows the problem statement."""

    instruction: str | None = Field(None, description="text after the problem statement (default: ask for "
                                    "a Python 3 solution in one ```python block, stdin/stdout or function style)")

    def code_prompt(self, statement: str, starter_code: str | None = None, stdin: bool = True,
                    fn_name: str | None = None) -> str:
        statement = statement.strip()
        if self.instruction is not None:
            tail = self.instruction
        elif starter_code and starter_code.strip():
            tail = ("Complete the following starter code and return the complete solution in one "
                    "```python code block.")
        elif stdin:
            tail = ("Write a Python 3 program that reads the input from standard input and writes the answer "
                    "to standard output. Return the program in one ```python code block.")
        elif fn_name:
            tail = (f"Write a Python 3 function named `{fn_name}` that solves the task and return it in one "
                    "```python code block.")
        else:
            tail = "Write the solution in Python 3 and return it in one ```python code block."
        text = f"{statement}\n\n{tail}" if tail else statement
        if starter_code and starter_code.strip():
            text += f"\n\n```python\n{starter_code.rstrip()}\n```"
        return text


# ---- field access ---------------------------------------------------------------------------------


def opt(row: dict[str, Any], key: str, kinds: type | tuple[type, ...] = str) -> Any:
    """row[key] when present and not None, else None; a SourceError when it has the wrong type."""
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise SourceError(f"expected {_kind_names(kinds)}, got bool", key)
    if not isinstance(value, kinds):
        raise SourceError(f"expected {_kind_names(kinds)}, got {type(value).__name__}", key)
    return value


def opt_text(row: dict[str, Any], key: str) -> str | None:
    """A text field; numbers are accepted as their text form, blank text counts as absent."""
    value = opt(row, key, (str, int, float))
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


ID_FIELDS = ("task_id", "problem_id", "question_id", "uuid", "id")


def row_key(row: dict[str, Any], *fields: str) -> str | int | None:
    """The row's own id: the first of `fields`, then of ID_FIELDS, that holds a non-blank string or an int.

    None (the caller then uses the row index) when the row has none.
    """
    for key in (*fields, *ID_FIELDS):
        value = row.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    return kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)


def json_field(row: dict[str, Any], key: str, kinds: type | tuple[type, ...], *, required: bool = False) -> Any:
    """A field that some copies store as a JSON string (APPS `input_output`, `solutions`) and others parsed."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SourceError("is missing", key)
        return None
    if isinstance(value, str) and kinds is not str:
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise SourceError(f"is not valid JSON ({str(exc)[:120]})", key) from None
    if not isinstance(value, kinds):
        raise SourceError(f"expected {_kind_names(kinds)}, got {type(value).__name__}", key)
    return value


def text_list(value: Any, key: str) -> list[str]:
    """A list of strings (None counts as empty); anything else is a SourceError naming `key`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(f"expected a list, got {type(value).__name__}", key)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise SourceError(f"expected a string, got {type(item).__name__}", f"{key}[{i}]")
    return value


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """The dict without None, blank-string, empty-list and empty-dict values."""
    return {k: v for k, v in obj.items()
            if v is not None and v != {} and v != [] and not (isinstance(v, str) and not v.strip())}


def answer_or_none(value: Any) -> str | None:
    """A reference answer as text, or None when the source marks it absent ('proof', 'notfound', '')."""
    if value is None or isinstance(value, bool):
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    return None if text.lower() in NO_ANSWER else text


def as_int(value: Any) -> int | None:
    """An int from 5, 5.0, '5' or 'Level 5'; None when there is no number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        m = re.search(r"-?\d+", value)
        return int(m.group()) if m else None
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# ---- math answers and reasoning ---------------------------------------------------------------------


_BOXED = re.compile(r"\\(?:boxed|fbox)(?:\s*\{|\s+([^\s{}$]+))")


def boxed_answer(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`, `\\boxed 5`) with balanced braces, else None."""
    found = None
    for m in _BOXED.finditer(text):
        if m.group(1) is not None:
            found = m.group(1).rstrip(".,;") or None
            continue
        depth, i = 1, m.end()
        while i < len(text) and depth:
            c = text[i]
            if c == "\\":
                i += 2
                continue
            depth += c == "{"
            depth -= c == "}"
            i += 1
        if depth == 0:
            found = text[m.end():i - 1].strip()
    return found or None


_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def split_think(text: str) -> tuple[str | None, str]:
    """(reasoning, final text) of a `<think>...</think>` generation.

    Without `</think>` the generation either has no reasoning part (no `<think>` either) or was
    cut off inside it (all of it is reasoning, the final text is empty). A missing `<think>`
    before `</think>` is common (chat templates put it in the prompt) and is tolerated.
    """
    close = _THINK_CLOSE.search(text)
    opened = _THINK_OPEN.search(text)
    if close is None:
        if opened is None:
            return None, text
        return text[opened.end():].strip() or None, ""
    start = opened.end() if opened is not None and opened.start() < close.start() else 0
    reasoning = text[start:close.start()].strip()
    return reasoning or None, text[close.end():].strip()


# ---- code tests ---------------------------------------------------------------------------------------


def _io_text(value: Any, key: str) -> str:
    # APPS stores a few stdin inputs / outputs as lists of lines; its own harness joins them with newlines.
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise SourceError(f"expected a string, got {type(value).__name__}", key)


def stdin_cases(inputs: Any, outputs: Any, key: str) -> list[dict[str, str]]:
    """[{input, output}] from parallel lists; a length mismatch or odd item is a SourceError naming `key`."""
    if inputs is None and outputs is None:
        return []
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise SourceError("expected lists of inputs and outputs", key)
    if len(inputs) != len(outputs):
        raise SourceError(f"has {len(inputs)} inputs but {len(outputs)} outputs", key)
    return [{"input": _io_text(i, f"{key}.inputs[{n}]"), "output": _io_text(o, f"{key}.outputs[{n}]")}
            for n, (i, o) in enumerate(zip(inputs, outputs, strict=True))]


def io_pairs(value: Any, key: str) -> list[dict[str, str]]:
    """Test cases given as `{input: [...], output: [...]}` (CodeContests) or `[{input, output}]` (Codeforces)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return stdin_cases(value.get("input", []), value.get("output", []), key)
    if isinstance(value, list):
        cases = []
        for n, item in enumerate(value):
            if not isinstance(item, dict):
                raise SourceError(f"expected an object with 'input' and 'output', got {type(item).__name__}",
                                  f"{key}[{n}]")
            cases.append({"input": _io_text(item.get("input"), f"{key}[{n}].input"),
                          "output": _io_text(item.get("output"), f"{key}[{n}].output")})
        return cases
    raise SourceError(f"expected test cases, got {type(value).__name__}", key)


def normalise_code(code: str) -> str:
    """Source code with Unix line endings (MBPP ships CRLF)."""
    return code.replace("\r\n", "\n").replace("\r", "\n")


def fenced(code: str, language: str = "python") -> str:
    return f"```{language}\n{code.rstrip()}\n```"


def letter(index: int) -> str:
    if not 0 <= index < len(LETTERS):
        raise ValueError(f"option index {index} out of range")
    return LETTERS[index]
