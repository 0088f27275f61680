"""How code-verify decides that an output is right, like an online judge's default checker.

stdout: whitespace-separated tokens, compared one by one; two tokens that are both numbers and
not both integers are equal within the tolerance (absolute or relative); extra or missing output
is wrong. Return values of function tests: equal as Python values, floats within the tolerance,
and APPS's habit of wrapping the expected value in a one-element list is accepted.
"""

from __future__ import annotations

import math
import re
from typing import Any

_INT = re.compile(r"[+-]?\d+\Z")
_NUM = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)\Z", re.IGNORECASE)


def _number(token: str) -> float | None:
    return float(token) if _NUM.match(token) else None


def close(a: float, b: float, tol: float) -> bool:
    """a and b differ by at most tol, absolutely or relative to the expected value b."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    diff = abs(a - b)
    return diff <= tol or diff <= tol * abs(b)


def tokens_equal(got: str, expected: str, tol: float) -> bool:
    if got == expected:
        return True
    g, e = got.split(), expected.split()
    if g == e:
        return True
    if len(g) != len(e):
        return False
    for a, b in zip(g, e, strict=True):
        if a == b:
            continue
        if _INT.match(a) and _INT.match(b):  # integers are exact: "01" is not "1"
            return False
        x, y = _number(a), _number(b)
        if x is None or y is None or not close(x, y, tol):
            return False
    return True


def first_difference(got: str, expected: str) -> str:
    """A short note on where the output first differs (for the check's reason)."""
    g, e = got.split(), expected.split()
    for i, (a, b) in enumerate(zip(g, e, strict=False)):
        if a != b:
            return f"token {i + 1}: expected {_clip(b)!r}, got {_clip(a)!r}"
    if len(g) < len(e):
        return f"output ends after {len(g)} of {len(e)} tokens"
    return f"{len(g) - len(e)} extra tokens after the expected output"


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n] + "..."


def values_equal(got: Any, expected: Any, tol: float) -> bool:
    """Python equality, with floats within tol and sequences compared element by element."""
    if isinstance(got, bool) or isinstance(expected, bool):
        return got == expected
    if isinstance(got, (int, float)) and isinstance(expected, (int, float)):
        if isinstance(got, int) and isinstance(expected, int):
            return got == expected
        return close(float(got), float(expected), tol)
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(values_equal(a, b, tol) for a, b in zip(got, expected, strict=True))
    if isinstance(got, dict) and isinstance(expected, dict):
        if set(got) != set(expected):
            return False
        return all(values_equal(got[k], expected[k], tol) for k in got)
    if isinstance(got, dict) and "__py__" in got:  # a value that had no JSON form never matches
        return False
    return bool(got == expected)


def return_value_matches(got: Any, expected: Any, tol: float) -> bool:
    """The APPS / CodeRL rule: the value, or the value wrapped in a one-element list, equals the expected."""
    return values_equal(got, expected, tol) or values_equal([got], expected, tol)
