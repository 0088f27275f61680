"""Small, safe expressions over a record, for `when:` on any stage and for `select` rules.

    labels.difficulty >= 0.3 and labels.language == "en"
    domain in ["math", "science"] and not verifiable
    len(responses) > 0 and checks.dedup_exact.passed

Names read record fields; dots read nested keys; a missing key reads as null, and any comparison
with null is false (so a rule over a label that was never computed keeps nothing rather than
crashing). Only literals, names, `.`/`[...]`, comparisons, `and`/`or`/`not`, arithmetic and a few
functions are allowed: no attribute of a Python object is ever reachable.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from assay.errors import ConfigError
from assay.record import has_reference, prompt_text

Fn = Callable[[dict[str, Any]], Any]

_MISSING = None

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": lambda x: 0 if x is None else len(x),
    "lower": lambda x: None if x is None else str(x).lower(),
    "str": lambda x: "" if x is None else str(x),
    "abs": lambda x: None if x is None else abs(x),
    "min": min,
    "max": max,
    "round": round,
    "contains": lambda hay, needle: hay is not None and needle in hay,
}

# Names that are computed from the record rather than read from it.
DERIVED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "verifiable": has_reference,
    "has_reference": has_reference,
    "prompt_text": prompt_text,
    "n_responses": lambda r: len(r.get("responses") or ()),
}

_CMP = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: b is not None and a in b, ast.NotIn: lambda a, b: b is None or a not in b,
    ast.Is: operator.is_, ast.IsNot: operator.is_not,
}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv}


def _get(obj: Any, key: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    if isinstance(obj, (list, tuple, str)) and isinstance(key, int):
        return obj[key] if -len(obj) <= key < len(obj) else None
    return None


class _Compiler:
    def __init__(self, source: str):
        self.source = source

    def fail(self, node: ast.AST, what: str) -> ConfigError:
        return ConfigError(f"expression {self.source!r}: {what} is not allowed (use fields, literals, "
                           "comparisons, and/or/not, and len/lower/str/abs/min/max/round/contains)")

    def compile(self, node: ast.AST) -> Fn:
        method = getattr(self, f"c_{type(node).__name__}", None)
        if method is None:
            raise self.fail(node, type(node).__name__)
        return method(node)

    def c_Expression(self, node: ast.Expression) -> Fn:
        return self.compile(node.body)

    def c_Constant(self, node: ast.Constant) -> Fn:
        value = node.value
        return lambda r: value

    def c_List(self, node: ast.List | ast.Tuple | ast.Set) -> Fn:
        items = [self.compile(e) for e in node.elts]
        return lambda r: [f(r) for f in items]

    c_Tuple = c_List
    c_Set = c_List

    def c_Name(self, node: ast.Name) -> Fn:
        name = node.id
        if name in ("true", "True"):
            return lambda r: True
        if name in ("false", "False"):
            return lambda r: False
        if name in ("null", "None"):
            return lambda r: None
        if name in DERIVED:
            fn = DERIVED[name]
            return lambda r: r[name] if name in r else fn(r)
        return lambda r: r.get(name)

    def c_Attribute(self, node: ast.Attribute) -> Fn:
        if node.attr.startswith("__"):
            raise self.fail(node, f"'{node.attr}'")
        base, attr = self.compile(node.value), node.attr
        return lambda r: _get(base(r), attr)

    def c_Subscript(self, node: ast.Subscript) -> Fn:
        base, key = self.compile(node.value), self.compile(node.slice)
        return lambda r: _get(base(r), key(r))

    def c_BoolOp(self, node: ast.BoolOp) -> Fn:
        parts = [self.compile(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)

    def c_UnaryOp(self, node: ast.UnaryOp) -> Fn:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda r: not operand(r)
        if isinstance(node.op, ast.USub):
            return lambda r: None if (v := operand(r)) is None else -v
        raise self.fail(node, "this unary operator")

    def c_BinOp(self, node: ast.BinOp) -> Fn:
        op = _BIN.get(type(node.op))
        if op is None:
            raise self.fail(node, "this operator")
        left, right = self.compile(node.left), self.compile(node.right)

        def run(r: dict[str, Any]) -> Any:
            a, b = left(r), right(r)
            if a is None or b is None:
                return None
            try:
                return op(a, b)
            except (TypeError, ZeroDivisionError):
                return None

        return run

    def c_Compare(self, node: ast.Compare) -> Fn:
        ops = [_CMP[type(o)] for o in node.ops if type(o) in _CMP]
        if len(ops) != len(node.ops):
            raise self.fail(node, "this comparison")
        operands = [self.compile(node.left)] + [self.compile(c) for c in node.comparators]
        null_ok = {operator.eq, operator.ne, operator.is_, operator.is_not}

        def run(r: dict[str, Any]) -> bool:
            values = [f(r) for f in operands]
            for op, a, b in zip(ops, values, values[1:], strict=False):
                if op not in null_ok and (a is None or b is None) and op not in (_CMP[ast.In], _CMP[ast.NotIn]):
                    return False
                try:
                    if not op(a, b):
                        return False
                except TypeError:
                    return False
            return True

        return run

    def c_Call(self, node: ast.Call) -> Fn:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise self.fail(node, "this function call")
        fn = FUNCTIONS[node.func.id]
        args = [self.compile(a) for a in node.args]

        def run(r: dict[str, Any]) -> Any:
            try:
                return fn(*(a(r) for a in args))
            except (TypeError, ValueError):
                return None

        return run

    def c_IfExp(self, node: ast.IfExp) -> Fn:
        test, body, orelse = self.compile(node.test), self.compile(node.body), self.compile(node.orelse)
        return lambda r: body(r) if test(r) else orelse(r)


@lru_cache(maxsize=256)
def compile_expr(source: str) -> Fn:
    """Compile an expression once; the result evaluates it against a record (a dict)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"expression {source!r} is not valid: {exc.msg}") from None
    return _Compiler(source).compile(tree)


def evaluate(source: str, record: dict[str, Any]) -> Any:
    return compile_expr(source)(record)
