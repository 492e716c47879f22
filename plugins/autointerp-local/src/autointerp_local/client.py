"""The offline backend: assemble and verify the packaged GGUF, serve it with llama.cpp
(``xllamacpp``) on 127.0.0.1, and talk to it through the OpenAI-compatible client, so a hosted
model swaps in by changing the client name. ``mode = "in_process"`` calls llama.cpp directly.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAICompatibleConfig

from autointerp.llm import (
    ChatResponse,
    MalformedResponseError,
    Message,
    Pricing,
    SamplingParams,
    ServerError,
)
from autointerp_local.models import MODELS, ModelAssetError, assemble, part_files
from autointerp_local.plugin import LocalConfig


def default_threads() -> int:
    """Half the cores: another stage (the subject model) needs the rest; oversubscribing hurts."""
    return max(1, (os.cpu_count() or 2) // 2)


class LocalClient:
    """An :class:`autointerp.llm.LLMBackend` for a local llama.cpp model."""

    name = "local"

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.model = config.model_path.name if config.model_path else config.model
        self.endpoint = f"local:{config.base_url or self.model}"
        self.pricing = Pricing()
        self.threads = config.threads or default_threads()
        self.base_url: str | None = config.base_url
        self._server: Any = None
        self._inner: OpenAIClient | None = None
        self._lock = threading.Lock()
        if config.base_url:
            self._inner = self._openai(config.base_url)

    def __repr__(self) -> str:
        return f"LocalClient(model={self.model!r}, base_url={self.base_url!r})"

    def check(self) -> None:
        """Fail before compute if the model cannot be found (names the pip command)."""
        if self.config.base_url:
            return
        if self.config.model_path is not None:
            if not self.config.model_path.is_file():
                raise ModelAssetError(f"local model file {self.config.model_path} does not exist")
            return
        part_files(MODELS[self.config.model])

    def model_file(self) -> Path:
        if self.config.model_path is not None:
            return self.config.model_path
        return assemble(MODELS[self.config.model], self.config.cache_dir)

    def server_params(self, gguf: Path) -> Any:
        """llama.cpp parameters: 127.0.0.1, an ephemeral port, the configured threads and slots."""
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_parallel = self.config.parallel
        params.n_ctx = self.config.context_size * self.config.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.port = 0
        params.hostnames = ["127.0.0.1"]
        if not self.config.verbose:
            params.verbosity = -1  # llama.cpp's own log lines would drown the run's progress
        return params

    def start(self) -> None:
        """Assemble the model and start llama.cpp (once; thread-safe)."""
        with self._lock:
            if self.config.base_url or self._server is not None:
                return
            self.check()
            import xllamacpp

            self._server = xllamacpp.Server(self.server_params(self.model_file()))
            if self.config.mode == "server":
                address = str(self._server.listening_address).rstrip("/")
                self.base_url = address + "/v1"
                self._inner = self._openai(self.base_url)

    def stop(self) -> None:
        with self._lock:
            self._server = None  # llama.cpp's server stops when the object is released
            if not self.config.base_url:
                self._inner = None

    async def prepare(self) -> None:
        await asyncio.to_thread(self.start)

    def _openai(self, base_url: str) -> OpenAIClient:
        cfg = self.config
        return OpenAIClient(
            OpenAICompatibleConfig(
                model=self.model,
                base_url=base_url,
                timeout_s=cfg.timeout_s,
                json_schema=True,
                logprobs=True,
            ),
            name=self.name,
        )

    async def complete(
        self, messages: Sequence[Message], params: SamplingParams, *, timeout: float
    ) -> ChatResponse:
        if self._server is None and self._inner is None:
            await self.prepare()
        if self._inner is not None:
            return await self._inner.complete(messages, params, timeout=timeout)
        return await self._complete_in_process(messages, params)

    async def _complete_in_process(
        self, messages: Sequence[Message], params: SamplingParams
    ) -> ChatResponse:
        body = OpenAIClient.request_body(self._openai("http://unused/v1"), messages, params)
        raw = await asyncio.to_thread(self._server.handle_chat_completions, body)
        if not isinstance(raw, dict):
            raise MalformedResponseError(f"local: unexpected answer {type(raw).__name__}")
        if "error" in raw:
            raise ServerError(f"local: llama.cpp error: {raw['error']}")
        try:
            choice = raw["choices"][0]
            usage = raw.get("usage") or {}
            details = usage.get("prompt_tokens_details") or {}
            return ChatResponse(
                text=choice["message"].get("content") or "",
                model=self.model,
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                cached_tokens=int(details.get("cached_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                finish_reason=choice.get("finish_reason"),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise MalformedResponseError(f"local: malformed answer: {exc}") from None

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
