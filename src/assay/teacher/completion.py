"""What one chat request returned, normalised: text, reasoning, finish reason, usage.

Servers give reasoning in two ways: a separate `reasoning_content` (DeepSeek, vLLM's reasoning
parser; newer vLLM calls it `reasoning`), or inline as `<think>...</think>` in the content
(llama.cpp, SGLang without a parser, R1 distills whose chat template opens the tag itself).
"""

from __future__ import annotations

import re
from typing import Any

from assay.errors import AssayError

Completion = dict[str, Any]  # {text, content, reasoning, finish_reason, usage, model}

_OPEN = re.compile(r"^\s*<think>\s*", re.IGNORECASE)
_CLOSE = re.compile(r"\s*</think>\s*", re.IGNORECASE)


class MalformedResponse(AssayError):
    """The server answered 200 with a body that is not a chat completion."""


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning or None, final part) of a text that may hold a `<think>` block."""
    close = _CLOSE.search(text)
    opened = _OPEN.match(text)
    if close is None:
        if opened:  # cut off while thinking (finish_reason "length"): all of it is reasoning
            return text[opened.end():].strip(), ""
        return None, text
    start = opened.end() if opened and opened.end() <= close.start() else 0
    return text[start:close.start()].strip(), text[close.end():].strip()


def final_part(response: dict[str, Any]) -> str:
    """The answer a response gives after its reasoning."""
    return split_reasoning(response.get("text") or "")[1]


def reasoning_part(response: dict[str, Any]) -> str:
    if response.get("reasoning"):
        return str(response["reasoning"])
    return split_reasoning(response.get("text") or "")[0] or ""


def join_reasoning(reasoning: str | None, content: str) -> str:
    """The R1 convention for one text: `<think>\\n...\\n</think>\\n\\nanswer`."""
    if not reasoning:
        return content
    return f"<think>\n{reasoning}\n</think>\n\n{content}"


def normalise(body: Any) -> Completion:
    """Turn a chat-completion JSON body into a Completion; raise MalformedResponse when it is not one."""
    if not isinstance(body, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(body).__name__}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        err = body.get("error")
        raise MalformedResponse(f"no choices in the response{f': {err}' if err else ''}")
    choice = choices[0]
    msg = choice.get("message")
    if not isinstance(msg, dict):
        raise MalformedResponse("the choice has no message")
    content = msg.get("content")
    if content is not None and not isinstance(content, str):
        raise MalformedResponse(f"message content is {type(content).__name__}, not text")
    content = content or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        reasoning = None
    if reasoning:
        text = join_reasoning(reasoning.strip(), content.strip())
        final = content.strip()
    else:
        inline, final = split_reasoning(content)
        reasoning = inline
        # keep the model's own text when it already opens its block; else write the R1 form
        text = content if inline is None or _OPEN.match(content) else join_reasoning(inline, final)
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return {
        "text": text,
        "content": final,
        "reasoning": reasoning or None,
        "finish_reason": choice.get("finish_reason"),
        "usage": {"prompt_tokens": _int(usage.get("prompt_tokens")),
                  "completion_tokens": _int(usage.get("completion_tokens"))},
        "model": body.get("model"),
    }


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
