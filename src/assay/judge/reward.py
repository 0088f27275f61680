"""Stage `reward`: HelpSteer2-style scores (0-4) from an LLM or a local Hugging Face reward model."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator

from assay.errors import ConfigError
from assay.expr import compile_expr
from assay.judge import prompts
from assay.judge.jsonparse import as_number, extract_json, field_of
from assay.record import Record, Response, Verdict, checks_of
from assay.stage import stage
from assay.teacher.completion import Completion
from assay.teacher.llm import LLMCheck, Message, ParseError

DEFAULT_SCORE = "(coherence + correctness + helpfulness) / 12"
DEFAULT_DECISION = "(coherence + correctness + helpfulness) / 12 > 0.7"


@stage("reward")
class Reward(LLMCheck):
    """Reward scores for each response: helpfulness, correctness, coherence, complexity, verbosity.

    Backends: `llm` prompts any chat endpoint with the HelpSteer2 rubric (0-4 each); `hf` runs a
    local Hugging Face sequence-classification model from `model_path` (one output per attribute,
    named by `attributes` or the model's id2label; a single-output model gives `reward`). The
    scores go into the check's details; `decision` (an expression over them) says pass or fail and
    `score` is the check's score.
    """

    backend: Literal["llm", "hf"] = Field("llm", description="llm (any endpoint) | hf (local reward model)")
    decision: str = Field(DEFAULT_DECISION, description="pass when this expression over the scores is true")
    score: str = Field(DEFAULT_SCORE, description="the check's score: an expression over the scores")
    system_prompt: str | None = Field(prompts.JUDGE_SYSTEM, description="system message of the llm backend")
    template: str | None = Field(None, description="your own llm prompt ({problem} {answer} ...) asking for JSON "
                                 "with the attributes")
    max_chars: int = Field(6000, ge=200, description="characters of prompt and response given to the model")
    model_path: str | None = Field(None, description="hf backend: folder of a sequence-classification model")
    attributes: list[str] | None = Field(None, description="names of the outputs (llm default: the five "
                                         "HelpSteer2 attributes; hf default: id2label, or the five, or [reward])")
    max_length: int = Field(4096, ge=16, description="hf backend: tokens per input (longer is truncated)")
    hf_batch_size: int = Field(8, ge=1, description="hf backend: inputs per forward pass")
    device: str = Field("cpu", description="hf backend: torch device")

    _model: Any = PrivateAttr(default=None)
    _names: list[str] | None = PrivateAttr(default=None)
    # chunks in flight call the model from worker threads: one forward pass (and one load) at a time
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("decision", "score")
    @classmethod
    def _expr(cls, value: str) -> str:
        compile_expr(value)  # a ConfigError names the bad expression
        return value

    def uses_teacher(self) -> bool:
        return self.backend == "llm"

    def names(self) -> list[str]:
        return list(self.attributes or prompts.HELPSTEER_ATTRIBUTES)

    # ---- llm backend -------------------------------------------------------------------------
    def prompt(self, record: Record, response: Response | None) -> list[Message]:
        text = prompts.fill(self.template or prompts.HELPSTEER, prompts.values_for(record, response, self.max_chars))
        msgs: list[Message] = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*msgs, {"role": "user", "content": text}]

    def schema(self, record: Record) -> dict[str, Any] | None:
        # an enum, not minimum/maximum: llama.cpp's grammar ignores integer bounds
        props = {n: {"type": "integer", "enum": [0, 1, 2, 3, 4]} for n in self.names()}
        return {"type": "object", "properties": props, "required": self.names(), "additionalProperties": False}

    def parse(self, record: Record, response: Response | None, completion: Completion) -> Verdict:
        data = extract_json(completion["content"] or completion["text"])
        scores = {}
        for name in self.names():
            value = field_of(data, name)
            if value is None:
                raise ParseError(f"no '{name}' in {sorted(data)}")
            scores[name] = as_number(value, name, 0, 4)
        return self.verdict(scores)

    # ---- the decision ----------------------------------------------------------------------
    def verdict(self, scores: dict[str, float]) -> Verdict:
        try:
            passed = bool(compile_expr(self.decision)(scores))
            value = compile_expr(self.score)(scores)
        except (TypeError, ZeroDivisionError) as exc:
            raise ConfigError(f"stage '{self.label}': decision/score cannot be computed from {sorted(scores)}: "
                              f"{exc}") from None
        score = round(float(value), 4) if isinstance(value, (int, float)) else None
        shown = ", ".join(f"{k} {v:g}" for k, v in scores.items())
        return Verdict(passed=passed, score=score, reason=shown, code=None if passed else "low reward",
                       details={"scores": {k: round(v, 4) for k, v in scores.items()}})

    # ---- hf backend ------------------------------------------------------------------------
    async def aprocess_batch(self, records: list[Record]) -> None:
        if self.backend == "llm":
            await super().aprocess_batch(records)
            return
        items = [(rec, resp) for rec in records for resp in rec.get("responses") or ()]
        if not items:
            return
        rows = await asyncio.to_thread(self._score_hf, items)
        for (_, resp), scores in zip(items, rows, strict=True):
            checks_of(resp)[self.key] = self.verdict(scores).to_dict()

    def _load(self) -> None:
        if self._model is not None:
            return
        if not self.model_path:
            raise ConfigError(f"stage '{self.label}': backend 'hf' needs model_path (a sequence-classification "
                              "model folder)")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(self.model_path)
            model = AutoModelForSequenceClassification.from_pretrained(self.model_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"stage '{self.label}': cannot load a reward model from {self.model_path!r}: "
                              f"{str(exc).splitlines()[0]}") from None
        model.eval().to(self.device)
        n = int(model.config.num_labels)
        names = self.attributes
        if names is None:
            labels = [str(model.config.id2label.get(i, "")) for i in range(n)]
            if all(lbl and not lbl.startswith("LABEL_") for lbl in labels):
                names = labels
            elif n == len(prompts.HELPSTEER_ATTRIBUTES):
                names = list(prompts.HELPSTEER_ATTRIBUTES)
            elif n == 1:
                names = ["reward"]
        if names is None or len(names) != n:
            raise ConfigError(f"stage '{self.label}': the model has {n} outputs; name them with `attributes` "
                              f"({len(names or [])} given)")
        if tok.pad_token is None and tok.eos_token is not None:
            tok.pad_token = tok.eos_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        self._model = (torch, tok, model)
        self._names = list(names)

    def _score_hf(self, items: list[tuple[Record, Response]]) -> list[dict[str, float]]:
        with self._lock:
            return self._score_hf_locked(items)

    def _score_hf_locked(self, items: list[tuple[Record, Response]]) -> list[dict[str, float]]:
        self._load()
        torch, tok, model = self._model
        out: list[dict[str, float]] = []
        for i in range(0, len(items), self.hf_batch_size):
            part = items[i:i + self.hf_batch_size]
            vals = [prompts.values_for(rec, resp, self.max_chars) for rec, resp in part]
            if getattr(tok, "chat_template", None):
                texts = [tok.apply_chat_template([{"role": "user", "content": v["problem"]},
                                                  {"role": "assistant", "content": v["answer"]}], tokenize=False)
                         for v in vals]
                enc = tok(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            else:
                enc = tok([v["problem"] for v in vals], [v["answer"] for v in vals], padding=True,
                          truncation=True, max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():
                logits = model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float().cpu()
            for row in logits.tolist():
                out.append(dict(zip(self._names or [], (float(x) for x in row), strict=True)))
        return out
