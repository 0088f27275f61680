"""Bases for stages that call a chat model: the client, cache, retries, limits and local server
come for free.

`LLMStage` gives a stage a `teacher:` parameter block and `await self.complete_many(requests)`.
`LLMCheck` is the prompt/parse form (Bespoke curator style) for model-based checks:

    @stage("judge")
    class Judge(LLMCheck):
        def prompt(self, record, response) -> list[dict]:   # the chat messages to send
            return [{"role": "user", "content": f"Is this right? {response['text']} Reply in JSON."}]

        def parse(self, record, response, completion) -> Verdict:   # the model's answer -> a check
            data = extract_json(completion["content"])           # raise ParseError to ask again
            return Verdict(passed=data["ok"], score=float(data["ok"]), reason=data.get("why", ""))

Each target (a response, or the record itself for `level = "record"`) gets one request; output
that `parse` rejects is asked again (`parse_retries`, with a warmer temperature and a new seed) and
then recorded as unparseable. A request that fails after the client's retries is recorded in the
check with `retry: true`; `needs_retry` then marks the shard incomplete so the next run redoes it,
with every answered request read back from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, PrivateAttr

from assay.errors import AssayError
from assay.record import Record, Response, Verdict, checks_of
from assay.stage import Execution, Stage, StageContext
from assay.teacher import server as local_server
from assay.teacher.cache import RequestCache, cache_path
from assay.teacher.client import ChatRequest, Failure, TeacherClient
from assay.teacher.completion import Completion
from assay.teacher.config import TeacherConfig

Message = dict[str, Any]
JsonMode = Literal["auto", "off", "object", "schema", "llama"]


class ParseError(AssayError):
    """The model's output could not be read; the check asks again."""


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from stable parts (record id, sample index, ...): reruns sample the same."""
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_NON_STR_KEYS)).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class LLMStage(Stage):
    """Base of stages that send chat requests to a teacher (any OpenAI-compatible endpoint)."""

    execution: ClassVar[Execution] = "async"
    batch_size: ClassVar[int] = 16
    operational: ClassVar[tuple[str, ...]] = tuple(f"teacher.{k}" for k in (
        "api_key_env", "timeout", "concurrency", "rpm", "tpm", "max_retries", "backoff", "backoff_max", "prices",
        "local_threads"))

    teacher: TeacherConfig = Field(default_factory=TeacherConfig,
                                   description="the endpoint: base_url, model, api_key_env, local, timeout, "
                                   "concurrency, rpm, tpm, max_retries, prices (see the README)")

    _server: local_server.LocalServer | None = PrivateAttr(default=None)
    _client: TeacherClient | None = PrivateAttr(default=None)
    _cache: RequestCache | None = PrivateAttr(default=None)
    _llm_counts: Counter[str] = PrivateAttr(default_factory=Counter)

    # ---- what subclasses may override ------------------------------------------------------
    def uses_teacher(self) -> bool:
        """False for a configuration that needs no endpoint (a rule or local-model backend)."""
        return True

    def requests_per_record(self) -> int:
        """About how many requests one record makes (sizes the work kept in flight)."""
        return 1

    @property
    def chunks_in_flight(self) -> int:
        """Chunks the runner keeps in flight: enough queued requests for twice the concurrency, so
        the server stays busy while the oldest chunk waits for its slowest request."""
        per_chunk = max(1, self.batch_size * self.requests_per_record())
        return max(4, math.ceil(2 * self.teacher.max_concurrency / per_chunk))

    # ---- lifecycle -------------------------------------------------------------------------
    # The local server is started on the first request that is not in the cache (in the runner's
    # process, where async stages run), shared by the stages that use the same model, and stopped
    # in teardown(): a rerun answered from the cache never loads the model.
    def start(self, ctx: StageContext) -> None:
        if self.uses_teacher():  # fail before any work on a config that cannot send a request
            self.teacher.require_endpoint(self.label)
            _ = self.model_name

    def teardown(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                asyncio.run(client.aclose())
            except Exception:  # inside a running loop, or the transports' loop is gone
                pass
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self._server is not None:
            local_server.release(self._server)
            self._server = None

    def _local_model_path(self) -> Path:
        return Path(self.teacher.local_model) if self.teacher.local_model else local_server.default_model_path()

    def _acquire_server(self, log: Path | None = None) -> local_server.LocalServer:
        t = self.teacher
        return local_server.acquire(self._local_model_path(), t.local_ctx, t.local_threads, log, alias=t.model)

    # ---- the client ------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The model name requests carry (and the cache key holds)."""
        if self.teacher.local:
            return self.teacher.model or local_server.model_alias(self._local_model_path())
        if not self.teacher.model:
            raise AssayError(f"stage '{self.label}': set teacher.model (the model name the endpoint serves)")
        return self.teacher.model

    def client(self) -> TeacherClient:
        """The stage's client, created on first use in the running event loop."""
        if self._client is not None:
            return self._client
        cfg = self.teacher
        cfg.require_endpoint(self.label)
        if self._cache is None:
            self._cache = RequestCache(cache_path(self.ctx.cache_dir))
        endpoint = self._local_endpoint if cfg.local else (cfg.base_url or "")
        self._client = TeacherClient(cfg, endpoint, self.model_name, self._cache)
        return self._client

    def _local_endpoint(self) -> str:
        if self._server is None:
            stage_dir = self._ctx.stage_dir if self._ctx is not None else None
            self._server = self._acquire_server(stage_dir / "teacher-server.log" if stage_dir else None)
        return self._server.url

    async def complete_many(self, requests: list[ChatRequest]) -> list[Completion | Failure]:
        return await self.client().complete_many(requests)

    def stats(self) -> dict[str, Any]:
        """The client's counters (requests sent / cached / failed, tokens, cost, latency histogram)
        and the check's own (re-asked, unparseable), since the last call."""
        out = self._client.stats.take() if self._client is not None else {}
        if self._llm_counts:
            out.update(self._llm_counts)
            self._llm_counts.clear()
        return out


