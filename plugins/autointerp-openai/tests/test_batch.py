"""``openai-batch`` against a local server speaking OpenAI's files and batches endpoints: requests
collect into few batches at half the live price, a restarted run polls the batch it submitted
instead of paying again, and expired or failed requests are resubmitted a bounded number of times.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from autointerp_openai.batch import OpenAIBatchClient, OpenAIBatchConfig

from autointerp.llm import LLMClient, LLMError, Message, SamplingParams, request_hash
from autointerp.llm import request_payload as payload_of
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.batch_server import (
    BatchServer,
    completes,
    expires,
    fails_some,
    fails_validation,
    never_ends,
    rejects_some,
)
from autointerp.testing.runs import scripted_answers, write_run_config

FAST = dict(poll_interval_s=0.02, flush_after_s=0.05, backoff_base_s=0.01, timeout_s=5.0)
PRICES = dict(price_prompt_per_mtok=1.0, price_completion_per_mtok=2.0)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-batch-test-key-0123456789")
    with BatchServer() as s:
        yield s


def backend(server: BatchServer, **options: Any) -> OpenAIBatchClient:
    config = OpenAIBatchConfig(base_url=server.openai_base_url, **{**FAST, **PRICES, **options})
    return OpenAIBatchClient(config)


def prompts(n: int) -> list[list[Message]]:
    return [[Message("system", "be brief"), Message("user", f"question {i}")] for i in range(n)]


def ask_all(client: LLMClient, requests: list[list[Message]], timeout: float = 30) -> list[Any]:
    """Ask every request concurrently; answers or errors, in order; the client is closed."""

    async def go() -> list[Any]:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.gather(
                    *(client.chat(r) for r in requests), return_exceptions=True
                )
        finally:
            await client.aclose()

    return asyncio.run(go())


def hash_of(b: OpenAIBatchClient, messages: list[Message]) -> str:
    return request_hash(payload_of(b.name, b.model, messages, SamplingParams()))


def test_concurrent_requests_share_few_batches_at_half_the_live_price(
    server: BatchServer, tmp_path: Path
) -> None:
    b = backend(server, max_batch_requests=10)
    requests = prompts(25)
    with Store.open(tmp_path) as store:
        run = store.start_run("r", {})
        answers = ask_all(LLMClient(b, store=store.bind(run)), requests)
        assert [a.text for a in answers] == [f"answer to: question {i}" for i in range(25)]
        assert len(server.created) == 3  # 10 + 10 + 5, not 25 calls
        assert sorted(len(batch.items) for batch in server.created) == [5, 10, 10]

        # the wire format: a JSONL file of {custom_id, method, url, body}, custom_id = cache key
        lines = [json.loads(x) for f in server.files.values() for x in f.decode().splitlines()]
        (line,) = [
            x for x in lines if "body" in x and x["body"]["messages"][-1]["content"] == "question 0"
        ]
        assert set(line) == {"custom_id", "method", "url", "body"}
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        assert line["custom_id"] == hash_of(b, requests[0])

        live = b.live_pricing
        for a in answers:
            full = live.cost(a.prompt_tokens, 0, a.completion_tokens)
            assert a.cost_usd == pytest.approx(full / 2) and a.cost_usd > 0
        usage = store.usage(run)
        assert usage.calls == 25
        assert usage.cost_usd == pytest.approx(sum(a.cost_usd for a in answers))
        batches = store.llm_batches("openai-batch")
        assert len(batches) == 3 and all(x.ended_at is not None for x in batches)
        assert {x.status for x in batches} == {"completed"}


def test_a_restarted_run_polls_its_live_batch_and_a_third_run_makes_no_call(
    server: BatchServer, tmp_path: Path
) -> None:
    server.plan(completes(polls=10**6))  # process 1's batch is still running when it stops
    requests = prompts(6)

    async def first_process(store: Store) -> None:
        client = LLMClient(backend(server), store=store)
        tasks = [asyncio.ensure_future(client.chat(r)) for r in requests]
        while not server.created:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # a few polls: still in progress
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()

    with Store.open(tmp_path) as store:
        asyncio.run(first_process(store))
        (live,) = store.llm_batches(live=True)
        assert live.n_requests == 6 and store.get_llm_call(live.id) is None
    (batch,) = server.created
    assert batch.status == "in_progress"
    batch.behaviour = completes(polls=batch.polls + 2)  # it ends while process 2 polls

    before = len(server.calls)
    with Store.open(tmp_path) as store:  # process 2: asks for half of them only
        answers = ask_all(LLMClient(backend(server), store=store), requests[:3])
        assert [a.text for a in answers] == [f"answer to: question {i}" for i in range(3)]
        assert len(server.created) == 1  # nothing resubmitted, nothing uploaded: only polls
        assert {path for _, path in server.calls[before:]} == {
            f"/v1/batches/{batch.id}",
            f"/v1/files/{batch.output_file_id}/content",
        }
        # every answer of the batch is stored, also those nobody awaited in this process
        for r in requests:
            assert store.get_llm_call(hash_of(backend(server), r)) is not None
        assert store.llm_batches(live=True) == []
        assert store.usage().calls == 6

    calls = len(server.calls)
    with Store.open(tmp_path) as store:  # process 3: everything from the cache
        answers = ask_all(LLMClient(backend(server), store=store), requests)
        assert all(a.from_cache for a in answers)
    assert len(server.calls) == calls


def test_an_expired_batch_resubmits_only_its_unanswered_requests(server: BatchServer) -> None:
    server.plan(expires(bad=3), completes())
    b = backend(server)
    answers = ask_all(LLMClient(b), prompts(8))
    assert [a.text for a in answers] == [f"answer to: question {i}" for i in range(8)]
    first, second = server.created
    assert first.status == "expired" and len(first.items) == 8
    assert second.custom_ids == first.custom_ids[:3]


def test_a_partly_failed_batch_retries_server_errors_and_fails_rejected_requests_at_once(
    server: BatchServer,
) -> None:
    server.plan(fails_some(bad=2), rejects_some(bad=1), completes())
    b = backend(server)
    requests = prompts(5)
    answers = ask_all(LLMClient(b), requests)
    first, second = server.created[:2]
    assert second.custom_ids == first.custom_ids[:2]  # the 5xx ones, once more
    rejected = second.custom_ids[0]
    (failed,) = [a for a in answers if isinstance(a, LLMError)]
    assert "invalid_request_error" in str(failed) and "after 2 batches" in str(failed)
    assert answers[[hash_of(b, r) for r in requests].index(rejected)] is failed
    assert sum(not isinstance(a, LLMError) for a in answers) == 4
    assert len(server.created) == 2  # a rejected request is not worth a third batch


def test_requests_unanswered_in_every_allowed_batch_fail_with_a_clear_error(
    server: BatchServer,
) -> None:
    server.plan(expires(bad=2), expires(bad=2), expires(bad=2))
    answers = ask_all(LLMClient(backend(server, max_batch_attempts=2)), prompts(3))
    errors = [a for a in answers if isinstance(a, LLMError)]
    assert len(errors) == 2 and len(server.created) == 2
    assert "no answer after 2 batches (max_batch_attempts = 2)" in str(errors[0])
    assert "batch_expired" in str(errors[0])


def test_a_batch_that_fails_validation_is_retried_then_given_up(server: BatchServer) -> None:
    server.plan(fails_validation(), fails_validation())
    (error,) = ask_all(LLMClient(backend(server, max_batch_attempts=2)), prompts(1))
    assert isinstance(error, LLMError) and "failed: invalid" in str(error)


def test_a_batch_that_never_ends_is_cancelled_after_the_give_up_time(server: BatchServer) -> None:
    server.plan(never_ends())
    (error,) = ask_all(LLMClient(backend(server, batch_give_up_s=0.3)), prompts(1))
    assert isinstance(error, LLMError) and "did not end within 0.3s" in str(error)
    assert server.created[0].cancelled


def test_transient_http_errors_while_submitting_and_polling_are_retried(
    server: BatchServer,
) -> None:
    server.fail_next(500, 429)  # the upload fails twice, then goes through
    (answer,) = ask_all(LLMClient(backend(server)), prompts(1))
    assert answer.text == "answer to: question 0"
    assert [c for c in server.calls if c == ("POST", "/v1/files")] == [("POST", "/v1/files")] * 3


def test_a_run_explains_and_scores_through_the_batch_api(
    server: BatchServer, autointerp_cli: Callable[..., Any], tmp_path: Path
) -> None:
    respond = scripted_answers()
    server.responder = lambda item: respond(item)
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    path = write_run_config(tmp_path / "run.toml", base_url=server.openai_base_url, model=model)
    text = path.read_text().replace(
        'name = "openai-compatible"',
        'name = "openai-batch"\npoll_interval_s = 0.05\nflush_after_s = 0.2',
    )
    path.write_text(text)
    result = autointerp_cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert run.status == "finished"
        assert len(store.explanations(run.id)) == 4
        scores = store.scores(run.id, "detection")
        assert len(scores) == 4 and all(s.value is not None for s in scores)
        batches = store.llm_batches("openai-batch")
        assert batches and all(b.ended_at is not None for b in batches)
        assert store.usage(run.id).calls == sum(len(b.items) for b in server.created)
    # the 4 latents' explanations went out as one batch, the scorer's requests after them
    assert len(server.created[0].items) == 4 and len(server.created) < 4

    calls = len(server.calls)
    again = autointerp_cli("run", str(path))  # a rerun: everything from the store
    assert again.exit_code == 0, again.stderr
    assert len(server.calls) == calls
