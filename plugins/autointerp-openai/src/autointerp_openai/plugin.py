"""Registers the ``openai`` and ``openai-compatible`` LLM clients. Light: no SDK import here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.endpoint import BatchEndpointConfig, EndpointConfig

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


class OpenAIConfig(EndpointConfig):
    """OpenAI chat completions, or any server speaking that protocol at ``base_url``."""

    model: str = Field("gpt-4o-mini", description="model name as the server knows it")
    base_url: str | None = Field(
        None, description="API base URL, e.g. http://127.0.0.1:8000/v1 (default: OpenAI)"
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable with the key")
    keys_file: Path | None = Field(
        None,
        description="keys file (default: $AUTOINTERP_KEYS_FILE, ~/.config/autointerp/keys.toml)",
    )
    require_api_key: bool = Field(True, description="fail before any compute if no key is found")
    logprobs: bool = Field(True, description="the server can return token logprobs")
    json_schema: bool = Field(True, description="the server supports JSON-schema response_format")
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_completion_tokens", description="request field carrying the output-token limit"
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="extra JSON fields sent with every request"
    )
    transport: Literal["auto", "direct", "sdk"] = Field(
        "auto",
        description="how requests travel: 'direct' (a lean HTTP/1.1 client, least CPU per call), "
        "'sdk' (the openai SDK), 'auto' (direct unless a proxy from $HTTP(S)_PROXY/$ALL_PROXY "
        "applies to base_url)",
    )


class OpenAICompatibleConfig(OpenAIConfig):
    """A self-hosted or third-party OpenAI-compatible server (vLLM, llama.cpp, Ollama ...)."""

    model: str = Field("default", description="model name as the server knows it")
    base_url: str | None = Field(
        "http://127.0.0.1:8000/v1", description="the server's base URL, ending in /v1"
    )
    api_key_env: str = Field(
        "OPENAI_COMPATIBLE_API_KEY", description="environment variable with the key, if any"
    )
    require_api_key: bool = Field(False, description="fail before any compute if no key is found")
    max_concurrency: int = Field(
        256,
        ge=1,
        description="requests in flight to this endpoint (a serving engine batches them; lower "
        "it for a server that handles few at once)",
    )
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens", description="request field carrying the output-token limit"
    )


class OpenAIBatchConfig(OpenAIConfig, BatchEndpointConfig):
    """OpenAI's Batch API (or a compatible server with ``/v1/files`` and ``/v1/batches``)."""

    completion_window: str = Field("24h", description="the batch's completion window")
    max_batch_requests: int = Field(
        10_000, ge=1, le=50_000, description="requests per batch at most (OpenAI: 50,000)"
    )
    max_batch_mb: float = Field(
        100.0, gt=0, le=200, description="size of a batch file at most (MB; OpenAI: 200)"
    )


@hookimpl
def autointerp_register_llm_clients(register: Register) -> None:
    register(
        "openai",
        "autointerp_openai.client:OpenAIClient",
        config=OpenAIConfig,
        description="OpenAI chat completions (logprobs, JSON-schema output)",
    )
    register(
        "openai-compatible",
        "autointerp_openai.client:compatible",
        config=OpenAICompatibleConfig,
        description="any OpenAI-compatible server by base URL: vLLM, llama.cpp, Ollama, OpenRouter",
    )

    register(
        "openai-batch",
        "autointerp_openai.batch:OpenAIBatchClient",
        config=OpenAIBatchConfig,
        description="OpenAI Batch API (or a compatible /v1/batches server): half price, in hours",
    )
