"""A scripted LLM server on 127.0.0.1 for tests: OpenAI chat completions and Anthropic messages.

Real SDKs reach it by base URL (``server.openai_base_url``, ``server.anthropic_base_url``), so a
client is tested through its real HTTP stack. Queue what the next requests get, in order::

    server.script(rate_limit(retry_after=0.2), server_error(), reply("Explanation: dates"))

and when the queue is empty every request gets ``server.responder(request)`` (default: a fixed
text). Faults: 429 with ``Retry-After``, any 5xx, a hang past the client's timeout, malformed
JSON, a dropped connection, a rejected (4xx) request; ``server.latency`` delays every answer.
Every request is recorded (``server.requests``) with its headers and JSON body.

Fixture: ``autointerp_llm_server`` (a started server, stopped after the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

ActionKind = Literal["reply", "rate_limit", "server_error", "hang", "malformed", "drop", "reject"]


@dataclass(frozen=True)
class Action:
    """What the server does with one request."""

    kind: ActionKind
    text: str = ""
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    message: str = ""


def reply(text: str, *, delay: float = 0.0) -> Action:
    """A normal answer with this text (after ``delay`` seconds on top of the server latency)."""
    return Action("reply", text=text, delay=delay)


def rate_limit(retry_after: float | None = 1.0) -> Action:
    """429, with a ``Retry-After`` header (seconds) unless None."""
    return Action("rate_limit", status=429, retry_after=retry_after, message="rate limited")


def server_error(status: int = 500) -> Action:
    return Action("server_error", status=status, message="internal error")


def hang(seconds: float = 3600.0) -> Action:
    """Accept the request and answer nothing for ``seconds`` (a client timeout must fire)."""
    return Action("hang", delay=seconds)


def malformed() -> Action:
    """200 with a truncated JSON body."""
    return Action("malformed")


def drop() -> Action:
    """Close the connection without answering."""
    return Action("drop")


def reject(status: int = 400, message: str = "bad request") -> Action:
    """A non-retryable 4xx with an error body; ``{credentials}`` in ``message`` is replaced by
    the credentials the client sent (a careless server echoing a key)."""
    return Action("reject", status=status, message=message)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    protocol: Literal["openai", "anthropic", "other"]
    at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def prompt_text(self) -> str:
        """System text and every message's text, concatenated (for asserting on prompts)."""
        parts: list[str] = []
        if isinstance(self.body, dict):
            parts += _texts(self.body.get("system"))
        for m in self.messages:
            parts += _texts(m.get("content"))
        return "\n".join(parts)


def _texts(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content if isinstance(b, dict)]


Responder = Callable[[RecordedRequest], "str | Action"]


def _words(text: str) -> int:
    return max(1, len(text.split()))


