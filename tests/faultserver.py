"""A scripted OpenAI-compatible chat server on loopback that injects faults.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for the `openai` client:
`POST /v1/chat/completions` and `GET /v1/models`. A script decides, per request, what happens:
an answer, a timeout, a status code (429 with Retry-After, 500, ...), a malformed JSON body, a
dropped connection or a slow trickle. Every request is logged, so tests can assert on what the
client sent (and did not send again).

    with FaultServer(script=fail_first(2, Action("status", status=500))) as server:
        ... point the client at server.url ...
        assert server.count() == ...

Run it alone as an instant server (for benchmarks): `python tests/faultserver.py --port 8000`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Action:
    """What the server does with one request.

    kind: ok | timeout (answers after `delay`, long after the client gave up) | status (error `status`
    with optional `retry_after` seconds) | malformed (200 with a broken JSON body) | drop (close the
    connection without answering) | slow (send the answer a few bytes at a time over `delay` s) |
    empty (200 with no choices).
    """

    kind: str = "ok"
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    content: str | None = None
    reasoning: str | None = None
    finish_reason: str = "stop"


@dataclass
class Logged:
    """One request as the server saw it."""

    body: dict[str, Any]
    action: str
    at: float
    attempt: int  # 1 for the first time this (messages, seed, model) was seen

    @property
    def ident(self) -> str:
        return request_ident(self.body)


def request_ident(body: dict[str, Any]) -> str:
    return json.dumps([body.get("model"), body.get("messages"), body.get("seed"), body.get("temperature"),
                       body.get("max_tokens")], sort_keys=True)


Script = Callable[[dict[str, Any], int], Action]


def always_ok(body: dict[str, Any], attempt: int) -> Action:
    return Action()


def fail_first(n: int, action: Action) -> Script:
    """Each distinct request fails `n` times with `action`, then succeeds."""

    def script(body: dict[str, Any], attempt: int) -> Action:
        return action if attempt <= n else Action()

    return script


def default_answer(body: dict[str, Any]) -> tuple[str, str | None]:
    """A deterministic answer that names the request's seed, with a <think> block."""
    seed = body.get("seed")
    last = (body.get("messages") or [{}])[-1].get("content", "")
    text = f"<think>The user asked {len(str(last))} characters; seed {seed}.</think>The answer is \\boxed{{{seed}}}."
    return text, None


@dataclass
class FaultServer:
    script: Script = always_ok
    delay: float = 0.0  # seconds before every answer (simulates generation time)
    host: str = "127.0.0.1"
    port: int = 0
    answer: Callable[[dict[str, Any]], tuple[str, str | None]] = default_answer
    log: list[Logged] = field(default_factory=list)
    keep_log: bool = True  # False for benchmarks: attempts and the log are not recorded

    def __post_init__(self) -> None:
        self._attempts: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0  # most chat requests the server was working on at once

    # ---- lifecycle ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self._run, name="faultserver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, self.host, self.port, backlog=1024))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # ---- queries for tests ----------------------------------------------------------------
    def chat_requests(self) -> list[Logged]:
        with self._lock:
            return [r for r in self.log if r.action != "models"]

    def count(self) -> int:
        return len(self.chat_requests())

    def answered(self) -> list[Logged]:
        return [r for r in self.chat_requests() if r.action in ("ok", "slow")]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    # ---- HTTP -----------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                if not await self._respond(method, path, raw, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # a client that hung up, or the server stopping
        finally:
            writer.close()

    async def _respond(self, method: str, path: str, raw: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False closes the connection."""
        if method == "GET" and path.rstrip("/").endswith("/models"):
            self._send(writer, 200, {"object": "list", "data": [{"id": "fault", "object": "model"}]})
            return True
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            self._send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        body = json.loads(raw or b"{}")
        if self.keep_log:
            ident = request_ident(body)
            with self._lock:
                self._attempts[ident] += 1
                attempt = self._attempts[ident]
            action = self.script(body, attempt)
            with self._lock:
                self.log.append(Logged(body, action.kind, time.time(), attempt))
        else:
            action = self.script(body, 1)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            return await self._act(action, body, writer)
        finally:
            self.inflight -= 1

    async def _act(self, action: Action, body: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        if self.delay:
            await asyncio.sleep(self.delay)
        kind = action.kind
        if kind == "drop":
            return False
        if kind == "timeout":
            await asyncio.sleep(action.delay or 30)
            return False
        if kind == "status":
            extra = {"retry-after": f"{action.retry_after:g}"} if action.retry_after is not None else {}
            self._send(writer, action.status, {"error": {"message": f"injected {action.status}",
                                                         "type": "injected"}}, extra)
            await writer.drain()
            return True
        if kind == "malformed":
            self._send_raw(writer, 200, b'{"id": "x", "choices": [{"message": {"content": "cut', {})
            await writer.drain()
            return True
        if kind == "empty":
            self._send(writer, 200, {"id": "x", "object": "chat.completion", "model": body.get("model"),
                                     "choices": []})
            await writer.drain()
            return True
        payload = self.completion(body, action)
        if kind == "slow":
            data = json.dumps(payload).encode()
            writer.write(_head(200, len(data), {}))
            step = max(1, len(data) // 20)
            for i in range(0, len(data), step):
                writer.write(data[i:i + step])
                await writer.drain()
                await asyncio.sleep((action.delay or 1.0) / 20)
            return True
        self._send(writer, 200, payload)
        await writer.drain()
        return True

    def completion(self, body: dict[str, Any], action: Action) -> dict[str, Any]:
        if action.content is not None:
            content, reasoning = action.content, action.reasoning
        else:
            content, reasoning = self.answer(body)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
        completion_tokens = len(content.split()) + len((reasoning or "").split())
        return {"id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fault"),
                "choices": [{"index": 0, "message": message, "finish_reason": action.finish_reason}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def _send(self, writer: asyncio.StreamWriter, status: int, payload: Any,
              headers: dict[str, str] | None = None) -> None:
        self._send_raw(writer, status, json.dumps(payload).encode(), headers or {})

    @staticmethod
    def _send_raw(writer: asyncio.StreamWriter, status: int, data: bytes, headers: dict[str, str]) -> None:
        writer.write(_head(status, len(data), headers) + data)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def _head(status: int, length: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "content-type: application/json",
             f"content-length: {length}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description="an instant OpenAI-compatible server on loopback")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()
    server = FaultServer(port=args.port, delay=args.delay, keep_log=False).start()
    print(server.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
