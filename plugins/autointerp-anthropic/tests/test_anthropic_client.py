"""The Anthropic client against a real local HTTP server speaking the messages protocol."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from autointerp_anthropic.client import AnthropicClient
from autointerp_anthropic.plugin import AnthropicConfig

from autointerp.llm import (
    ChatResponse,
    LLMClient,
    Message,
    MissingAPIKeyError,
    RequestRejectedError,
    SamplingParams,
    Scheduler,
)
from autointerp.plugins import PluginManager
from autointerp.store import Store
from autointerp.testing.llm_server import (
    Action,
    ScriptedLLMServer,
    drop,
    hang,
    malformed,
    rate_limit,
    reject,
    reply,
    server_error,
)

KEY = "sk-ant-planted-test-key-0123456789abcdef"
FAST = dict(backoff_base_s=0.02, backoff_max_s=0.1, breaker_cooldown_s=0.05, timeout_s=1.0)
PREFIX = [
    Message("system", "You label latents with a short noun phrase."),
    Message("user", "Example: <<Paris>> is nice."),
    Message("assistant", "Explanation: cities", cache=True),
]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return KEY


def make(server: ScriptedLLMServer, store: object = None, **options: object) -> LLMClient:
    config = AnthropicConfig(base_url=server.anthropic_base_url, **{**FAST, **options})
    return LLMClient(AnthropicClient(config), store=store, scheduler=Scheduler())  # type: ignore[arg-type]


def ask(client: LLMClient, *messages: Message) -> list[ChatResponse]:
    async def go() -> list[ChatResponse]:
        try:
            return [await client.chat([*PREFIX, m]) for m in messages]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_messages_carry_the_system_prompt_and_a_cache_breakpoint(
    autointerp_llm_server: ScriptedLLMServer, key: str
) -> None:
    server = autointerp_llm_server
    server.script(reply("Explanation: dates"), reply("Explanation: numbers"))
    first, second = ask(make(server), Message("user", "latent 1"), Message("user", "latent 2"))
    assert first.text == "Explanation: dates" and second.text == "Explanation: numbers"
    body = server.requests[0].body
    assert key in str(server.requests[0].headers)
    assert body["system"] == [{"type": "text", "text": PREFIX[0].content}]
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["max_tokens"] == 256 and body["temperature"] == 0.0
    assert first.cached_tokens == 0 and second.cached_tokens > 0  # the prefix was read from cache
    assert second.cost_usd < first.cost_usd


def test_prompt_caching_can_be_switched_off(
    autointerp_llm_server: ScriptedLLMServer, key: str
) -> None:
    ask(make(autointerp_llm_server, prompt_caching=False), Message("user", "x"))
    assert "cache_control" not in str(autointerp_llm_server.requests[0].body)


@pytest.mark.parametrize(
    "fault",
    [rate_limit(0.3), server_error(529), hang(), malformed(), drop()],
    ids=["429", "529", "hang", "malformed", "dropped"],
)
def test_every_transient_fault_is_survived_and_paid_once(
    autointerp_llm_server: ScriptedLLMServer, key: str, tmp_path: Path, fault: Action
) -> None:
    server = autointerp_llm_server
    server.script(fault, reply("recovered"))
    with Store.open(tmp_path) as store:
        start = time.monotonic()
        (answer,) = ask(make(server, store), Message("user", "q"))
        assert answer.text == "recovered"
        assert server.count("anthropic") == 2 and store.usage().calls == 1
    if fault.kind == "rate_limit":
        assert time.monotonic() - start >= 0.3


def test_a_rejected_request_is_not_retried_and_the_echoed_key_is_redacted(
    autointerp_llm_server: ScriptedLLMServer, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    autointerp_llm_server.script(reject(401, "invalid x-api-key {credentials}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(RequestRejectedError) as info:
        ask(make(autointerp_llm_server), Message("user", "q"))
    assert autointerp_llm_server.count() == 1
    assert "invalid x-api-key" in str(info.value)
    assert key not in str(info.value) and key not in caplog.text


def test_a_missing_key_fails_when_the_client_is_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("AUTOINTERP_KEYS_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MissingAPIKeyError, match=r"\$ANTHROPIC_API_KEY"):
        PluginManager().build("llm_client", "anthropic")


def test_sampling_parameters_travel_with_each_request(
    autointerp_llm_server: ScriptedLLMServer, key: str
) -> None:
    client = make(autointerp_llm_server)

    async def go() -> None:
        try:
            await asyncio.gather(
                client.chat([Message("user", "a")], SamplingParams(temperature=0.1, max_tokens=5)),
                client.chat([Message("user", "b")], SamplingParams(temperature=0.9, stop=("\n",))),
            )
        finally:
            await client.aclose()

    asyncio.run(go())
    bodies = {
        r.body["messages"][0]["content"][0]["text"]: r.body for r in autointerp_llm_server.requests
    }
    assert (bodies["a"]["temperature"], bodies["a"]["max_tokens"]) == (0.1, 5)
    assert bodies["b"]["temperature"] == 0.9 and bodies["b"]["stop_sequences"] == ["\n"]


def test_hundreds_of_requests_may_be_in_flight_by_default() -> None:
    # the account's limits are kept by requests_per_minute / tokens_per_minute and Retry-After
    assert AnthropicConfig().max_concurrency >= 256
