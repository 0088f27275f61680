"""Expressions for `when:`, `filter` and `select`: what they read, and what they refuse."""

from __future__ import annotations

import pytest

from assay.errors import ConfigError
from assay.expr import evaluate

REC = {
    "id": "x/1", "domain": "math", "source": "gsm8k", "prompt": "What is 2+2?",
    "reference": {"answer": "4"},
    "labels": {"difficulty": 0.4, "language": "en", "tags": ["easy", "arith"]},
    "responses": [{"text": "4", "checks": {"math_verify": {"passed": True, "score": 1.0}}}],
    "checks": {"collect": {"passed": True, "score": 12}},
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('labels.difficulty >= 0.3 and labels.language == "en"', True),
        ("labels.difficulty > 0.5", False),
        ("labels.missing >= 0.3", False),  # null never orders
        ("labels.missing == null", True),
        ("not labels.missing", True),
        ('domain in ["math", "science"]', True),
        ('"easy" in labels.tags', True),
        ('"hard" not in labels.tags', True),
        ('"hard" in labels.nothing', False),
        ("len(responses) == 1 and responses[0].checks.math_verify.passed", True),
        ("responses[5].text == null", True),
        ("verifiable", True),
        ("n_responses * 2 == 2", True),
        ("checks.collect.score / 4 == 3", True),
        ("labels.difficulty / 0 == null", True),
        ('lower(source) == "gsm8k" and contains(prompt, "2+2")', True),
        ("0.3 <= labels.difficulty < 0.5", True),
        ("labels.difficulty if domain == 'math' else 0", 0.4),
        ("-labels.difficulty < 0", True),
        ("True and not False", True),
    ],
)
def test_expressions(expr: str, expected: object) -> None:
    assert evaluate(expr, REC) == expected


@pytest.mark.parametrize(
    "expr",
    ["__import__('os').system('true')", "labels.__class__.__mro__", "open('/etc/passwd')",
     "[x for x in responses]", "lambda: 1", "a := 1", "labels.difficulty ** 2"],
)
def test_unsafe_or_unsupported_expressions_are_refused(expr: str) -> None:
    with pytest.raises(ConfigError):
        evaluate(expr, REC)


def test_attribute_access_never_reaches_python_objects() -> None:
    # names read dict keys only: a method name is just a missing key
    assert evaluate("labels.keys", REC) is None
    assert evaluate("prompt.upper", REC) is None


def test_syntax_errors_name_the_expression() -> None:
    with pytest.raises(ConfigError, match=r"expression 'labels\.x >' is not valid"):
        evaluate("labels.x >", REC)
