"""A batch-API server on 127.0.0.1 for tests: OpenAI's Batch API and Anthropic's Message Batches.

OpenAI: ``POST /v1/files`` (multipart, ``purpose=batch``), ``POST /v1/batches``,
``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``GET /v1/files/{id}/content``.
Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
``POST .../cancel``, ``GET .../results``. Every chat request is answered with
``server.responder(item)`` (default: ``"answer to: <last user text>"``) and word-count usage.

Each new batch follows the next planned behaviour (``server.plan(...)``), else :func:`completes`:
it stays in progress for ``polls`` status polls, then ends as planned — completed, expired with
some requests unanswered, partly failed (transient 5xx / ``api_error``, or rejected 4xx /
``invalid_request_error``), failed validation, or never. ``server.calls`` records every HTTP
call; ``server.batches`` every batch with its items.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest

Outcome = Literal["complete", "expire", "fail_some", "reject_some", "fail", "never"]


@dataclass(frozen=True)
class Behaviour:
    """How one batch goes: ``polls`` polls in progress, then ``outcome`` for its first ``bad``
    requests (in submission order); the others are answered."""

    outcome: Outcome = "complete"
    polls: int = 1
    bad: int = 0


def completes(polls: int = 1) -> Behaviour:
    return Behaviour("complete", polls)


def expires(bad: int, polls: int = 1) -> Behaviour:
    """The batch expires with its first ``bad`` requests unanswered."""
    return Behaviour("expire", polls, bad)


def fails_some(bad: int, polls: int = 1) -> Behaviour:
    """The first ``bad`` requests fail with a server error (worth retrying)."""
    return Behaviour("fail_some", polls, bad)


def rejects_some(bad: int, polls: int = 1) -> Behaviour:
    """The first ``bad`` requests are rejected as invalid (not worth retrying)."""
    return Behaviour("reject_some", polls, bad)


def fails_validation(polls: int = 1) -> Behaviour:
    """The whole batch fails (OpenAI: validation; Anthropic: every request errors)."""
    return Behaviour("fail", polls)


def never_ends() -> Behaviour:
    return Behaviour("never", 0)


@dataclass
class BatchItem:
    """One request of a batch: its ``custom_id`` and chat body (OpenAI or Anthropic shape)."""

    custom_id: str
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        """The text of the last message."""
        content = self.body["messages"][-1]["content"]
        if isinstance(content, list):
            return "".join(b.get("text", "") for b in content)
        return str(content)


@dataclass
class ServerBatch:
    id: str
    protocol: Literal["openai", "anthropic"]
    items: list[BatchItem]
    behaviour: Behaviour
    status: str
    polls: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False

    @property
    def custom_ids(self) -> list[str]:
        return [i.custom_id for i in self.items]


class BatchServer:
    """The server; use as a context manager (``with BatchServer() as server``)."""

    def __init__(self) -> None:
        self.responder: Callable[[BatchItem], str] = lambda item: f"answer to: {item.prompt}"
        self.calls: list[tuple[str, str]] = []
        self.batches: dict[str, ServerBatch] = {}
        self.files: dict[str, bytes] = {}
        self.headers: list[dict[str, str]] = []
        self._plans: deque[Behaviour] = deque()
        self._faults: deque[int] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- the test's side -------------------------------------------------------------------------

    def plan(self, *behaviours: Behaviour) -> None:
        """How the next batches go, in order of creation."""
        self._plans.extend(behaviours)

    def fail_next(self, *statuses: int) -> None:
        """Answer the next HTTP calls with these error statuses (e.g. 500, 429)."""
        self._faults.extend(statuses)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def created(self) -> list[ServerBatch]:
        """The batches created so far, oldest first."""
        with self._lock:
            return list(self.batches.values())

    def start(self) -> BatchServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._serve(self, "GET")

            def do_POST(self) -> None:
                server._serve(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> BatchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path.split("?")[0]
        with self._lock:
            self.calls.append((method, path))
            self.headers.append({k.lower(): v for k, v in handler.headers.items()})
            fault = self._faults.popleft() if self._faults else None
            if fault is not None:
                status, body = fault, {"error": {"message": "injected fault", "type": "fault"}}
            elif not (handler.headers.get("authorization") or handler.headers.get("x-api-key")):
                status, body = 401, {"error": {"message": "no credentials", "type": "auth"}}
            else:
                try:
                    status, body = self._route(method, path, raw, handler.headers)
                except (KeyError, ValueError) as exc:
                    status, body = 400, {"error": {"message": f"bad request: {exc}"}}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method: str, path: str, raw: bytes, headers: Any) -> tuple[int, Any]:
        if method == "POST" and path == "/v1/files":
            return 200, self._upload(raw, headers.get("content-type", ""))
        if method == "POST" and path == "/v1/batches":
            return 200, self._create_openai(json.loads(raw))
        if method == "POST" and path == "/v1/messages/batches":
            return 200, self._create_anthropic(json.loads(raw))
        if m := re.fullmatch(r"/v1/files/([^/]+)/content", path):
            return (200, self.files[m[1]]) if m[1] in self.files else (404, _err("no such file"))
        if m := re.fullmatch(r"/v1(/messages)?/batches/([^/]+)(/cancel|/results)?", path):
            batch = self.batches.get(m[2])
            if batch is None:
                return 404, _err(f"no batch {m[2]}")
            if m[3] == "/cancel":
                batch.cancelled = True
                self._end(batch)
            elif m[3] == "/results":
                if batch.protocol != "anthropic" or not batch.results:
                    return 404, _err("no results yet")
                return 200, _jsonl(batch.results)
            else:
                self._advance(batch)
            return 200, self._object(batch)
        return 404, _err(f"no route {method} {path}")

    def _upload(self, raw: bytes, content_type: str) -> dict[str, Any]:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"content-type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        fields = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
        if fields.get("purpose") != b"batch" or not fields.get("file"):
            raise ValueError("a batch file needs purpose=batch and a file")
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = fields["file"]
        return {"id": file_id, "object": "file", "purpose": "batch", "bytes": len(fields["file"])}

    def _new(self, protocol: Literal["openai", "anthropic"], items: list[BatchItem]) -> ServerBatch:
        prefix = "batch_" if protocol == "openai" else "msgbatch_"
        batch_id = f"{prefix}{next(self._ids)}_{id(items) % 10_000}"
        behaviour = self._plans.popleft() if self._plans else completes()
        status = "validating" if protocol == "openai" else "in_progress"
        batch = self.batches[batch_id] = ServerBatch(batch_id, protocol, items, behaviour, status)
        return batch

    def _create_openai(self, request: dict[str, Any]) -> dict[str, Any]:
        text = self.files[request["input_file_id"]].decode()
        items = []
        for line in text.splitlines():
            entry = json.loads(line)
            if entry["method"] != "POST" or entry["url"] != request["endpoint"]:
                raise ValueError(f"line {entry['custom_id']}: wrong method or url")
            items.append(BatchItem(entry["custom_id"], entry["body"]))
        return self._object(self._new("openai", items))

    def _create_anthropic(self, request: dict[str, Any]) -> dict[str, Any]:
        items = [BatchItem(r["custom_id"], r["params"]) for r in request["requests"]]
        return self._object(self._new("anthropic", items))

    def _advance(self, batch: ServerBatch) -> None:
        """One status poll: in progress for ``polls`` polls, then the planned end."""
        if batch.results or batch.status in ("failed", "completed", "expired", "ended"):
            return
        batch.polls += 1
        if batch.behaviour.outcome == "never" or batch.polls <= batch.behaviour.polls:
            batch.status = "in_progress"
            return
        self._end(batch)

    def _end(self, batch: ServerBatch) -> None:
        b = batch.behaviour
        if batch.protocol == "openai" and b.outcome == "fail" and not batch.cancelled:
            batch.status = "failed"
            return
        outputs, errors, anthropic = [], [], []
        for n, item in enumerate(batch.items):
            bad = n < b.bad or b.outcome == "fail"
            kind = "canceled" if batch.cancelled else ("answer" if not bad else b.outcome)
            if kind == "answer":
                text = self.responder(item)
                if batch.protocol == "openai":
                    outputs.append(_openai_line(item, 200, _completion(item, text)))
                else:
                    message = _message(item, text)
                    anthropic.append(
                        _anthropic_line(item, {"type": "succeeded", "message": message})
                    )
            elif kind in ("expire", "canceled"):
                code = "batch_expired" if kind == "expire" else "batch_cancelled"
                error = {"code": code, "message": f"request {code[6:]}"}
                errors.append({"custom_id": item.custom_id, "response": None, "error": error})
                kind_a = "expired" if kind == "expire" else "canceled"
                anthropic.append(_anthropic_line(item, {"type": kind_a}))
            else:
                transient = kind in ("fail_some", "fail")
                status, etype = (500, "api_error") if transient else (400, "invalid_request_error")
                body = {"error": {"message": f"{etype} for this request", "type": etype}}
                errors.append(_openai_line(item, status, body))
                failure = {"type": "error", "error": {"type": etype, "message": "request failed"}}
                anthropic.append(_anthropic_line(item, {"type": "errored", "error": failure}))
        if batch.protocol == "anthropic":
            batch.results = anthropic
            batch.status = "ended"
            return
        for rows, attr in ((outputs, "output_file_id"), (errors, "error_file_id")):
            if rows:
                file_id = f"file-{next(self._ids)}"
                self.files[file_id] = _jsonl(rows)
                setattr(batch, attr, file_id)
        batch.results = outputs + errors
        if batch.cancelled:
            batch.status = "cancelled"
        else:
            batch.status = "expired" if b.outcome == "expire" else "completed"

    def _object(self, batch: ServerBatch) -> dict[str, Any]:
        total = len(batch.items)
        if batch.protocol == "openai":
            failed = 0 if not batch.results else total - sum(
                1 for r in batch.results if (r.get("response") or {}).get("status_code") == 200
            )  # fmt: skip
            errors = None
            if batch.status == "failed":
                errors = {"object": "list", "data": [{"code": "invalid", "message": "invalid"}]}
            return {
                "id": batch.id,
                "object": "batch",
                "endpoint": "/v1/chat/completions",
                "status": batch.status,
                "input_file_id": "file-input",
                "output_file_id": batch.output_file_id,
                "error_file_id": batch.error_file_id,
                "completion_window": "24h",
                "errors": errors,
                "request_counts": {"total": total, "completed": total - failed, "failed": failed},
            }
        counts = {"processing": 0 if batch.results else total, "succeeded": 0, "errored": 0,
                  "canceled": 0, "expired": 0}  # fmt: skip
        for r in batch.results:
            counts[r["result"]["type"]] += 1
        ended = batch.status == "ended"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


def _err(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "not_found"}}


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _words(body: dict[str, Any]) -> int:
    text = json.dumps([body.get("system"), body["messages"]])
    return len(re.findall(r"\w+", text))


def _completion(item: BatchItem, text: str) -> dict[str, Any]:
    prompt, completion = _words(item.body), len(text.split())
    return {
        "id": f"chatcmpl-{item.custom_id[:8]}",
        "object": "chat.completion",
        "model": item.body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _message(item: BatchItem, text: str) -> dict[str, Any]:
    return {
        "id": f"msg_{item.custom_id[:8]}",
        "type": "message",
        "role": "assistant",
        "model": item.body.get("model", ""),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": _words(item.body),
            "output_tokens": len(text.split()),
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }


def _openai_line(item: BatchItem, status: int, body: dict[str, Any]) -> dict[str, Any]:
    response = {"status_code": status, "request_id": f"req_{item.custom_id[:8]}", "body": body}
    return {"id": f"batch_req_{item.custom_id[:8]}", "custom_id": item.custom_id,
            "response": response, "error": None}  # fmt: skip


def _anthropic_line(item: BatchItem, result: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": item.custom_id, "result": result}


@pytest.fixture
def autointerp_batch_server() -> Iterator[BatchServer]:
    """A started :class:`BatchServer`, stopped after the test."""
    with BatchServer() as server:
        yield server
