"""The ``openai-batch`` client: OpenAI's Batch API (half the price, answers within 24 h), or any
server implementing ``/v1/files`` and ``/v1/batches`` at ``base_url``.

Each batch is a JSONL file of ``{custom_id, method, url, body}`` lines uploaded with
``purpose=batch`` and submitted with ``POST /batches``; ``GET /batches/{id}`` is polled until the
batch is ``completed``, ``expired``, ``failed`` or ``cancelled``, then its output and error files
are read. The ``custom_id`` is the request's cache hash. Queueing, polling, resubmission and
bookkeeping are :class:`autointerp.llm_batch.BatchBackend`'s; request bodies and answers are
the live client's (:class:`autointerp_openai.client.OpenAIClient`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from autointerp.llm import (
    ChatResponse,
    LLMError,
    MalformedResponseError,
    Message,
    SamplingParams,
    resolve_api_key,
)
from autointerp.llm_batch import (
    BatchBackend,
    BatchStatus,
    ItemFailure,
    fail_malformed,
    jsonl,
)
from autointerp.store import LLMBatch
from autointerp_openai.client import NO_KEY, OpenAIClient
from autointerp_openai.plugin import OpenAIBatchConfig

#: statuses after which a batch's files are final
ENDED = frozenset({"completed", "expired", "failed", "cancelled"})


class OpenAIBatchClient(BatchBackend):
    """An :class:`autointerp.llm.LLMBackend` submitting chat completions in batches."""

    def __init__(self, config: OpenAIBatchConfig, *, name: str = "openai-batch") -> None:
        super().__init__()
        self.config = config
        self.name = name
        self.model = config.model
        self.live = OpenAIClient(config, name=name)
        self.base_url = self.live.base_url
        self.endpoint = f"{name}:{self.base_url}"
        self.live_pricing = self.live.pricing
        try:
            key = resolve_api_key(config.api_key_env, config.keys_file, provider=name).reveal()
        except LLMError:
            if config.require_api_key:
                raise
            key = NO_KEY
        self._authorization = f"Bearer {key}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def headers(self) -> dict[str, str]:
        return {"authorization": self._authorization}

    def request_body(self, messages: Sequence[Message], params: SamplingParams) -> dict[str, Any]:
        body = self.live.request_body(messages, params)
        body.update(self.config.extra_body)
        return body

    async def create_batch(self, items: Sequence[tuple[str, dict[str, Any]]]) -> BatchStatus:
        lines = "".join(
            json.dumps(
                {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body},
                ensure_ascii=False,
            )
            + "\n"
            for key, body in items
        ).encode("utf-8")
        uploaded = await self.http_json(
            "POST",
            f"{self.base_url}/files",
            what="uploading a batch file",
            files={"file": ("autointerp-batch.jsonl", lines, "application/jsonl")},
            data={"purpose": "batch"},
        )
        file_id = uploaded.get("id")
        if not isinstance(file_id, str):
            raise MalformedResponseError(f"{self.name}: uploaded batch file without an id")
        created = await self.http_json(
            "POST",
            f"{self.base_url}/batches",
            what="creating a batch",
            idempotent=False,
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": self.config.completion_window,
                "metadata": {"client": "autointerp"},
            },
        )
        return self._status(created)

    async def get_batch(self, batch: LLMBatch) -> BatchStatus:
        data = await self.http_json(
            "GET", f"{self.base_url}/batches/{batch.id}", what=f"polling batch {batch.id}"
        )
        return self._status(data)

    async def cancel_batch(self, batch: LLMBatch) -> None:
        await self.http(
            "POST", f"{self.base_url}/batches/{batch.id}/cancel", what=f"cancelling {batch.id}"
        )

    async def batch_results(self, batch: LLMBatch) -> dict[str, ChatResponse | ItemFailure]:
        out: dict[str, ChatResponse | ItemFailure] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            what = f"reading file {file_id} of batch {batch.id}"
            response = await self.http("GET", f"{self.base_url}/files/{file_id}/content", what=what)
            for item in jsonl(response.content, what, self.name):
                key = item.get("custom_id")
                if isinstance(key, str):
                    out[key] = self._item(key, item)
        return out

    def _item(self, key: str, item: dict[str, Any]) -> ChatResponse | ItemFailure:
        response = item.get("response") or {}
        code = response.get("status_code")
        body = response.get("body")
        if code == 200 and isinstance(body, dict):
            try:
                return self.live._parse(body)  # the live client parses the JSON body
            except (LLMError, AttributeError, TypeError, ValueError) as exc:
                return fail_malformed(self.name, key, exc)
        error = item.get("error")
        if isinstance(error, dict):  # the request never ran: batch_expired, batch_cancelled ...
            return ItemFailure(f"{error.get('code')}: {error.get('message')}", retryable=True)
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        retryable = not isinstance(code, int) or code in (408, 409, 429) or code >= 500
        return ItemFailure(f"HTTP {code}: {message or 'no message'}", retryable=retryable)

    def _status(self, data: dict[str, Any]) -> BatchStatus:
        batch_id, status = data.get("id"), data.get("status")
        if not isinstance(batch_id, str) or not isinstance(status, str):
            raise MalformedResponseError(f"{self.name}: batch object without id or status")
        errors = (data.get("errors") or {}).get("data") or []
        detail = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
        return BatchStatus(
            id=batch_id,
            status=status,
            ended=status in ENDED,
            input_file_id=data.get("input_file_id"),
            output_file_id=data.get("output_file_id"),
            error_file_id=data.get("error_file_id"),
            meta={"request_counts": data.get("request_counts") or {}},
            detail=detail[:500],
        )
