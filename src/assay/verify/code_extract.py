"""Which code of a response code-verify runs: a `code` field, else the last fenced code block of the
final answer (the text after `</think>`), with its language from the fence."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3", "python2", "py2", "pyhton", "python 3"})
CPP_TAGS = frozenset({"cpp", "c++", "cxx", "cc", "hpp", "cplusplus", "c++11", "c++14", "c++17", "c++20", "cpp11",
                      "cpp14", "cpp17", "cpp20", "gnu++17", "gnu++20"})
LANGUAGES = ("python", "cpp")

_OPEN = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([^`\n]*?)[ \t]*$")
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_CPP_HINT = re.compile(r"^\s*#\s*include\s*[<\"]|\busing\s+namespace\s+std\b|\bint\s+main\s*\(", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    tag: str  # the fence's info string, lower-cased ("" when plain)
    code: str
    closed: bool


@dataclass(frozen=True)
class Candidate:
    code: str
    language: str  # "python" | "cpp"
    origin: str  # "field" | "fence"


def final_text(text: str) -> str | None:
    """The answer part of a response: after the last `</think>`; None when it ends inside `<think>`."""
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        return text[closes[-1].end():]
    if _THINK_OPEN.search(text):
        return None
    return text


def fenced_blocks(text: str) -> list[Block]:
    """Markdown fenced blocks (``` or ~~~, any info string, indented as in list items); an unclosed last
    block runs to the end."""
    blocks: list[Block] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1).expandtabs(4)), m.group(2), m.group(3).strip()
        close = re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            body.append(_unindent(lines[j], indent))
            j += 1
        tag = info.split()[0].lower().strip("{}.") if info else ""
        blocks.append(Block(tag, "\n".join(body).strip("\n") + "\n", j < len(lines)))
        i = j + 1
    return blocks


def _unindent(line: str, n: int) -> str:
    """The line without the fence's own indentation (at most n leading spaces)."""
    k = 0
    while k < n and k < len(line) and line[k] == " ":
        k += 1
    return line[k:]


def language_of(tag: str, code: str) -> str | None:
    """python / cpp for a fence tag; a plain fence is guessed from the code; None for other languages."""
    if tag in PYTHON_TAGS:
        return "python"
    if tag in CPP_TAGS:
        return "cpp"
    if tag == "":
        return "cpp" if _CPP_HINT.search(code) else "python"
    return None


def looks_like_code(code: str) -> bool:
    """A plain block holds a program (not sample output): C++ markers, or Python with a statement
    that does something (a definition, an assignment, a call, a loop...)."""
    if _CPP_HINT.search(code):
        return True
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for stmt in tree.body:
        if not isinstance(stmt, ast.Expr) or any(isinstance(n, ast.Call) for n in ast.walk(stmt)):
            return True
    return False


def extract_candidate(response: dict[str, Any]) -> Candidate | str:
    """The code to run, or a sentence saying why there is none."""
    field = response.get("code")
    if isinstance(field, str) and field.strip():
        lang = response.get("language")
        lang = language_of(str(lang).lower(), field) if lang else language_of("", field)
        if lang is None:
            return f"the response's code is in {response.get('language')!r}; supported: {', '.join(LANGUAGES)}"
        return Candidate(field, lang, "field")
    text = response.get("text") or ""
    final = final_text(text)
    if final is None:
        return "the response ends inside <think> (no final answer)"
    blocks = [b for b in fenced_blocks(final) if b.code.strip()]
    if not blocks:
        return "no fenced code block in the final answer"
    tagged = [b for b in blocks if b.tag and language_of(b.tag, b.code)]
    if tagged:
        chosen = tagged[-1]
    else:
        plain = [b for b in blocks if not b.tag]
        if not plain:
            tags = sorted({b.tag for b in blocks})
            return f"code blocks only in {', '.join(tags)}; supported: {', '.join(LANGUAGES)}"
        code_like = [b for b in plain if looks_like_code(b.code)]
        chosen = (code_like or plain)[-1]
    lang = language_of(chosen.tag, chosen.code)
    assert lang is not None
    return Candidate(chosen.code, lang, "fence")
