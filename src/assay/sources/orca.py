"""Orca-style chat data: OpenOrca (system_prompt, question, response) and ShareGPT `conversations` (SlimOrca)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import Record
from assay.sources.base import RowAt, need, source
from assay.sources.common import Adapter, clean, opt, opt_text, row_key

_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
          "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant"}


def sharegpt_turns(turns: Any) -> list[dict[str, str]]:
    """[{role, content}] from ShareGPT `[{from, value}]` (or already `[{role, content}]`) turns."""
    if not isinstance(turns, list):
        raise SourceError(f"expected a list of turns, got {type(turns).__name__}", "conversations")
    out = []
    for n, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise SourceError(f"expected an object with 'from' and 'value', got {type(turn).__name__}",
                              f"conversations[{n}]")
        speaker = turn.get("from", turn.get("role"))
        content = turn.get("value", turn.get("content"))
        role = _ROLES.get(str(speaker).lower())
        if role is None:
            raise SourceError(f"unknown speaker {speaker!r}", f"conversations[{n}].from")
        if not isinstance(content, str):
            raise SourceError(f"expected a string, got {type(content).__name__}", f"conversations[{n}].value")
        out.append({"role": role, "content": content})
    return out


@source("orca")
class Orca(Adapter):
    """Orca / OpenOrca: `id`, `system_prompt`, `question`, `response` (also ShareGPT `conversations`, as in SlimOrca).

    The prompt is `messages` (the system prompt when there is one, then the question); the
    response is kept as an existing response. In `conversations`, the last assistant turn is the
    response and the turns before it are the messages.
    """

    domain = "chat"

    model: str | None = Field(None, description="model that wrote the responses (OpenOrca: gpt-4 or gpt-3.5-turbo "
                              "depending on the file)")

    def map(self, row: dict[str, Any], at: RowAt) -> Record:
        if row.get("conversations") is not None and row.get("question") is None:
            turns = sharegpt_turns(row["conversations"])
            response = None
            if turns and turns[-1]["role"] == "assistant":
                response = turns.pop()["content"]
            if not any(t["role"] == "user" for t in turns):
                raise SourceError("holds no user turn", "conversations")
            messages = turns
        else:
            question = need(row, "question")
            system = opt_text(row, "system_prompt")
            messages = ([{"role": "system", "content": system}] if system else [])
            messages.append({"role": "user", "content": question})
            response = opt(row, "response")
        return self.record(
            at,
            key=row_key(row),
            messages=messages,
            responses=[clean({"text": response, "model": self.model}) | {"text": response}]
            if response is not None else None,
        )
