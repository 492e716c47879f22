"""``anthropic-batch`` against a local server speaking Anthropic's Message Batches endpoints:
requests collect into few batches at half the live price, a restarted run polls the batch it
submitted instead of paying again, and expired or errored requests are resubmitted a bounded
number of times."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from autointerp_anthropic.batch import AnthropicBatchClient, AnthropicBatchConfig

from autointerp.errors import ConfigError
from autointerp.llm import LLMClient, LLMError, Message, SamplingParams, request_hash
from autointerp.llm import request_payload as payload_of
from autointerp.plugins import PluginManager
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.batch_server import (
    BatchItem,
    BatchServer,
    completes,
    expires,
    fails_some,
    rejects_some,
)
from autointerp.testing.runs import write_run_config

KEY = "sk-ant-batch-test-key-0123456789"
FAST = dict(poll_interval_s=0.02, flush_after_s=0.05, backoff_base_s=0.01, timeout_s=5.0)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchServer]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with BatchServer() as s:
        yield s


def backend(server: BatchServer, **options: Any) -> AnthropicBatchClient:
    config = AnthropicBatchConfig(base_url=server.anthropic_base_url, **{**FAST, **options})
    return AnthropicBatchClient(config)


def prompts(n: int) -> list[list[Message]]:
    return [
        [Message("system", "be brief", cache=True), Message("user", f"question {i}")]
        for i in range(n)
    ]


def ask_all(client: LLMClient, requests: list[list[Message]], timeout: float = 30) -> list[Any]:
    async def go() -> list[Any]:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.gather(
                    *(client.chat(r) for r in requests), return_exceptions=True
                )
        finally:
            await client.aclose()

    return asyncio.run(go())


def hash_of(b: AnthropicBatchClient, messages: list[Message]) -> str:
    return request_hash(payload_of(b.name, b.model, messages, SamplingParams()))


def test_built_by_name_with_batch_options_and_half_the_live_prices(server: BatchServer) -> None:
    options = {"base_url": server.anthropic_base_url, "max_batch_requests": 500}
    b = PluginManager().build("llm_client", "anthropic-batch", options)
    assert isinstance(b, AnthropicBatchClient) and b.batched
    assert b.config.max_batch_requests == 500 and b.config.batch_price_factor == 0.5
    assert b.pricing.prompt == b.live_pricing.prompt / 2 > 0
    with pytest.raises(ConfigError, match=r"max_batch_requests.*less than or equal to 100000"):
        PluginManager().build("llm_client", "anthropic-batch", {"max_batch_requests": 200_000})


def test_concurrent_requests_share_few_batches_at_half_the_live_price(
    server: BatchServer, tmp_path: Path
) -> None:
    b = backend(server, max_batch_requests=4)
    requests = prompts(10)
    with Store.open(tmp_path) as store:
        run = store.start_run("r", {})
        answers = ask_all(LLMClient(b, store=store.bind(run)), requests)
        assert [a.text for a in answers] == [f"answer to: question {i}" for i in range(10)]
        assert sorted(len(x.items) for x in server.created) == [2, 4, 4]
        item = next(i for x in server.created for i in x.items if i.prompt == "question 0")
        assert item.custom_id == hash_of(b, requests[0])
        assert item.body["system"] == [
            {"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}
        ]
        assert {h["x-api-key"] for h in server.headers} == {KEY}
        assert {h["anthropic-version"] for h in server.headers} == {"2023-06-01"}
        for a in answers:
            full = b.live_pricing.cost(a.prompt_tokens, 0, a.completion_tokens)
            assert a.cost_usd == pytest.approx(full / 2) and a.cost_usd > 0
        assert store.usage(run).cost_usd == pytest.approx(sum(a.cost_usd for a in answers))
        assert {x.status for x in store.llm_batches("anthropic-batch")} == {"ended"}


def test_a_restarted_run_polls_its_live_batch_and_a_third_run_makes_no_call(
    server: BatchServer, tmp_path: Path
) -> None:
    server.plan(completes(polls=10**6))
    requests = prompts(4)

    async def first_process(store: Store) -> None:
        client = LLMClient(backend(server), store=store)
        tasks = [asyncio.ensure_future(client.chat(r)) for r in requests]
        while not server.created:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()

    with Store.open(tmp_path) as store:
        asyncio.run(first_process(store))
        assert len(store.llm_batches(live=True)) == 1
    (batch,) = server.created
    batch.behaviour = completes(polls=batch.polls + 2)

    before = len(server.calls)
    with Store.open(tmp_path) as store:
        answers = ask_all(LLMClient(backend(server), store=store), requests)
        assert [a.text for a in answers] == [f"answer to: question {i}" for i in range(4)]
        assert len(server.created) == 1
        assert {p for _, p in server.calls[before:]} == {
            f"/v1/messages/batches/{batch.id}",
            f"/v1/messages/batches/{batch.id}/results",
        }
    calls = len(server.calls)
    with Store.open(tmp_path) as store:
        assert all(a.from_cache for a in ask_all(LLMClient(backend(server), store=store), requests))
    assert len(server.calls) == calls


def test_expired_and_errored_requests_are_resubmitted_and_rejected_ones_fail(
    server: BatchServer,
) -> None:
    server.plan(expires(bad=2), fails_some(bad=1), completes())
    answers = ask_all(LLMClient(backend(server)), prompts(5))
    assert [a.text for a in answers] == [f"answer to: question {i}" for i in range(5)]
    first, second, third = server.created
    assert second.custom_ids == first.custom_ids[:2]
    assert third.custom_ids == second.custom_ids[:1]

    server.plan(rejects_some(bad=1))
    (error,) = ask_all(LLMClient(backend(server)), [[Message("user", "not valid")]])
    assert isinstance(error, LLMError) and "invalid_request_error" in str(error)
    assert len(server.created) == 4  # a rejected request is not resubmitted


def test_requests_unanswered_in_every_allowed_batch_fail_with_a_clear_error(
    server: BatchServer,
) -> None:
    server.plan(expires(bad=1), expires(bad=1))
    answers = ask_all(LLMClient(backend(server, max_batch_attempts=2)), prompts(2))
    assert answers[1].text == "answer to: question 1"
    assert isinstance(answers[0], LLMError)
    assert "no answer after 2 batches (max_batch_attempts = 2): expired" in str(answers[0])


def parseable(item: BatchItem) -> str:
    """An explanation and, for a prompt listing N ``Example`` lines, N detection answers."""
    n = sum(1 for line in item.prompt.splitlines() if line.startswith("Example "))
    return "Explanation: code words\nAnswer: [" + ", ".join(["1"] * n) + "]"


def test_a_run_explains_and_scores_through_message_batches(
    server: BatchServer, autointerp_cli: Callable[..., Any], tmp_path: Path
) -> None:
    server.responder = parseable
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    path = write_run_config(tmp_path / "run.toml", base_url=server.openai_base_url, model=model)
    text = path.read_text().replace(
        f'name = "openai-compatible"\nbase_url = "{server.openai_base_url}"',
        f'name = "anthropic-batch"\nbase_url = "{server.anthropic_base_url}"\n'
        "poll_interval_s = 0.05\nflush_after_s = 0.2",
    )
    path.write_text(text)
    result = autointerp_cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert run.status == "finished" and len(store.explanations(run.id)) == 4
        scores = store.scores(run.id, "detection")
        assert len(scores) == 4 and all(s.value is not None for s in scores)
        assert store.usage(run.id).calls == sum(len(b.items) for b in server.created)
        assert store.usage(run.id).cost_usd > 0
