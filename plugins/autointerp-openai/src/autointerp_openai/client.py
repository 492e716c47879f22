"""The OpenAI chat-completions backend (also for any OpenAI-compatible server).

One attempt per call; retries, limits, cache and ledger are :class:`autointerp.llm.LLMClient`'s.
Requests go over :mod:`autointerp_openai.http` (a lean HTTP/1.1 client: the SDK's request and
response handling cost most of the client's CPU per call), or through the ``openai`` SDK where a
proxy applies or the config asks for it (``transport``). Either way the JSON body is parsed here,
and the SDK's own retries are off so that no request is ever sent twice behind our back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from autointerp import fastjson
from autointerp.llm import (
    ChatResponse,
    LLMConnectionError,
    LLMError,
    MalformedResponseError,
    Message,
    PerLoop,
    Pricing,
    SamplingParams,
    Secret,
    TokenLogprob,
    http_error,
    protect_loggers,
    resolve_api_key,
    sdk_errors,
    timeout_error,
)
from autointerp_openai.http import HTTPConnectionError, HTTPTimeout, Origin, proxy_for
from autointerp_openai.plugin import OpenAIConfig

if TYPE_CHECKING:
    from openai import AsyncOpenAI

#: USD per million tokens (prompt, cached prompt, completion); override in the config.
PRICES: dict[str, Pricing] = {
    "gpt-4o-mini": Pricing(0.15, 0.075, 0.60),
    "gpt-4o": Pricing(2.50, 1.25, 10.00),
    "gpt-4.1-nano": Pricing(0.10, 0.025, 0.40),
    "gpt-4.1-mini": Pricing(0.40, 0.10, 1.60),
    "gpt-4.1": Pricing(2.00, 0.50, 8.00),
}
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: sent when the server needs no key (the SDK insists on some value)
NO_KEY = "no-key-needed"


def compatible(config: OpenAIConfig) -> OpenAIClient:
    """The factory of ``openai-compatible``: same protocol, its own cache and ledger label."""
    return OpenAIClient(config, name="openai-compatible")


class OpenAIClient:
    """An :class:`autointerp.llm.LLMBackend` for the chat-completions protocol."""

    def __init__(self, config: OpenAIConfig, *, name: str = "openai") -> None:
        self.config = config
        self.name = name
        self.model = config.model
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.endpoint = f"{name}:{self.base_url}"
        table = PRICES if config.base_url is None else {}  # a self-hosted model costs nothing
        self.pricing = Pricing.resolve(config, table, self.model)
        protect_loggers("openai", "httpx2", "httpx")
        self._key = self._resolve_key()
        self._sdk: PerLoop[AsyncOpenAI] = PerLoop()
        self._origins: PerLoop[Origin] = PerLoop()
        #: talk HTTP directly (else through the SDK, which honours proxies)
        self.direct = self.base_url.startswith(("http://", "https://")) and (
            config.transport == "direct"
            or (config.transport == "auto" and proxy_for(self.base_url) is None)
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def _resolve_key(self) -> Secret:
        try:
            return resolve_api_key(
                self.config.api_key_env, self.config.keys_file, provider=self.name
            )
        except LLMError:
            if self.config.require_api_key:
                raise
            return Secret(NO_KEY)

    def check(self) -> None:
        """The key was resolved when this client was built; nothing else to check offline."""

    def _client(self) -> AsyncOpenAI:
        return self._sdk.get(self._new_client)

    def _new_client(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self._key.reveal(),
            base_url=self.base_url,
            max_retries=0,
            timeout=self.config.timeout_s,
        )

    def _new_origin(self) -> Origin:
        return Origin(
            self.base_url,
            {
                "Authorization": f"Bearer {self._key.reveal()}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "autointerp-openai",
            },
        )

    async def aclose(self) -> None:
        await self._sdk.aclose()
        await self._origins.aclose()

    def request_body(self, messages: Sequence[Message], params: SamplingParams) -> dict[str, Any]:
        """The JSON body of a chat-completions request (a fresh dict per request)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": params.temperature,
            self.config.max_tokens_field: params.max_tokens,
        }
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.logprobs and self.config.logprobs:
            body["logprobs"] = True
            if params.top_logprobs:
                body["top_logprobs"] = params.top_logprobs
        if params.json_schema is not None and self.config.json_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "schema": dict(params.json_schema),
                    "strict": True,
                },
            }
        return body

    async def complete(
        self, messages: Sequence[Message], params: SamplingParams, *, timeout: float
    ) -> ChatResponse:
        body = self.request_body(messages, params)
        if self.direct:
            body.update(self.config.extra_body)
            raw = await self._post(fastjson.dumps(body).encode(), timeout)
        else:
            raw = await self._post_sdk(body, timeout)
        try:
            data = fastjson.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(
                f"{self.name}: malformed response: {type(exc).__name__}: {exc}"
            ) from None
        return self._parse(data)

    async def _post(self, body: bytes, timeout: float) -> bytes:
        origin = self._origins.get(self._new_origin)
        try:
            reply = await origin.post("/chat/completions", body, timeout=timeout)
        except HTTPTimeout as exc:
            raise timeout_error(self.name, timeout, where=exc.where) from None
        except HTTPConnectionError as exc:
            raise LLMConnectionError(f"{self.name}: connection failed: {exc}") from None
        if reply.status >= 300:
            raise http_error(
                self.name, reply.status, _error_message(reply.status, reply.body), reply.headers
            )
        return reply.body

    async def _post_sdk(self, body: dict[str, Any], timeout: float) -> bytes:
        import openai

        extra = dict(self.config.extra_body) or None
        with sdk_errors(self.name, openai, timeout):
            raw = await self._client().chat.completions.with_raw_response.create(
                **body, extra_body=extra, timeout=timeout
            )
            return await raw.http_response.aread()

    def _parse(self, data: Any) -> ChatResponse:
        try:
            return self._parse_body(data)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise MalformedResponseError(
                f"{self.name}: malformed response: {type(exc).__name__}: {exc}"
            ) from None

    def _parse_body(self, data: Any) -> ChatResponse:
        choices = data.get("choices") if isinstance(data, Mapping) else None
        if not choices or not isinstance(choices, list):
            raise MalformedResponseError(f"{self.name}: response without choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            raise MalformedResponseError(f"{self.name}: response choice without a message")
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        logprobs = None
        content = (choice.get("logprobs") or {}).get("content")
        if content:
            logprobs = tuple(
                [
                    TokenLogprob(
                        t["token"],
                        float(t["logprob"]),
                        tuple(
                            [(a["token"], float(a["logprob"])) for a in t.get("top_logprobs") or ()]
                        ),
                    )
                    for t in content
                ]
            )
        return ChatResponse(
            text=message.get("content") or "",
            model=data.get("model") or self.model,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=choice.get("finish_reason"),
            logprobs=logprobs,
        )


def _error_message(status: int, body: bytes) -> str:
    """What the SDK says of an error answer: ``Error code: N - <error.message>`` (else a short
    start of a body that is not JSON)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return f"Error code: {status} - {text[:300]}" if text else f"Error code: {status}"
    error = data.get("error", data) if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        return f"Error code: {status} - {message}"
    return f"Error code: {status}"
