"""Registers the ``anthropic`` LLM client. Light: no SDK import here."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.endpoint import BatchEndpointConfig, EndpointConfig

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


class AnthropicConfig(EndpointConfig):
    """The Anthropic messages API (or a server speaking it at ``base_url``)."""

    model: str = Field("claude-haiku-4-5", description="model name")
    base_url: str | None = Field(None, description="API base URL (default: Anthropic)")
    api_key_env: str = Field("ANTHROPIC_API_KEY", description="environment variable with the key")
    keys_file: Path | None = Field(
        None,
        description="keys file (default: $AUTOINTERP_KEYS_FILE, ~/.config/autointerp/keys.toml)",
    )
    prompt_caching: bool = Field(
        True, description="mark the stable system/few-shot prefix for Anthropic's prompt cache"
    )
    max_concurrency: int = Field(
        256,
        ge=1,
        description="requests in flight to this endpoint (requests_per_minute and "
        "tokens_per_minute pace them to the account's limits)",
    )


class AnthropicBatchConfig(AnthropicConfig, BatchEndpointConfig):
    """Anthropic's Message Batches API (or a server speaking it at ``base_url``)."""

    max_batch_requests: int = Field(
        10_000, ge=1, le=100_000, description="requests per batch at most (Anthropic: 100,000)"
    )
    max_batch_mb: float = Field(
        100.0, gt=0, le=256, description="size of a batch at most (MB; Anthropic: 256)"
    )


@hookimpl
def autointerp_register_llm_clients(register: Register) -> None:
    register(
        "anthropic",
        "autointerp_anthropic.client:AnthropicClient",
        config=AnthropicConfig,
        description="Anthropic messages API, prompt caching of the stable prefix",
    )

    register(
        "anthropic-batch",
        "autointerp_anthropic.batch:AnthropicBatchClient",
        config=AnthropicBatchConfig,
        description="Anthropic Message Batches API: half price, answers within hours",
    )
