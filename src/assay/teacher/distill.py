"""Stage `distill`: sample N responses per prompt from a teacher model."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.record import Record, prompt_messages
from assay.stage import stage
from assay.teacher.client import ChatRequest, Failure
from assay.teacher.completion import Completion
from assay.teacher.llm import LLMStage, derive_seed

R1_MATH = "{prompt}\n\nPlease reason step by step, and put your final answer within \\boxed{}."
DEFAULT_MAX_TOKENS = 32768
LOCAL_MAX_TOKENS = 512


@stage("distill")
class Distill(LLMStage):
    """Sample N responses per prompt from a teacher (DeepSeek-R1, vLLM, SGLang, llama.cpp).

    Each response is appended to `responses[]` with its reasoning (`reasoning_content`, or the
    `<think>` block), model, sampling parameters, finish reason and usage. Requests carry a seed
    derived from the record id and sample index, go through the request cache (a rerun sends
    only what is missing), and a request that still fails after retries is recorded under
    `meta.errors.<stage>` and retried on the next run.
    """

    n: int = Field(1, ge=1, description="responses to sample per prompt")
    temperature: float = Field(0.6, ge=0, description="sampling temperature (R1 recommends 0.5-0.7)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling")
    max_tokens: int | None = Field(None, ge=1, description=f"tokens per response (default {DEFAULT_MAX_TOKENS}, "
                                   f"{LOCAL_MAX_TOKENS} with the local teacher)")
    stop_sequences: list[str] | None = Field(None, description="strings that end a response")
    system_prompt: str | None = Field(None, description="a system message (R1 recommends none)")
    templates: dict[str, str] = Field(default_factory=lambda: {"math": R1_MATH},
                                      description="per-domain prompt template ('default' for the others); "
                                      "{prompt} is the problem; left out when the prompt already has it")
    seed: int = Field(0, description="mixed into every request's seed: change it to draw new samples")

    # ---- requests --------------------------------------------------------------------------
    def requests_per_record(self) -> int:
        return self.n

    def effective_max_tokens(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        return LOCAL_MAX_TOKENS if self.teacher.local else DEFAULT_MAX_TOKENS

    def messages(self, record: Record) -> list[dict[str, Any]]:
        msgs = prompt_messages(record)
        while len(msgs) > 1 and msgs[-1].get("role") != "user":  # an existing answer turn is not the prompt
            msgs.pop()
        template = self.templates.get(record.get("domain") or "", self.templates.get("default"))
        if template:
            last = msgs[-1]
            last["content"] = apply_template(template, last.get("content") or "")
        if self.system_prompt and msgs[0].get("role") != "system":
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs

    def sampling(self, record: Record, sample: int) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p,
                                  "max_tokens": self.effective_max_tokens(),
                                  "seed": derive_seed(self.seed, record.get("id"), sample)}
        if self.stop_sequences:
            params["stop"] = self.stop_sequences
        return params

    # ---- work ------------------------------------------------------------------------------
    async def aprocess_batch(self, records: list[Record]) -> None:
        plan: list[tuple[Record, ChatRequest]] = []
        for rec in records:
            msgs = self.messages(rec)
            errors = (rec.get("meta") or {}).get("errors")
            if isinstance(errors, dict):
                errors.pop(self.key, None)  # a redo starts clean
            for i in range(self.n):
                plan.append((rec, ChatRequest(msgs, self.sampling(rec, i), sample=i)))
        results = await self.complete_many([req for _, req in plan])
        for (rec, req), result in zip(plan, results, strict=True):
            if isinstance(result, Failure):
                meta = rec.get("meta")
                if not isinstance(meta, dict):
                    meta = rec["meta"] = {}
                failed = {"sample": req.sample, **result.to_dict()}
                meta.setdefault("errors", {}).setdefault(self.key, []).append(failed)
            else:
                rec.setdefault("responses", []).append(self.response(result, req))

    def response(self, c: Completion, req: ChatRequest) -> dict[str, Any]:
        out: dict[str, Any] = {"text": c["text"]}
        if c.get("reasoning"):
            out["reasoning"] = c["reasoning"]
        out["model"] = self.model_name
        if c.get("finish_reason") is not None:
            out["finish_reason"] = str(c["finish_reason"])
        out["usage"] = dict(c["usage"])
        p = req.params
        out["sampling"] = {"temperature": p["temperature"], "top_p": p["top_p"], "max_tokens": p["max_tokens"],
                           "seed": p["seed"], "sample": req.sample}
        return out

    def needs_retry(self, record: Record) -> bool:
        errors = ((record.get("meta") or {}).get("errors") or {}).get(self.key) or ()
        return any(e.get("retry") for e in errors)


def apply_template(template: str, prompt: str) -> str:
    """Put the prompt where the template says `{prompt}` (no `{prompt}`: the template is appended),
    unless the prompt already carries the template's own text."""
    if "{prompt}" not in template:
        template = "{prompt}\n\n" + template
    head, tail = template.split("{prompt}", 1)
    parts = [p for p in (head.strip(), tail.strip()) if p]
    if parts and all(p in prompt for p in parts):
        return prompt
    return head + prompt + tail
