"""The OpenAI chat-completions backend (also for any OpenAI-compatible server).

One attempt per call; retries, limits, cache and ledger are :class:`autointerp.llm.LLMClient`'s.
The SDK's own retries are off so that no request is ever sent twice behind our back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from autointerp.llm import (
    ChatResponse,
    LLMError,
    MalformedResponseError,
    Message,
    PerLoop,
    Pricing,
    SamplingParams,
    Secret,
    TokenLogprob,
    protect_loggers,
    resolve_api_key,
    sdk_errors,
)
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

    async def aclose(self) -> None:
        await self._sdk.aclose()

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
        import openai

        body = self.request_body(messages, params)
        extra = dict(self.config.extra_body) or None
        with sdk_errors(self.name, openai, timeout):
            raw = await self._client().chat.completions.create(
                **body, extra_body=extra, timeout=timeout
            )
        return self._parse(raw)

    def _parse(self, raw: Any) -> ChatResponse:
        if isinstance(raw, str | bytes) or not getattr(raw, "choices", None):
            raise MalformedResponseError(f"{self.name}: response without choices")
        choice = raw.choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise MalformedResponseError(f"{self.name}: response choice without a message")
        usage = raw.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        logprobs = None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content:
            logprobs = tuple(
                TokenLogprob(
                    t.token,
                    float(t.logprob),
                    tuple((a.token, float(a.logprob)) for a in (t.top_logprobs or ())),
                )
                for t in content
            )
        return ChatResponse(
            text=message.content or "",
            model=getattr(raw, "model", None) or self.model,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason=choice.finish_reason,
            logprobs=logprobs,
        )
