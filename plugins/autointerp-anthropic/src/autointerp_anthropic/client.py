"""The Anthropic messages backend: one attempt per call, the SDK's own retries off.

System messages become the ``system`` blocks; a :class:`~autointerp.llm.Message` with
``cache=True`` gets a ``cache_control`` breakpoint, so the byte-identical system/few-shot prefix
is read from Anthropic's prompt cache (at a tenth of the price) instead of being paid again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from autointerp.llm import (
    ChatResponse,
    MalformedResponseError,
    Message,
    PerLoop,
    Pricing,
    SamplingParams,
    protect_loggers,
    resolve_api_key,
    sdk_errors,
)
from autointerp_anthropic.plugin import AnthropicConfig

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

#: USD per million tokens (input, cache read, output); cache writes cost 1.25x input.
PRICES: dict[str, Pricing] = {
    "claude-3-haiku": Pricing(0.25, 0.03, 1.25),
    "claude-3-5-haiku": Pricing(0.80, 0.08, 4.00),
    "claude-haiku-4-5": Pricing(1.00, 0.10, 5.00),
    "claude-3-5-sonnet": Pricing(3.00, 0.30, 15.00),
    "claude-3-7-sonnet": Pricing(3.00, 0.30, 15.00),
    "claude-sonnet-4": Pricing(3.00, 0.30, 15.00),
    "claude-opus-4": Pricing(15.00, 1.50, 75.00),
}
CACHE_WRITE_PREMIUM = 0.25
_SDK_FIELDS = frozenset({"model", "max_tokens", "messages", "system", "stop_sequences"})
DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicClient:
    """An :class:`autointerp.llm.LLMBackend` for the Anthropic messages API."""

    name = "anthropic"

    def __init__(self, config: AnthropicConfig) -> None:
        self.config = config
        self.model = config.model
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.endpoint = f"anthropic:{self.base_url}"
        self.pricing = Pricing.resolve(config, PRICES, self.model)
        protect_loggers("anthropic", "httpx2", "httpx")
        self._key = resolve_api_key(config.api_key_env, config.keys_file, provider=self.name)
        self._sdk: PerLoop[AsyncAnthropic] = PerLoop()

    def __repr__(self) -> str:
        return f"AnthropicClient(model={self.model!r}, base_url={self.base_url!r})"

    def check(self) -> None:
        """The key was resolved when this client was built."""

    def _client(self) -> AsyncAnthropic:
        return self._sdk.get(self._new_client)

    def _new_client(self) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=self._key.reveal(),
            base_url=self.base_url,
            max_retries=0,
            timeout=self.config.timeout_s,
        )

    async def aclose(self) -> None:
        await self._sdk.aclose()

    def request_body(self, messages: Sequence[Message], params: SamplingParams) -> dict[str, Any]:
        """The JSON body of a messages request (fresh per request)."""
        caching = self.config.prompt_caching

        def block(m: Message) -> dict[str, Any]:
            out: dict[str, Any] = {"type": "text", "text": m.content}
            if caching and m.cache:
                out["cache_control"] = {"type": "ephemeral"}
            return out

        system = [block(m) for m in messages if m.role == "system"]
        turns: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                continue
            if turns and turns[-1]["role"] == m.role:  # the API wants alternating turns
                turns[-1]["content"].append(block(m))
            else:
                turns.append({"role": m.role, "content": [block(m)]})
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "messages": turns,
            "temperature": params.temperature,
        }
        if system:
            body["system"] = system
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop_sequences"] = list(params.stop)
        return body

    async def complete(
        self, messages: Sequence[Message], params: SamplingParams, *, timeout: float
    ) -> ChatResponse:
        import anthropic

        body = self.request_body(messages, params)
        # sampling fields this SDK version has no keyword for travel in the JSON body as is
        extra = {k: body.pop(k) for k in list(body) if k not in _SDK_FIELDS}
        with sdk_errors(self.name, anthropic, timeout):
            raw = await self._client().messages.create(
                **body, extra_body=extra or None, timeout=timeout
            )
        return self._parse(raw)

    def _parse(self, raw: Any) -> ChatResponse:
        content = getattr(raw, "content", None)
        if isinstance(raw, str | bytes) or content is None:
            raise MalformedResponseError(f"{self.name}: response without content")
        text = "".join(getattr(b, "text", "") for b in content if getattr(b, "type", "") == "text")
        usage = raw.usage
        read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        written = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        prompt = int(usage.input_tokens or 0) + read + written
        completion = int(usage.output_tokens or 0)
        cost = self.pricing.cost(prompt, read, completion)
        cost += written * self.pricing.prompt * CACHE_WRITE_PREMIUM / 1e6
        return ChatResponse(
            text=text,
            model=getattr(raw, "model", None) or self.model,
            prompt_tokens=prompt,
            cached_tokens=read,
            completion_tokens=completion,
            cost_usd=cost,
            finish_reason=getattr(raw, "stop_reason", None),
        )
