"""Registers the ``local`` LLM client. Light: no llama.cpp import here."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.endpoint import EndpointConfig

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


class LocalConfig(EndpointConfig):
    """An offline explainer model: a packaged GGUF served by llama.cpp on 127.0.0.1."""

    model: Literal["qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct"] = Field(
        "qwen2.5-coder-1.5b-instruct",
        description="packaged model (0.5b: faster, weaker); ignored when model_path is set",
    )
    model_path: Path | None = Field(None, description="serve this GGUF file instead")
    base_url: str | None = Field(
        None, description="use an already running llama.cpp server (…/v1) instead of starting one"
    )
    mode: Literal["server", "in_process"] = Field(
        "server", description="HTTP server on 127.0.0.1, or llama.cpp called in process"
    )
    threads: int | None = Field(
        None, ge=1, description="llama.cpp threads (default: half the cores, leaving the rest)"
    )
    parallel: int = Field(2, ge=1, description="server slots decoding concurrently")
    # parity prompts (40 explainer examples) and economy prompts (100 examples) need > 2048
    context_size: int = Field(8192, ge=256, description="context tokens per slot")
    cache_dir: Path | None = Field(
        None, description="where the assembled GGUF is kept (default: ~/.cache/autointerp/models)"
    )
    verbose: bool = Field(False, description="show llama.cpp's own log lines")
    max_concurrency: int = Field(4, ge=1, description="requests in flight to the local server")
    timeout_s: float = Field(600.0, gt=0, description="per-attempt timeout (CPU decoding is slow)")
    max_retries: int = Field(2, ge=0, description="retries of a transient failure per request")


@hookimpl
def autointerp_register_llm_clients(register: Register) -> None:
    register(
        "local",
        "autointerp_local.client:LocalClient",
        config=LocalConfig,
        description="offline: packaged Qwen2.5-Coder GGUF served by llama.cpp (xllamacpp)",
    )
