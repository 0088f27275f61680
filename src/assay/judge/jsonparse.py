"""Reading a JSON object out of what a model wrote: fenced blocks, prose around it, trailing text,
a `<think>` block before it, single quotes or Python literals, trailing commas."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from assay.teacher.completion import split_reasoning
from assay.teacher.llm import ParseError

_FENCE = re.compile(r"```(?:json|JSON|javascript|js)?\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_DECODER = json.JSONDecoder()
MAX_SCAN = 200  # candidate '{' positions tried: output is model text, possibly adversarial
MAX_CHARS = 50_000  # only the end of a long output is searched


def extract_json(text: str) -> dict[str, Any]:
    """The last JSON object in `text` (the answer usually comes after any reasoning or example);
    raise ParseError when there is none."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty output")
    _, final = split_reasoning(text)
    for source in (final, text) if final != text else (text,):
        found = _from_fences(source) or _scan(source)
        if found is not None:
            return found
    salvaged = _salvage(text[-MAX_CHARS:])
    if salvaged:
        return salvaged
    snippet = " ".join(text.split())[:120]
    raise ParseError(f"no JSON object in the output: {snippet!r}")


_PAIR = re.compile(r'["\']([A-Za-z_][\w ]{0,40})["\']\s*:\s*(true|false|null|-?\d+(?:\.\d+)?|"(?:[^"\\]|\\.)*"?)',
                   re.IGNORECASE)


def _salvage(text: str) -> dict[str, Any]:
    """Key/value pairs of an object cut off before its end (max_tokens ran out mid-rationale)."""
    start = text.find("{")
    if start < 0:
        return {}
    out: dict[str, Any] = {}
    for key, raw in _PAIR.findall(text[start:]):
        low = raw.lower()
        if low in ("true", "false", "null"):
            out[key] = {"true": True, "false": False, "null": None}[low]
        elif raw.startswith('"'):
            out[key] = raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:]
        else:
            out[key] = float(raw) if "." in raw else int(raw)
    return out


def _from_fences(text: str) -> dict[str, Any] | None:
    for block in reversed(_FENCE.findall(text)):
        obj = _loads(block.strip())
        if obj is None:
            obj = _scan(block)
        if obj is not None:
            return obj
    return None


def _scan(text: str) -> dict[str, Any] | None:
    """The last top-level object: try each '{' from the end backwards, let an object that encloses
    the current one replace it (`{"scores": {...}}`), and stop at an earlier, separate object."""
    text = text[-MAX_CHARS:]
    starts = [m.start() for m in re.finditer(r"\{", text)][-MAX_SCAN:]
    best: dict[str, Any] | None = None
    best_end = -1
    for start in reversed(starts):
        obj, end = _decode_at(text, start)
        if obj is None:
            continue
        if best is None or end >= best_end:
            best, best_end = obj, end
        else:
            break
    return best


def _decode_at(text: str, start: int) -> tuple[dict[str, Any] | None, int]:
    try:
        obj, end = _DECODER.raw_decode(text, start)
        return (obj, end) if isinstance(obj, dict) else (None, -1)
    except json.JSONDecodeError:
        pass
    except RecursionError:  # absurdly deep nesting: not an answer
        return None, -1
    # a forgiving second try on the balanced {...} span: trailing commas, single quotes, True/False
    end = _balanced_end(text, start)
    if end < 0:
        return None, -1
    obj = _loads(text[start:end])
    return (obj, end) if obj is not None else (None, -1)


def _balanced_end(text: str, start: int) -> int:
    depth = 0
    quote: str | None = None
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _loads(block: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(block)
    except RecursionError:
        return None
    except json.JSONDecodeError:
        fixed = _TRAILING_COMMA.sub(r"\1", block)
        try:
            obj = json.loads(fixed)
        except RecursionError:
            return None
        except json.JSONDecodeError:
            try:
                obj = ast.literal_eval(re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False",
                                                                        re.sub(r"\bnull\b", "None", fixed))))
            except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                return None
    return obj if isinstance(obj, dict) else None


# ---- reading fields ---------------------------------------------------------------------------

_TRUE = {"true", "yes", "y", "correct", "pass", "passed", "safe", "agree", "agrees", "consistent", "1", "right",
         "valid", "accept", "accepted"}
_FALSE = {"false", "no", "n", "incorrect", "wrong", "fail", "failed", "unsafe", "disagree", "disagrees",
          "inconsistent", "0", "invalid", "reject", "rejected"}


def as_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ParseError(f"'{field}' is not a yes/no value: {value!r}")


def as_number(value: Any, field: str, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise ParseError(f"'{field}' is a boolean, not a number")
    if isinstance(value, str):
        m = re.match(r"\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+(?:\.\d+)?)?\s*$", value)
        if not m:
            raise ParseError(f"'{field}' is not a number: {value!r}")
        value = float(m.group(1))
    if not isinstance(value, (int, float)) or value != value:
        raise ParseError(f"'{field}' is not a number: {value!r}")
    if not lo <= value <= hi:
        raise ParseError(f"'{field}' = {value} is outside {lo:g}..{hi:g}")
    return float(value)


def field_of(data: dict[str, Any], *names: str) -> Any:
    """The first of `names` present (case-insensitive keys); None when none is."""
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None
