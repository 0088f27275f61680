"""The teacher client: cached, rate-limited, retrying chat requests to an OpenAI-compatible server.

    client = TeacherClient(cfg, base_url, model, cache)
    results = await client.complete_many([ChatRequest(messages, {"temperature": 0.6, "seed": 7})])
    # each result is a Completion (dict) or a Failure

Never pays twice: answers are read from the request cache first, identical requests in flight
are coalesced, and every answer is written to the cache before it is returned. Never loses a
request: timeouts, dropped connections, 429 (honouring Retry-After) and 5xx are retried with
exponential backoff and jitter; a request that still fails comes back as a `Failure` for the
stage to record. Credentials and missing models stop the run (every request would fail alike).

Speed: the openai client's low-level `post` with a pre-built body (its typed-argument transform
costs ~0.5 ms per request), and several small connection pools ("lanes", 8 connections each):
httpx's pool scans all its connections on every request.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from assay.errors import AssayError
from assay.teacher.cache import RequestCache, request_key
from assay.teacher.completion import Completion, MalformedResponse, normalise
from assay.teacher.config import TeacherConfig
from assay.teacher.limits import Limits
from assay.teacher.stats import ClientStats

LANE_SIZE = 8
RETRY_STATUSES = {408, 409, 425, 429}
FATAL_STATUSES = {401: "rejected the API key", 403: "refused access", 404: "has no such model or route"}
# A server that fails this many requests in a row (each after all its retries) and never answers
# is down or misconfigured: stop instead of recording a failure for every record of the data set.
BREAKER = 32


@dataclass
class ChatRequest:
    """One chat request. `params` are the sampling parameters sent as-is (temperature, top_p,
    max_tokens, seed, stop, response_format, ...); `sample` tells apart the N samples of a prompt."""

    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    sample: int = 0
    key: str = ""


@dataclass
class Failure:
    """A request that ended without an answer."""

    error: str
    kind: str  # timeout | connection | rate limited | status NNN | malformed | rejected
    attempts: int
    retry: bool  # worth trying again on the next run

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "kind": self.kind, "attempts": self.attempts, "retry": self.retry}


class TeacherUnavailable(AssayError):
    """The endpoint cannot serve any request (bad key, unknown model, down): the run stops."""


class _Attempt(Exception):
    def __init__(self, kind: str, message: str, *, retry: bool, wait: float | None = None):
        super().__init__(message)
        self.kind, self.retry, self.wait = kind, retry, wait


class TeacherClient:
    """`base_url` may be a function: it is called before the first request is sent, so a run whose
    answers are all cached never starts (or needs) a server."""

    def __init__(self, cfg: TeacherConfig, base_url: str | Callable[[], str], model: str,
                 cache: RequestCache | None = None):
        self.cfg = cfg
        self._endpoint = base_url
        self.base_url = base_url.rstrip("/") if isinstance(base_url, str) else "(not started)"
        self.model = model
        self.cache = cache  # RequestCache, or anything with get_many(keys) and put(key, model, completion, cost)
        self.stats = ClientStats()
        self.price = cfg.price_for(model)
        self.extra = dict(cfg.extra_body)
        self._lanes: list[Any] = []
        self._slots: asyncio.Queue[int] | None = None
        self._inflight: dict[str, asyncio.Future[Completion | Failure]] = {}
        self.limits: Any = Limits(cfg.rpm, cfg.tpm)  # or a share of limits held elsewhere (Ray)
        self.concurrency = cfg.max_concurrency  # requests open at once (this client's share)
        self._down = 0  # consecutive failed requests
        self._ever_answered = False

    # ---- keys ----------------------------------------------------------------------------
    def keyed(self, req: ChatRequest) -> ChatRequest:
        if not req.key:
            req.key = request_key(self.model, req.messages, {**self.extra, **req.params}, req.sample)
        return req

    # ---- public API ----------------------------------------------------------------------
    async def complete_many(self, requests: list[ChatRequest]) -> list[Completion | Failure]:
        """Answer requests concurrently (cache first); results in the order of `requests`."""
        for r in requests:
            self.keyed(r)
        self.stats.requests += len(requests)
        hits = self.cache.get_many(r.key for r in requests) if self.cache is not None else {}
        self.stats.cached += sum(1 for r in requests if r.key in hits)
        missing = [r for r in requests if r.key not in hits]
        answers = await asyncio.gather(*(self._once(r) for r in missing))
        by_key: dict[str, Completion | Failure] = dict(hits)
        for r, a in zip(missing, answers, strict=True):
            by_key[r.key] = a
        return [by_key[r.key] for r in requests]

    async def complete(self, req: ChatRequest) -> Completion | Failure:
        return (await self.complete_many([req]))[0]

    async def aclose(self) -> None:
        for lane in self._lanes:
            try:
                await lane.close()
            except Exception:  # closing after the loop that opened it is gone
                pass
        self._lanes = []
        self._slots = None

    # ---- one request ---------------------------------------------------------------------
    async def _once(self, req: ChatRequest) -> Completion | Failure:
        """Send a request unless an identical one is already in flight (then share its answer)."""
        fut = self._inflight.get(req.key)
        if fut is not None:
            self.stats.cached += 1
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[req.key] = fut
        try:
            result = await self._with_retries(req)
            fut.set_result(result)
            return result
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            del self._inflight[req.key]

    async def _with_retries(self, req: ChatRequest) -> Completion | Failure:
        cfg = self.cfg
        body = {"model": self.model, "messages": req.messages, **self.extra, **req.params}
        tokens = self._estimate_tokens(req)
        attempt = 0
        while True:
            attempt += 1
            try:
                completion, latency = await self._send(body, tokens)
            except _Attempt as exc:
                self.stats.errors[exc.kind] += 1
                if not exc.retry or attempt > cfg.max_retries:
                    self.stats.failed += 1
                    self._down += 1
                    if self._down >= BREAKER and not self._ever_answered and exc.kind in ("timeout", "connection"):
                        raise TeacherUnavailable(f"the teacher at {self.base_url} failed {self._down} requests in a "
                                                 f"row ({exc.kind}: {exc}); is it running?") from None
                    return Failure(str(exc), exc.kind, attempt, exc.retry)
                self.stats.retries += 1
                delay = self._backoff(attempt)
                if exc.wait is not None:  # the server said when: honour it (up to one request's timeout)
                    delay = min(max(exc.wait, 0.0), cfg.timeout)
                    self.limits.hold(delay)
                await asyncio.sleep(delay)
                continue
            self._down = 0
            self._ever_answered = True
            if self.cache is not None:
                put_timed = getattr(self.cache, "put_timed", None)  # caches that keep latencies
                if put_timed is not None:
                    put_timed(req.key, self.model, completion, self._cost(completion), latency)
                else:
                    self.cache.put(req.key, self.model, completion, self._cost(completion))
            return completion

    def _backoff(self, attempt: int) -> float:
        base = min(self.cfg.backoff_max, self.cfg.backoff * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)

    def _estimate_tokens(self, req: ChatRequest) -> float:
        chars = sum(len(str(m.get("content") or "")) for m in req.messages)
        return chars / 4 + float(req.params.get("max_tokens") or 0)

    def _cost(self, c: Completion) -> float:
        if self.price is None:
            return 0.0
        u = c["usage"]
        return self.price.cost(u["prompt_tokens"], u["completion_tokens"])

    async def _send(self, body: dict[str, Any], tokens: float) -> tuple[Completion, float]:
        import openai

        await self.limits.admit(tokens)
        slots = self._slots or self._open()
        lane = await slots.get()
        try:
            await self.limits.wait()
            self.stats.sent += 1
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.cfg.timeout):
                    raw = await self._lanes[lane].post("/chat/completions", cast_to=bytes, body=body)
                completion = normalise(orjson.loads(raw))
            except (TimeoutError, openai.APITimeoutError):
                raise _Attempt("timeout", f"no answer within {self.cfg.timeout:g}s", retry=True) from None
            except openai.APIConnectionError as exc:
                raise _Attempt("connection", f"connection failed: {_cause(exc)}", retry=True) from None
            except openai.APIStatusError as exc:
                raise self._status_error(exc) from None
            except (orjson.JSONDecodeError, MalformedResponse) as exc:
                raise _Attempt("malformed", f"malformed response: {str(exc)[:200]}", retry=True) from None
            latency = time.perf_counter() - started
        finally:
            slots.put_nowait(lane)
        usage = completion["usage"]
        st = self.stats
        st.answered += 1
        st.prompt_tokens += usage["prompt_tokens"]
        st.completion_tokens += usage["completion_tokens"]
        st.cost_usd += self._cost(completion)
        st.observe_latency(latency)
        if usage["prompt_tokens"] or usage["completion_tokens"]:
            self.limits.settle(tokens - usage["prompt_tokens"] - usage["completion_tokens"])
        return completion, latency

    def _status_error(self, exc: Any) -> _Attempt:
        code = exc.status_code
        detail = _message(exc)
        if code in FATAL_STATUSES:
            key_hint = f" (key from ${self.cfg.api_key_env})" if code in (401, 403) else f" (model {self.model!r})"
            raise TeacherUnavailable(f"the teacher at {self.base_url} {FATAL_STATUSES[code]}{key_hint}: "
                                     f"HTTP {code} {detail}")
        wait = _retry_after(exc.response.headers)
        if code == 429:
            return _Attempt("rate limited", f"HTTP 429 {detail}", retry=True, wait=wait)
        if code >= 500 or code in RETRY_STATUSES:
            return _Attempt(f"status {code}", f"HTTP {code} {detail}", retry=True, wait=wait)
        return _Attempt("rejected", f"HTTP {code} {detail}", retry=False)

    def _open(self) -> asyncio.Queue[int]:
        """Create the connection lanes on first use (inside the running event loop)."""
        import httpx2
        import openai

        if not isinstance(self._endpoint, str):
            self.base_url = self._endpoint().rstrip("/")
        n = max(1, self.concurrency)
        per_lane = min(LANE_SIZE, n)
        lanes = math.ceil(n / per_lane)
        timeout = httpx2.Timeout(self.cfg.timeout, connect=min(self.cfg.timeout, 30.0))
        for _ in range(lanes):
            http = httpx2.AsyncClient(timeout=timeout, limits=httpx2.Limits(
                max_connections=per_lane, max_keepalive_connections=per_lane))
            self._lanes.append(openai.AsyncOpenAI(base_url=self.base_url, api_key=self.cfg.api_key(),
                                                  max_retries=0, timeout=timeout, http_client=http))
        slots: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            slots.put_nowait(i % lanes)
        self._slots = slots
        return slots


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    text = f"{type(inner).__name__}: {inner}" if inner is not None else str(exc)
    return text[:200]


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error") or body
    else:
        msg = body or getattr(exc, "message", "")
    return str(msg)[:200]


def _retry_after(headers: Any) -> float | None:
    """Seconds asked by Retry-After (seconds or an HTTP date) or retry-after-ms; None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