class LLMCheck(LLMStage):
    """A model-based check in the prompt/parse style; subclasses write `prompt` and `parse`."""

    level: ClassVar[Literal["response", "record"]] = "response"

    temperature: float = Field(0.0, ge=0, description="sampling temperature of the first try")
    retry_temperature: float = Field(0.7, ge=0, description="temperature of the tries after unparseable output")
    max_tokens: int = Field(512, ge=1, description="tokens the model may write per request")
    parse_retries: int = Field(2, ge=0, description="times to ask again when the output cannot be parsed")
    json_mode: JsonMode = Field("auto", description="structured output: off | object ({type: json_object}) | "
                                "schema (OpenAI/vLLM json_schema) | llama (llama.cpp json_object + schema) | "
                                "auto (llama with the local teacher, else off)")
    on_error: Literal["keep", "drop"] = Field("keep", description="what a check that could not be computed "
                                              "(failed request, unparseable output) does to its target")

    # ---- what subclasses write -------------------------------------------------------------
    def prompt(self, record: Record, response: Response | None) -> list[Message]:
        raise NotImplementedError

    def parse(self, record: Record, response: Response | None, completion: Completion) -> Verdict:
        """Read the model's answer (`completion["content"]`, reasoning stripped); raise ParseError."""
        raise NotImplementedError

    def schema(self, record: Record) -> dict[str, Any] | None:
        """JSON schema of the expected answer, for servers that constrain output (json_mode)."""
        return None

    def precheck(self, record: Record, response: Response | None) -> Verdict | None:
        """A verdict that needs no model (nothing to judge, say); None sends the request."""
        return None

    def requests_per_record(self) -> int:
        return 1 if self.level == "record" else 4

    def targets(self, record: Record) -> list[Response | None]:
        """What gets one request each: the responses, or [None] for the record itself."""
        if self.level == "record":
            return [None]
        return list(record.get("responses") or ())

    # ---- machinery -------------------------------------------------------------------------
    def response_format(self, record: Record) -> dict[str, Any] | None:
        schema = self.schema(record)
        mode = self.json_mode
        if mode == "auto":
            mode = "llama" if self.teacher.local else "off"
        if mode == "off":
            return None
        if mode == "object" or schema is None:
            return {"type": "json_object"}
        if mode == "llama":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": self.key or "check", "schema": schema, "strict": True}}

    def request(self, record: Record, response: Response | None, attempt: int) -> ChatRequest:
        messages = self.prompt(record, response)
        params: dict[str, Any] = {
            "temperature": self.temperature if attempt == 0 else max(self.temperature, self.retry_temperature),
            "max_tokens": self.max_tokens,
            # from the content, not the position: a response keeps its cached verdict when others drop
            "seed": derive_seed(messages, attempt),
        }
        fmt = self.response_format(record)
        if fmt is not None:
            params["response_format"] = fmt
        return ChatRequest(messages, params, sample=attempt)

    async def aprocess_batch(self, records: list[Record]) -> None:
        self.client()
        items = [(rec, target) for rec in records for target in self.targets(rec)]
        verdicts = await asyncio.gather(*(self.evaluate(rec, target) for rec, target in items))
        for (rec, target), verdict in zip(items, verdicts, strict=True):
            checks_of(rec if target is None else target)[self.key] = verdict.to_dict()

    async def evaluate(self, record: Record, response: Response | None) -> Verdict:
        """Ask, parse, ask again on unparseable output; a failure becomes a recorded verdict."""
        early = self.precheck(record, response)
        if early is not None:
            return early
        problems = []
        for attempt in range(self.parse_retries + 1):
            result = (await self.complete_many([self.request(record, response, attempt)]))[0]
            if isinstance(result, Failure):
                return self.failed(f"request failed: {result.error}", "request failed",
                                   {"error": result.kind, "retry": result.retry})
            try:
                return self.parse(record, response, result)
            except ParseError as exc:
                problems.append(str(exc))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
            self._llm_counts["reasked"] += attempt < self.parse_retries
        self._llm_counts["unparseable"] += 1
        return self.failed(f"unparseable output after {len(problems)} tries: {problems[-1][:200]}", "unparseable",
                           {"retry": False})

    def failed(self, reason: str, code: str, details: dict[str, Any]) -> Verdict:
        return Verdict(passed=self.on_error == "keep", score=None, reason=reason, code=code,
                       details={"error": code, **details})

    def needs_retry(self, record: Record) -> bool:
        key = self.key
        for obj in [record, *(record.get("responses") or ())]:
            check = (obj.get("checks") or {}).get(key)
            if isinstance(check, dict) and check.get("retry"):
                return True
        return False
