"""The OpenAI client against a real local HTTP server speaking chat completions."""

from __future__ import annotations

import asyncio
import logging
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAICompatibleConfig, OpenAIConfig

from autointerp.llm import (
    ChatResponse,
    LLMClient,
    Message,
    MissingAPIKeyError,
    RequestRejectedError,
    RetriesExhaustedError,
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

KEY = "sk-planted-test-key-0123456789abcdefXYZ"
FAST = dict(backoff_base_s=0.02, backoff_max_s=0.1, breaker_cooldown_s=0.05, timeout_s=1.0)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def make(server: ScriptedLLMServer, store: object = None, **options: object) -> LLMClient:
    config = OpenAIConfig(base_url=server.openai_base_url, **{**FAST, **options})
    return LLMClient(OpenAIClient(config), store=store, scheduler=Scheduler())  # type: ignore[arg-type]


def ask(client: LLMClient, text: str, params: SamplingParams | None = None) -> ChatResponse:
    async def go() -> ChatResponse:
        try:
            return await client.chat([Message("user", text)], params)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_normal_answer_with_tokens_and_logprobs(
    autointerp_llm_server: ScriptedLLMServer, key: str
) -> None:
    server = autointerp_llm_server
    server.script(reply("Explanation: dates"))
    params = SamplingParams(temperature=0.5, max_tokens=20, seed=7, logprobs=True, top_logprobs=2)
    answer = ask(make(server), "explain", params)
    assert answer.text == "Explanation: dates"
    assert answer.prompt_tokens == 1 and answer.completion_tokens == 2
    assert answer.logprobs is not None and answer.logprobs[0].top[1] == ("alt1", -1.1)
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {key}"
    body = request.body
    assert body["model"] == "gpt-4o-mini" and body["messages"] == [
        {"role": "user", "content": "explain"}
    ]
    assert (body["temperature"], body["max_completion_tokens"], body["seed"]) == (0.5, 20, 7)
    assert body["logprobs"] is True and body["top_logprobs"] == 2


def test_json_schema_output_is_requested_when_supported(
    autointerp_llm_server: ScriptedLLMServer, key: str
) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    ask(make(autointerp_llm_server), "q", SamplingParams(json_schema=schema))
    ask(make(autointerp_llm_server, json_schema=False), "q2", SamplingParams(json_schema=schema))
    with_schema, without = (r.body for r in autointerp_llm_server.requests)
    assert with_schema["response_format"]["json_schema"]["schema"] == schema
    assert "response_format" not in without


@pytest.mark.parametrize(
    "fault",
    [
        rate_limit(retry_after=0.3),
        server_error(500),
        server_error(503),
        hang(),
        malformed(),
        drop(),
    ],
    ids=["429", "500", "503", "hang", "malformed", "dropped"],
)
def test_every_transient_fault_is_survived_and_paid_once(
    autointerp_llm_server: ScriptedLLMServer, key: str, tmp_path: Path, fault: Action
) -> None:
    server = autointerp_llm_server
    server.script(fault, reply("recovered"))
    with Store.open(tmp_path) as store:
        start = time.monotonic()
        client = make(server, store)
        assert ask(client, "q").text == "recovered"
        elapsed = time.monotonic() - start
        assert server.count() == 2
        assert store.usage().calls == 1
        assert sum(client.stats.errors.values()) == 1
    if fault.kind == "rate_limit":
        assert elapsed >= 0.3
    if fault.kind == "hang":
        assert 1.0 <= elapsed < 5


def test_other_4xx_fail_at_once(autointerp_llm_server: ScriptedLLMServer, key: str) -> None:
    autointerp_llm_server.script(reject(400, "unknown parameter"))
    with pytest.raises(RequestRejectedError, match=r"HTTP 400.*unknown parameter"):
        ask(make(autointerp_llm_server), "q")
    assert autointerp_llm_server.count() == 1


def test_a_persistently_failing_server_ends_in_a_recorded_failure(
    autointerp_llm_server: ScriptedLLMServer, key: str, tmp_path: Path
) -> None:
    autointerp_llm_server.script(*[server_error() for _ in range(3)])
    with Store.open(tmp_path) as store:
        client = make(autointerp_llm_server, store, max_retries=2)
        with pytest.raises(RetriesExhaustedError, match="gave up after 3 attempts"):
            ask(client, "q")
        assert client.stats.failures == 1 and client.stats.errors["server_error"] == 3
        assert store.usage().calls == 0  # a failure is never cached as an answer


def test_hundreds_in_flight_through_random_faults_lose_nothing_and_pay_once(
    autointerp_llm_server: ScriptedLLMServer, key: str, tmp_path: Path
) -> None:
    server = autointerp_llm_server
    server.latency = 0.05
    rng = random.Random(0)
    faults = [rate_limit(0.05), server_error(), malformed(), drop(), hang(2)]
    server.script(*[rng.choice(faults) for _ in range(60)])
    server.responder = lambda r: "answer to " + r.body["messages"][-1]["content"]
    prompts = [[Message("user", f"latent {i}")] for i in range(300)]

    async def go(client: LLMClient) -> list[object]:
        try:
            return await client.chat_many(prompts)
        finally:
            await client.aclose()

    with Store.open(tmp_path) as store:
        client = make(server, store, max_retries=20, timeout_s=0.5, breaker_threshold=50)
        answers = asyncio.run(go(client))
        texts = [a.text for a in answers]  # type: ignore[union-attr]
        assert texts == [f"answer to latent {i}" for i in range(300)]
        # hundreds in flight from the client; how many the in-process server sees at once
        # depends on its share of a busy CPU, so that is not what is asserted
        assert client.stats.peak_in_flight > 100
        assert store.usage().calls == 300
        sent = server.count()
        rerun = make(server, store)
        again = asyncio.run(go(rerun))
        assert [a.text for a in again] == [a.text for a in answers]  # type: ignore[union-attr]
        assert server.count() == sent  # the rerun made zero requests
        assert store.usage().cache_hits == 300


def test_an_openai_compatible_server_needs_no_key(
    autointerp_llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    manager = PluginManager()
    backend = manager.build(
        "llm_client", "openai-compatible", {"base_url": autointerp_llm_server.openai_base_url}
    )
    assert isinstance(backend, OpenAIClient) and backend.name == "openai-compatible"
    client = LLMClient(backend, scheduler=Scheduler())
    assert ask(client, "q").text == "Explanation: a test feature"
    assert autointerp_llm_server.requests[0].body["max_tokens"] == 256
    assert isinstance(OpenAICompatibleConfig().max_concurrency, int)


def test_a_missing_key_fails_before_any_request(
    autointerp_llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AUTOINTERP_KEYS_FILE", raising=False)
    with pytest.raises(MissingAPIKeyError, match=r"\$OPENAI_API_KEY"):
        PluginManager().build("llm_client", "openai", {"base_url": "http://127.0.0.1:9/v1"})


def test_a_planted_key_never_reaches_logs_store_or_errors(
    autointerp_llm_server: ScriptedLLMServer,
    key: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = autointerp_llm_server
    server.script(
        rate_limit(0.01),
        server_error(),
        drop(),
        reply("fine"),
        reject(401, "Incorrect API key provided: {credentials}"),
    )
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG), Store.open(tmp_path) as store:
        client = make(server, store)
        assert ask(client, "first").text == "fine"
        try:
            ask(client, "second")
        except RequestRejectedError as exc:
            errors.append(str(exc))
            errors.append(repr(exc))
        logging.getLogger("autointerp.llm").error("failed: %s", errors[0])
    assert errors and "Incorrect API key provided" in errors[0]
    assert KEY in server.requests[-1].headers["authorization"]  # the server did echo it
    captured = capsys.readouterr()
    haystacks = {
        "logs": caplog.text,
        "errors": "\n".join(errors),
        "stdout": captured.out,
        "stderr": captured.err,
        "store": b"".join(p.read_bytes() for p in tmp_path.iterdir()).decode("latin-1"),
        "client": repr(client.backend),
    }
    for where, text in haystacks.items():
        assert KEY not in text, where
        assert KEY[10:30] not in text, where


def test_listing_plugins_imports_no_sdk() -> None:
    code = (
        "import sys; from autointerp.plugins import PluginManager; m = PluginManager(); "
        "assert 'openai' in m.names('llm_client'); "
        "print(sorted(x for x in ('openai', 'httpx2', 'torch') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
