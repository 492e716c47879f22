"""The ``anthropic-batch`` client: Anthropic's Message Batches API (half the price, answers
within 24 h).

A batch is ``POST /v1/messages/batches`` with ``{"requests": [{"custom_id", "params"}]}``;
``GET /v1/messages/batches/{id}`` is polled until ``processing_status`` is ``ended``, then the
JSONL at its ``results_url`` gives each request's ``result`` (``succeeded``, ``errored``,
``canceled`` or ``expired``). The ``custom_id`` is the request's cache hash (64 hex characters,
the API's limit). Queueing, polling, resubmission and bookkeeping are
:class:`autointerp.llm_batch.BatchBackend`'s; request bodies (prompt-cache breakpoints included)
and answers are the live client's (:class:`autointerp_anthropic.client.AnthropicClient`).
"""

from __future__ import annotations

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
    namespace,
)
from autointerp.store import LLMBatch
from autointerp_anthropic.client import AnthropicClient
from autointerp_anthropic.plugin import AnthropicBatchConfig

API_VERSION = "2023-06-01"
#: error types of an errored request that another batch may well answer
TRANSIENT_ERRORS = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})


class AnthropicBatchClient(BatchBackend):
    """An :class:`autointerp.llm.LLMBackend` submitting messages requests in batches."""

    def __init__(self, config: AnthropicBatchConfig, *, name: str = "anthropic-batch") -> None:
        super().__init__()
        self.config = config
        self.name = name
        self.model = config.model
        self.live = AnthropicClient(config)
        self.base_url = self.live.base_url
        self.endpoint = f"{name}:{self.base_url}"
        self.live_pricing = self.live.pricing
        self._key = resolve_api_key(config.api_key_env, config.keys_file, provider=name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self._key.reveal(), "anthropic-version": API_VERSION}

    def request_body(self, messages: Sequence[Message], params: SamplingParams) -> dict[str, Any]:
        return self.live.request_body(messages, params)

    async def create_batch(self, items: Sequence[tuple[str, dict[str, Any]]]) -> BatchStatus:
        created = await self.http_json(
            "POST",
            f"{self.base_url}/v1/messages/batches",
            what="creating a batch",
            idempotent=False,
            json={"requests": [{"custom_id": key, "params": body} for key, body in items]},
        )
        return self._status(created)

    async def get_batch(self, batch: LLMBatch) -> BatchStatus:
        data = await self.http_json(
            "GET",
            f"{self.base_url}/v1/messages/batches/{batch.id}",
            what=f"polling batch {batch.id}",
        )
        return self._status(data)

    async def cancel_batch(self, batch: LLMBatch) -> None:
        await self.http(
            "POST",
            f"{self.base_url}/v1/messages/batches/{batch.id}/cancel",
            what=f"cancelling {batch.id}",
        )

    async def batch_results(self, batch: LLMBatch) -> dict[str, ChatResponse | ItemFailure]:
        url = batch.meta.get("results_url") or (
            f"{self.base_url}/v1/messages/batches/{batch.id}/results"
        )
        what = f"reading the results of batch {batch.id}"
        response = await self.http("GET", url, what=what)
        out: dict[str, ChatResponse | ItemFailure] = {}
        for item in jsonl(response.content, what, self.name):
            key, result = item.get("custom_id"), item.get("result")
            if isinstance(key, str) and isinstance(result, dict):
                out[key] = self._item(key, result)
        return out

    def _item(self, key: str, result: dict[str, Any]) -> ChatResponse | ItemFailure:
        kind = result.get("type")
        if kind == "succeeded" and isinstance(result.get("message"), dict):
            try:
                return self.live._parse(namespace(result["message"]))
            except (LLMError, AttributeError, TypeError, ValueError) as exc:
                return fail_malformed(self.name, key, exc)
        if kind == "errored":
            error = result.get("error") or {}
            inner = error.get("error") if isinstance(error.get("error"), dict) else error
            etype = inner.get("type", "error")
            return ItemFailure(
                f"errored: {etype}: {inner.get('message', '')}",
                retryable=etype in TRANSIENT_ERRORS,
            )
        return ItemFailure(str(kind or "no result"), retryable=True)  # canceled, expired

    def _status(self, data: dict[str, Any]) -> BatchStatus:
        batch_id, status = data.get("id"), data.get("processing_status")
        if not isinstance(batch_id, str) or not isinstance(status, str):
            raise MalformedResponseError(f"{self.name}: message batch without id or status")
        meta: dict[str, Any] = {"request_counts": data.get("request_counts") or {}}
        if data.get("results_url"):
            meta["results_url"] = data["results_url"]
        return BatchStatus(id=batch_id, status=status, ended=status == "ended", meta=meta)