@dataclass
class ScriptedLLMServer:
    """See the module docstring. ``start()``/``stop()`` or use as a context manager."""

    latency: float = 0.0
    responder: Responder | None = None
    default_text: str = "Explanation: a test feature"
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self._queue: deque[Action] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen_prefixes: set[str] = set()

    # -- control -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def script(self, *actions: Action | str) -> None:
        """Queue actions for the next requests, in arrival order (a str is a reply)."""
        with self._lock:
            self._queue.extend(reply(a) if isinstance(a, str) else a for a in actions)

    @property
    def pending(self) -> int:
        """Scripted actions not used yet."""
        with self._lock:
            return len(self._queue)

    def count(self, protocol: str | None = None) -> int:
        """Requests received (of one protocol)."""
        with self._lock:
            return sum(1 for r in self.requests if protocol in (None, r.protocol))

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.peak_in_flight = 0
            self._seen_prefixes.clear()

    def start(self) -> ScriptedLLMServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port, backlog=4096)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="scripted-llm-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        with contextlib.suppress(RuntimeError):  # loop already closed
            asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
                if not await self._respond(method, path, headers, body, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _respond(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request; False when the connection must be closed."""
        route = path.split("?", 1)[0].rstrip("/")
        protocol: Literal["openai", "anthropic", "other"] = (
            "openai"
            if route.endswith("/chat/completions")
            else "anthropic"
            if route.endswith("/messages")
            else "other"
        )
        if method == "GET" and route.endswith("/models"):
            await self._send(writer, 200, {"object": "list", "data": [{"id": "scripted"}]})
            return True
        if method != "POST" or protocol == "other":
            await self._send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        request = RecordedRequest(method, path, headers, body, protocol, time.monotonic())
        with self._lock:
            self.requests.append(request)
            action = self._queue.popleft() if self._queue else None
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if action is None:
                answer = (self.responder or (lambda _r: self.default_text))(request)
                action = reply(answer) if isinstance(answer, str) else answer
            if self.latency:
                await asyncio.sleep(self.latency)
            if action.delay:
                await asyncio.sleep(action.delay)
            if action.kind == "hang":
                return False
            if action.kind == "drop":
                writer.transport.abort()
                return False
            if action.kind == "malformed":
                await self._send(writer, 200, b'{"id": "broken", "choices": [{"mess')
                return True
            if action.kind == "reply":
                await self._send(writer, 200, self._completion(request, action.text))
                return True
            extra = {}
            if action.retry_after is not None:
                extra["retry-after"] = f"{action.retry_after:g}"
            await self._send(writer, action.status, _error_body(request, action), extra)
            return True
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        head = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            "content-type: application/json",
            f"content-length: {len(data)}",
            "connection: keep-alive",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()

    # -- protocol bodies -----------------------------------------------------------------------

    def _completion(self, request: RecordedRequest, text: str) -> dict[str, Any]:
        body = request.body if isinstance(request.body, dict) else {}
        model = str(body.get("model", "scripted"))
        prompt_tokens = _words(request.prompt_text)
        completion_tokens = _words(text)
        if request.protocol == "anthropic":
            cached = self._anthropic_cached_tokens(body)
            return {
                "id": f"msg_{len(self.requests)}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": prompt_tokens - cached,
                    "cache_read_input_tokens": cached,
                    "cache_creation_input_tokens": 0,
                    "output_tokens": completion_tokens,
                },
            }
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
            "logprobs": None,
        }
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            pieces = [w + " " for w in text.split(" ")] if text else []
            choice["logprobs"] = {
                "content": [
                    {
                        "token": piece,
                        "logprob": -0.1,
                        "bytes": None,
                        "top_logprobs": [
                            {
                                "token": piece if j == 0 else f"alt{j}",
                                "logprob": -0.1 - j,
                                "bytes": None,
                            }
                            for j in range(k)
                        ],
                    }
                    for piece in pieces
                ]
            }
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }

    def _anthropic_cached_tokens(self, body: dict[str, Any]) -> int:
        """Simulate prompt caching: text up to a ``cache_control`` mark seen before is cached."""
        prefix: list[str] = []
        marked = ""
        blocks: list[Any] = []
        system = body.get("system")
        blocks += [system] if isinstance(system, str) else list(system or [])
        for m in body.get("messages", []):
            content = m.get("content")
            blocks += [content] if isinstance(content, str) else list(content or [])
        for block in blocks:
            prefix += _texts(block) if not isinstance(block, dict) else [block.get("text", "")]
            if isinstance(block, dict) and block.get("cache_control"):
                marked = "\n".join(prefix)
        if not marked:
            return 0
        with self._lock:
            hit = marked in self._seen_prefixes
            self._seen_prefixes.add(marked)
        return _words(marked) if hit else 0


def _error_body(request: RecordedRequest, action: Action) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 400: "invalid_request_error", 401: "authentication_error"}
    err_type = kind.get(action.status, "api_error")
    # ``{credentials}`` echoes what the client sent, as careless servers do: tests of redaction
    sent = request.headers.get("authorization") or request.headers.get("x-api-key", "")
    message = action.message.replace("{credentials}", sent)
    if request.protocol == "anthropic":
        return {"type": "error", "error": {"type": err_type, "message": message}}
    return {"error": {"message": message, "type": err_type, "code": None, "param": None}}


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@pytest.fixture
def autointerp_llm_server() -> Iterator[ScriptedLLMServer]:
    """A started :class:`ScriptedLLMServer` on 127.0.0.1 (OpenAI and Anthropic protocols)."""
    server = ScriptedLLMServer().start()
    try:
        yield server
    finally:
        server.stop()
