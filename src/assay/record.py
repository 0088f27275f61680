"""The record: one JSON object per problem, the contract every stage reads and writes.

Records travel as plain dicts (fast to parse, copy and pickle); `validate_record` checks the
shape once, when data enters a run, and names the offending field. See DESIGN.md for the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assay.errors import RecordError

Record = dict[str, Any]
Response = dict[str, Any]

DOMAINS = ("math", "code", "science", "chat")
ROLES = ("system", "user", "assistant", "tool", "developer")
TEST_KINDS = ("stdin", "function", "assert")


@dataclass(slots=True)
class Verdict:
    """What a check found. `reason` is for people; `code` is a short category for counting."""

    passed: bool
    score: float | None = None
    reason: str = ""
    code: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"passed": bool(self.passed), "score": self.score, "reason": self.reason}
        if self.code:
            out["code"] = self.code
        if self.details:
            out.update(self.details)
        return out


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _expect(value: Any, kinds: type | tuple[type, ...], path: str, what: str) -> None:
    if not isinstance(value, kinds):
        raise RecordError(f"expected {what}, got {_type_name(value)}", path)


def _text(value: Any, path: str, *, allow_empty: bool = True) -> str:
    _expect(value, str, path, "a string")
    if not allow_empty and not value.strip():
        raise RecordError("must not be empty", path)
    return value


def _answer(value: Any, path: str) -> str:
    # Reference answers are text; numbers from JSON are accepted and kept as their text form.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(f"expected a string or number, got {_type_name(value)}", path)
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


def _validate_messages(messages: Any, path: str) -> None:
    _expect(messages, list, path, "a list of messages")
    if not messages:
        raise RecordError("must hold at least one message", path)
    has_user = False
    for i, msg in enumerate(messages):
        p = f"{path}[{i}]"
        _expect(msg, dict, p, "an object with 'role' and 'content'")
        role = msg.get("role")
        if role not in ROLES:
            raise RecordError(f"role must be one of {', '.join(ROLES)}, got {role!r}", f"{p}.role")
        if "content" not in msg:
            raise RecordError("is missing", f"{p}.content")
        _text(msg["content"], f"{p}.content")
        has_user |= role == "user"
    if not has_user:
        raise RecordError("needs at least one message with role 'user'", path)


def _validate_tests(tests: Any, path: str) -> None:
    _expect(tests, dict, path, "an object with 'kind'")
    kind = tests.get("kind")
    if kind not in TEST_KINDS:
        raise RecordError(f"must be one of {', '.join(TEST_KINDS)}, got {kind!r}", f"{path}.kind")
    if kind == "assert":
        _text(tests.get("code"), f"{path}.code", allow_empty=False)
        if tests.get("entry_point") is not None:
            _text(tests["entry_point"], f"{path}.entry_point")
        return
    cases = tests.get("cases")
    _expect(cases, list, f"{path}.cases", "a list of test cases")
    if kind == "stdin":
        for i, case in enumerate(cases):
            p = f"{path}.cases[{i}]"
            _expect(case, dict, p, "an object with 'input' and 'output'")
            _text(case.get("input"), f"{p}.input")
            _text(case.get("output"), f"{p}.output")
    else:
        _text(tests.get("fn_name"), f"{path}.fn_name", allow_empty=False)
        if tests.get("class_name") is not None:
            _text(tests["class_name"], f"{path}.class_name")
        for i, case in enumerate(cases):
            p = f"{path}.cases[{i}]"
            _expect(case, dict, p, "an object with 'args' and 'expected'")
            _expect(case.get("args"), list, f"{p}.args", "a list of arguments")
            if "expected" not in case:
                raise RecordError("is missing", f"{p}.expected")


def _validate_reference(ref: Any) -> None:
    _expect(ref, dict, "reference", "an object")
    if "answer" in ref and ref["answer"] is not None:
        ref["answer"] = _answer(ref["answer"], "reference.answer")
    if ref.get("solution") is not None:
        _text(ref["solution"], "reference.solution")
    if ref.get("tests") is not None:
        _validate_tests(ref["tests"], "reference.tests")


def _validate_responses(responses: Any) -> None:
    _expect(responses, list, "responses", "a list of responses")
    for i, resp in enumerate(responses):
        p = f"responses[{i}]"
        _expect(resp, dict, p, "an object with 'text'")
        if "text" not in resp:
            raise RecordError("is missing", f"{p}.text")
        _text(resp["text"], f"{p}.text")
        for key in ("reasoning", "model", "finish_reason"):
            if resp.get(key) is not None:
                _text(resp[key], f"{p}.{key}")
        if resp.get("answer") is not None:
            resp["answer"] = _answer(resp["answer"], f"{p}.answer")
        for key in ("usage", "checks"):
            if resp.get(key) is not None:
                _expect(resp[key], dict, f"{p}.{key}", "an object")


def validate_record(rec: Any) -> Record:
    """Check the record's shape in place and return it; raise RecordError naming the field.

    Numbers given as answers become strings; everything else is left as it came.
    """
    if not isinstance(rec, dict):
        raise RecordError(f"a record must be a JSON object, got {_json_kind(rec)}")
    rid = rec.get("id")
    if rid is None:
        raise RecordError("is missing", "id")
    if isinstance(rid, int) and not isinstance(rid, bool):
        rec["id"] = rid = str(rid)
    _text(rid, "id", allow_empty=False)
    domain = rec.get("domain")
    if domain not in DOMAINS:
        raise RecordError(
            f"must be one of {', '.join(DOMAINS)}, got {domain!r}" if domain is not None else "is missing",
            "domain",
        )
    if rec.get("source") is not None:
        _text(rec["source"], "source")
    prompt, messages = rec.get("prompt"), rec.get("messages")
    if prompt is None and messages is None:
        raise RecordError("is missing (a record needs 'prompt' or 'messages')", "prompt")
    if prompt is not None:
        _text(prompt, "prompt", allow_empty=False)
    if messages is not None:
        _validate_messages(messages, "messages")
    if rec.get("reference") is not None:
        _validate_reference(rec["reference"])
    for key in ("labels", "meta", "checks"):
        if rec.get(key) is not None:
            _expect(rec[key], dict, key, "an object")
    if rec.get("responses") is not None:
        _validate_responses(rec["responses"])
    return rec


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


# ---- small accessors every stage uses ------------------------------------------------------


def prompt_text(rec: Record) -> str:
    """The user-facing problem text: `prompt`, or the user turns of `messages` joined."""
    if rec.get("prompt"):
        return rec["prompt"]
    return "\n\n".join(m["content"] for m in rec.get("messages") or () if m.get("role") == "user")


def prompt_messages(rec: Record) -> list[dict[str, str]]:
    """The conversation to send to a model: `messages`, or `prompt` as one user turn."""
    if rec.get("messages"):
        return [dict(m) for m in rec["messages"]]
    return [{"role": "user", "content": rec["prompt"]}]


def reference(rec: Record) -> dict[str, Any]:
    return rec.get("reference") or {}


def has_reference(rec: Record) -> bool:
    """True when a verifier can judge responses: an answer (math, science) or tests (code)."""
    ref = reference(rec)
    if rec.get("domain") == "code":
        tests = ref.get("tests")
        return bool(tests) and (tests.get("kind") == "assert" or bool(tests.get("cases")))
    return ref.get("answer") not in (None, "")


def checks_of(obj: dict[str, Any]) -> dict[str, Any]:
    checks = obj.get("checks")
    if checks is None:
        checks = obj["checks"] = {}
    return checks
