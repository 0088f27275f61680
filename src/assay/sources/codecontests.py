"""CodeContests (deepmind/code_contests): problems from Codeforces, AtCoder, CodeChef, ... with many tests."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import CodeAdapter, as_float, clean, io_pairs, opt, opt_text, row_key

# Class labels of the Hugging Face copy (the `ContestProblem` proto enums).
LANGUAGES = ("unknown", "python2", "cpp", "python3", "java")
SOURCES = ("unknown", "codechef", "codeforces", "hackerearth", "codejam", "atcoder", "aizu")
DIFFICULTIES = ("UNKNOWN_DIFFICULTY", "EASY", "MEDIUM", "HARD", "HARDER", "HARDEST", "EXTERNAL",
                *"ABCDEFGHIJKLMNOPQRSTUV")
_LANGUAGE_ALIASES = {"python": "python2", "python3": "python3", "py3": "python3", "cpp": "cpp", "c++": "cpp",
                     "java": "java", "unknown_language": "unknown"}


def language_name(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(LANGUAGES):
        return LANGUAGES[value]
    if isinstance(value, str):
        key = value.strip().lower()
        return _LANGUAGE_ALIASES.get(key, key)
    return "unknown"


def enum_name(value: Any, names: tuple[str, ...]) -> str | None:
    """A class label as its name (ints index `names`; strings pass through)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return names[value] if 0 <= value < len(names) else str(value)
    return str(value) or None


def solutions_by_language(value: Any, key: str) -> list[tuple[str, str]]:
    """[(language, code)] from `{language: [...], solution: [...]}` or a list of such pairs."""
    if value is None:
        return []
    if isinstance(value, dict):
        langs, codes = value.get("language") or [], value.get("solution") or []
        if not isinstance(langs, list) or not isinstance(codes, list) or len(langs) != len(codes):
            raise SourceError("expected parallel lists 'language' and 'solution'", key)
        pairs = zip(langs, codes, strict=True)
    elif isinstance(value, list):
        pairs = ((item.get("language"), item.get("solution")) for item in value if isinstance(item, dict))
    else:
        raise SourceError(f"expected solutions by language, got {type(value).__name__}", key)
    return [(language_name(lang), code) for lang, code in pairs if isinstance(code, str)]


def time_limit_seconds(value: Any) -> float | None:
    """`{seconds, nanos}` (the proto Duration) or a number of seconds."""
    if isinstance(value, dict):
        s, ns = as_float(value.get("seconds")) or 0.0, as_float(value.get("nanos")) or 0.0
        total = s + ns / 1e9
        return total or None
    return as_float(value)


@source("codecontests")
class CodeContests(CodeAdapter):
    """CodeContests: `name`, `description`, public / private / generated tests, `solutions` by language.

    Tests are stdin tests (public + private, optionally the generated ones); `reference.solution` is
    the first solution in the preferred language; `time_limit` goes to meta.time_limit_s,
    `memory_limit_bytes` to meta.memory_limit_mb. The id is the problem's `name`.
    """

    domain = "code"

    include_private_tests: bool = Field(True, description="add `private_tests` to the public ones")
    include_generated_tests: bool = Field(False, description="add `generated_tests` (many, machine-made)")
    solution_language: list[str] = Field(["python3"], description="languages to take reference.solution from, "
                                         "in order of preference (python3, python2, cpp, java)")
    max_tests: int | None = Field(None, ge=1, description="keep at most this many test cases")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        description = need(row, "description")
        cases = io_pairs(row.get("public_tests"), "public_tests")
        if self.include_private_tests:
            cases += io_pairs(row.get("private_tests"), "private_tests")
        if self.include_generated_tests:
            cases += io_pairs(row.get("generated_tests"), "generated_tests")
        if self.max_tests is not None:
            cases = cases[: self.max_tests]
        solutions = solutions_by_language(row.get("solutions"), "solutions")
        solution, solution_lang = None, None
        for lang in self.solution_language:
            found = next((code for sl, code in solutions if sl == language_name(lang)), None)
            if found:
                solution, solution_lang = found, language_name(lang)
                break
        memory = as_float(row.get("memory_limit_bytes"))
        tags = opt(row, "cf_tags", list)
        meta = clean({
            "name": opt_text(row, "name"),
            "origin": enum_name(row.get("source"), SOURCES),
            "difficulty": enum_name(row.get("difficulty"), DIFFICULTIES),
            "rating": row.get("cf_rating") or None,
            "tags": [t for t in tags or () if isinstance(t, str) and t],
            "contest_id": row.get("cf_contest_id") or None,
            "index": opt_text(row, "cf_index"),
            "points": row.get("cf_points") or None,
            "time_limit_s": time_limit_seconds(row.get("time_limit")),
            "memory_limit_mb": memory / (1 << 20) if memory else None,
            "input_file": opt_text(row, "input_file"),
            "output_file": opt_text(row, "output_file"),
            "solution_language": solution_lang,
        })
        return self.record(
            at,
            key=row_key(row, "name"),
            prompt=self.code_prompt(description),
            reference=clean({"solution": solution, "tests": {"kind": "stdin", "cases": cases} if cases else None}),
            meta=meta,
        )
