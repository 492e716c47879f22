"""autointerp.llm: cache, ledger, retries, rate limits, circuit breaker, keys and redaction."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from autointerp.llm import (
    ChatResponse,
    CircuitBreaker,
    ConcurrencyLimit,
    EndpointConfig,
    EndpointUnavailableError,
    LLMClient,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    MemoryCallStore,
    Message,
    MissingAPIKeyError,
    ParseError,
    Pricing,
    RateLimitedError,
    RateLimiter,
    RequestRejectedError,
    RetriesExhaustedError,
    SamplingParams,
    Scheduler,
    Secret,
    ServerError,
    TokenLogprob,
    UnparseableResponseError,
    chat_parsed,
    parse_retry_after,
    redact,
    request_payload,
    resolve_api_key,
    timeout_error,
)
from autointerp.store import Store

FAST = dict(backoff_base_s=0.01, backoff_max_s=0.05, breaker_cooldown_s=0.05, timeout_s=2.0)


class FakeBackend:
    """Answers ``"echo: <last message>"``; ``faults`` are raised by the next attempts in order."""

    name = "fake"
    model = "fake-1"

    def __init__(self, endpoint: str = "fake", delay: float = 0.0, **config: object) -> None:
        self.endpoint = endpoint
        self.config = EndpointConfig(**{**FAST, **config})
        self.pricing = Pricing(prompt=1.0, cached=0.5, completion=2.0)
        self.delay = delay
        self.faults: list[BaseException] = []
        self.calls = 0
        self.active = 0
        self.peak = 0

    def check(self) -> None:
        pass

    async def complete(
        self, messages: Sequence[Message], params: SamplingParams, *, timeout: float
    ) -> ChatResponse:
        self.calls += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.faults:
                raise self.faults.pop(0)
            return ChatResponse(
                text=f"echo: {messages[-1].content}", prompt_tokens=10, completion_tokens=5
            )
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        pass


def user(text: str) -> list[Message]:
    return [Message("system", "be brief"), Message("user", text)]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# -- cache and ledger ------------------------------------------------------------------------------


def test_a_repeated_request_is_served_from_the_cache_and_costs_nothing() -> None:
    backend = FakeBackend()
    client = LLMClient(backend, scheduler=Scheduler())

    async def go() -> tuple[ChatResponse, ChatResponse]:
        return await client.chat(user("hi")), await client.chat(user("hi"))

    first, second = run(go())
    assert backend.calls == 1
    assert first.text == second.text == "echo: hi"
    assert not first.from_cache and second.from_cache
    assert first.cost_usd == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    assert second.cost_usd == 0.0
    assert second.price_usd == first.price_usd == first.cost_usd  # what the answer cost, once
    assert client.stats.calls == 1 and client.stats.cache_hits == 1


def test_a_rerun_against_the_same_store_makes_zero_requests(tmp_path: Path) -> None:
    prompts = [user(f"latent {i}") for i in range(20)]
    with Store.open(tmp_path) as store:
        run_id = store.start_run("r", {})
        backend = FakeBackend()
        run(LLMClient(backend, store=store, run_id=run_id).chat_many(prompts))
        assert backend.calls == 20
    with Store.open(tmp_path) as store:  # a new process: nothing in memory
        rerun = FakeBackend()
        answers = run(LLMClient(rerun, store=store).chat_many(prompts))
        assert rerun.calls == 0
        assert [a.text for a in answers] == [f"echo: latent {i}" for i in range(20)]
        usage = store.usage()
        assert usage.calls == 20 and usage.cache_hits == 20
        assert usage.prompt_tokens == 200 and usage.completion_tokens == 100


def test_identical_requests_in_flight_share_one_call() -> None:
    backend = FakeBackend(delay=0.05)
    client = LLMClient(backend, scheduler=Scheduler())
    answers = run(client.chat_many([user("same")] * 10))
    assert backend.calls == 1
    assert all(isinstance(a, ChatResponse) and a.text == "echo: same" for a in answers)
    assert client.stats.shared == 9
    assert sum(a.cost_usd for a in answers) == answers[0].price_usd > 0  # paid once
    assert {a.price_usd for a in answers} == {answers[0].price_usd}


def test_sampling_parameters_and_seed_are_part_of_the_cache_key() -> None:
    backend = FakeBackend()
    client = LLMClient(backend, scheduler=Scheduler())

    async def go() -> None:
        for params in [SamplingParams(), SamplingParams(temperature=0.7), SamplingParams(seed=1)]:
            await client.chat(user("x"), params)
            await client.chat(user("x"), params)

    run(go())
    assert backend.calls == 3
    payload = request_payload("fake", "fake-1", user("x"), SamplingParams(seed=3))
    assert payload["params"]["seed"] == 3 and payload["client"] == "fake"


def test_responses_round_trip_through_the_store_format() -> None:
    response = ChatResponse(
        text="a",
        prompt_tokens=3,
        logprobs=(TokenLogprob("a", -0.5, (("a", -0.5), ("b", -1.5))),),
        finish_reason="stop",
    )
    assert ChatResponse.from_dict(response.to_dict()) == response


# -- retries ---------------------------------------------------------------------------------------


def test_transient_failures_are_retried_until_an_answer_comes() -> None:
    backend = FakeBackend()
    backend.faults = [
        ServerError("503", status=503),
        LLMConnectionError("dropped"),
        LLMTimeoutError("slow"),
    ]
    client = LLMClient(backend, scheduler=Scheduler())
    assert run(client.chat(user("q"))).text == "echo: q"
    assert backend.calls == 4
    assert client.stats.retries == 3
    assert dict(client.stats.errors) == {"server_error": 1, "connection": 1, "timeout": 1}


def test_other_client_errors_are_never_retried() -> None:
    backend = FakeBackend()
    backend.faults = [RequestRejectedError("HTTP 400: bad", status=400)]
    client = LLMClient(backend, scheduler=Scheduler())
    with pytest.raises(RequestRejectedError):
        run(client.chat(user("q")))
    assert backend.calls == 1 and client.stats.failures == 1
    assert isinstance(client.store, MemoryCallStore) and not client.store.calls


def test_giving_up_after_the_retry_budget_names_the_last_error() -> None:
    backend = FakeBackend(max_retries=2, breaker_threshold=100)
    backend.faults = [ServerError(f"HTTP 500 #{i}", status=500) for i in range(5)]
    client = LLMClient(backend, scheduler=Scheduler())
    with pytest.raises(RetriesExhaustedError, match=r"after 3 attempts.*#2") as info:
        run(client.chat(user("q")))
    assert isinstance(info.value.last, ServerError)
    assert backend.calls == 3


def test_retry_after_is_honoured_and_pauses_the_endpoint() -> None:
    backend = FakeBackend()
    backend.faults = [RateLimitedError("429", status=429, retry_after=0.3)]
    client = LLMClient(backend, scheduler=Scheduler())

    async def go() -> float:
        first = asyncio.create_task(client.chat(user("a")))
        await asyncio.sleep(0.05)  # "a" got its 429; "b" must wait for the pause too
        start = time.monotonic()
        await client.chat(user("b"))
        await first
        return time.monotonic() - start

    assert run(go()) >= 0.2
    assert backend.calls == 3


def test_a_hanging_backend_is_cut_off_by_the_timeout() -> None:
    backend = FakeBackend(delay=5.0, timeout_s=0.1, max_retries=1)
    client = LLMClient(backend, scheduler=Scheduler())
    start = time.monotonic()
    with pytest.raises(RetriesExhaustedError, match=r"no answer within 0\.1s"):
        run(client.chat(user("q")))
    assert time.monotonic() - start < 2


def test_retry_after_header_values() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past


# -- scheduling ------------------------------------------------------------------------------------


def test_the_concurrency_cap_bounds_requests_in_flight() -> None:
    backend = FakeBackend(delay=0.02, max_concurrency=4)
    client = LLMClient(backend, scheduler=Scheduler())
    run(client.chat_many([user(str(i)) for i in range(40)]))
    assert backend.calls == 40 and backend.peak == 4


def test_clients_of_one_endpoint_share_its_limits() -> None:
    scheduler = Scheduler()
    a, b = FakeBackend(delay=0.02, max_concurrency=3), FakeBackend(delay=0.02, max_concurrency=3)
    shared_peak = 0

    async def go() -> None:
        nonlocal shared_peak
        ca, cb = LLMClient(a, scheduler=scheduler), LLMClient(b, scheduler=scheduler)
        tasks = [ca.chat_many([user(f"a{i}") for i in range(15)])]
        tasks.append(cb.chat_many([user(f"b{i}") for i in range(15)]))
        gathered = asyncio.gather(*tasks)
        while not gathered.done():
            shared_peak = max(shared_peak, a.active + b.active)
            await asyncio.sleep(0.005)

    run(go())
    assert shared_peak <= 3


def test_the_rate_limiter_paces_requests() -> None:
    async def go() -> float:
        limiter = RateLimiter(per_minute=60 * 100, burst_s=0.01)  # 100/s, burst of 1
        start = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(21)))
        return time.monotonic() - start

    assert 0.15 <= run(go()) < 1.0


def test_a_tokens_per_minute_limit_is_applied() -> None:
    backend = FakeBackend(delay=0.05, tokens_per_minute=60 * 3000)  # 3000 tokens/s, burst 30000
    client = LLMClient(backend, scheduler=Scheduler())
    params = SamplingParams(max_tokens=1000)
    start = time.monotonic()
    run(client.chat_many([[Message("user", str(i))] for i in range(33)], params))
    assert time.monotonic() - start >= 0.25  # 33 000 estimated tokens > the 30 000 burst


def test_the_circuit_breaker_opens_probes_once_and_closes() -> None:
    async def go() -> list[str]:
        breaker = CircuitBreaker(threshold=2, cooldown_s=0.1)
        events = []
        breaker.failure(False)
        assert breaker.state == "closed"
        breaker.failure(False)
        assert breaker.state == "open"

        async def request(i: int) -> None:
            probe = await breaker.admit()
            events.append(f"{i}:{'probe' if probe else 'go'}")
            if probe:
                await asyncio.sleep(0.05)
                breaker.success(probe)

        start = time.monotonic()
        await asyncio.gather(*(request(i) for i in range(4)))
        assert time.monotonic() - start >= 0.09
        assert breaker.state == "closed"
        return events

    events = run(go())
    assert sum("probe" in e for e in events) == 1 and events[0].endswith("probe")


def test_a_failing_endpoint_pauses_requests_instead_of_hammering_it() -> None:
    backend = FakeBackend(breaker_threshold=3, breaker_cooldown_s=0.2, max_retries=20)
    backend.faults = [ServerError("500", status=500) for _ in range(6)]
    client = LLMClient(backend, scheduler=Scheduler())
    start = time.monotonic()
    answers = run(client.chat_many([user(str(i)) for i in range(10)]))
    assert all(isinstance(a, ChatResponse) for a in answers)
    assert time.monotonic() - start >= 0.2  # at least one cooldown
    assert backend.calls == 16  # every fault and every answer: no extra attempts


def test_a_client_works_across_event_loops() -> None:
    client = LLMClient(FakeBackend(), scheduler=Scheduler())
    assert run(client.chat(user("one"))).text == "echo: one"
    assert run(client.chat(user("two"))).text == "echo: two"


# -- parsing with re-asks --------------------------------------------------------------------------


def parse_number(text: str) -> int:
    try:
        return int(text.rsplit(":", 1)[-1])
    except ValueError:
        raise ParseError(f"expected a number, got {text!r}") from None


def test_an_unparseable_answer_is_re_asked_quoting_the_error() -> None:
    class Scripted(FakeBackend):
        answers = ("no idea", "42")
        seen: ClassVar[list[Sequence[Message]]] = []

        async def complete(self, messages, params, *, timeout):  # type: ignore[no-untyped-def]
            self.seen.append(messages)
            return ChatResponse(text=self.answers[len(self.seen) - 1])

    backend = Scripted()
    client = LLMClient(backend, scheduler=Scheduler())
    value, responses = run(chat_parsed(client, user("n?"), parse_number))
    assert value == 42 and len(responses) == 2
    reask = backend.seen[1]
    assert reask[-2] == Message("assistant", "no idea")
    assert "expected a number, got 'no idea'" in reask[-1].content


def test_a_never_parseable_answer_fails_with_its_reason() -> None:
    client = LLMClient(FakeBackend(), scheduler=Scheduler())
    with pytest.raises(UnparseableResponseError, match="after 3 attempts: expected a number"):
        run(chat_parsed(client, user("n?"), parse_number, max_reasks=2))


# -- keys and redaction ----------------------------------------------------------------------------


def test_keys_come_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", "env-key-123456")
    key = resolve_api_key("FAKE_API_KEY", provider="fake")
    assert key.reveal() == "env-key-123456"
    assert "env-key" not in repr(key) and "env-key" not in str(key)


@pytest.mark.parametrize(
    "text", ['FAKE_API_KEY = "file-key-123456"\n', "export FAKE_API_KEY='file-key-123456'\n"]
)
def test_keys_come_from_a_keys_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.delenv("FAKE_API_KEY", raising=False)
    keys = tmp_path / "keys"
    keys.write_text(text)
    assert resolve_api_key("FAKE_API_KEY", keys, provider="fake").reveal() == "file-key-123456"
    monkeypatch.setenv("AUTOINTERP_KEYS_FILE", str(keys))
    assert resolve_api_key("FAKE_API_KEY", provider="fake").reveal() == "file-key-123456"


def test_a_missing_key_is_an_error_naming_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_API_KEY", raising=False)
    monkeypatch.setenv("AUTOINTERP_KEYS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(MissingAPIKeyError, match="does not exist"):
        resolve_api_key("FAKE_API_KEY", provider="fake")
    monkeypatch.delenv("AUTOINTERP_KEYS_FILE")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MissingAPIKeyError, match=r"set \$FAKE_API_KEY"):
        resolve_api_key("FAKE_API_KEY", provider="fake")


def test_secrets_are_redacted_from_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("planted-secret-value-987")
    assert "planted" not in redact(f"header: Bearer {secret.reveal()}")
    assert "abcdefghijklmnop" not in redact("key sk-proj-abcdefghijklmnopqrstuvwxyz")
    error = LLMError(f"HTTP 401: incorrect key {secret.reveal()}")
    assert "planted-secret" not in str(error)
    with caplog.at_level(logging.DEBUG, logger="autointerp.llm"):
        logging.getLogger("autointerp.llm").warning("sent %s", secret.reveal())
    assert "planted-secret" not in caplog.text and "[REDACTED]" in caplog.text


def test_importing_llm_imports_no_sdk() -> None:
    import subprocess

    code = (
        "import sys, autointerp.llm; "
        "print(sorted(m for m in ('openai', 'anthropic', 'torch', 'httpx2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pricing_uses_the_longest_model_prefix_and_config_overrides() -> None:
    table = {"gpt-4o": Pricing(2.5, 1.25, 10.0), "gpt-4o-mini": Pricing(0.15, 0.075, 0.6)}
    assert Pricing.resolve(EndpointConfig(), table, "gpt-4o-mini-2024").prompt == 0.15
    config = EndpointConfig(price_completion_per_mtok=1.0)
    assert Pricing.resolve(config, table, "gpt-4o").completion == 1.0
    assert Pricing(1.0, 0.5, 2.0).cost(1_000_000, 500_000, 0) == pytest.approx(0.75)


def test_errors_survive_pickling_with_their_details() -> None:
    import pickle

    last = RateLimitedError("HTTP 429", status=429, retry_after=2.0)
    error = pickle.loads(pickle.dumps(RetriesExhaustedError("gave up", last)))
    assert isinstance(error, RetriesExhaustedError) and str(error) == "gave up"
    assert error.last.retry_after == 2.0 and error.status == 429


# -- nothing waits forever -------------------------------------------------------------------------


def test_waiting_for_an_open_breaker_holds_no_concurrency_slot() -> None:
    backend = FakeBackend(breaker_threshold=1, breaker_cooldown_s=0.3, max_concurrency=2)
    backend.faults = [ServerError("500", status=500)]
    client = LLMClient(backend, scheduler=Scheduler())

    async def go() -> tuple[int, str]:
        first = asyncio.create_task(client.chat(user("first")))
        await asyncio.sleep(0.05)  # its 500 opened the breaker
        others = [asyncio.create_task(client.chat(user(str(i)))) for i in range(5)]
        await asyncio.sleep(0.05)
        ep = client.scheduler.endpoint("fake", backend.config)
        seen = (ep.slots.in_use, ep.breaker.state)
        await asyncio.gather(first, *others)
        return seen

    in_use, state = run(go())
    assert state == "open" and in_use == 0


def test_an_endpoint_failing_everything_is_given_up_on_in_bounded_time() -> None:
    backend = FakeBackend(
        breaker_threshold=3, breaker_cooldown_s=0.05, breaker_give_up_s=0.6, max_retries=10_000
    )
    backend.faults = [ServerError("HTTP 503: overloaded", status=503) for _ in range(10_000)]
    client = LLMClient(backend, scheduler=Scheduler())
    start = time.monotonic()
    answers = run(client.chat_many([user(str(i)) for i in range(50)]))
    assert time.monotonic() - start < 5
    assert all(isinstance(a, EndpointUnavailableError) for a in answers)
    message = str(answers[0])
    assert "fake: unavailable" in message and "HTTP 503: overloaded" in message
    assert "rerun to resume" in message
    assert backend.calls < 30  # paused and probed, not hammered


def test_the_breaker_pause_is_capped() -> None:
    async def go() -> float:
        breaker = CircuitBreaker(1, cooldown_s=1.0, max_cooldown_s=2.0, give_up_s=1e6)
        breaker.failure(False)
        for _ in range(20):  # twenty failed probes: 2**19 s uncapped
            breaker.state = "half_open"
            breaker.failure(True)
        return breaker.open_until - time.monotonic()

    assert run(go()) <= 2.0


def test_a_huge_retry_after_does_not_pause_the_run_for_long() -> None:
    backend = FakeBackend(backoff_max_s=0.05)  # at most 5 x backoff_max_s, and at least 1 s
    backend.faults = [RateLimitedError("429", status=429, retry_after=86_400)]
    client = LLMClient(backend, scheduler=Scheduler())
    start = time.monotonic()
    assert run(client.chat(user("q"))).text == "echo: q"
    assert time.monotonic() - start < 3


def test_cancelled_requests_lose_no_slot_probe_or_shared_future() -> None:
    backend = FakeBackend(delay=0.02, max_concurrency=8, breaker_threshold=2)
    backend.faults = [ServerError("500", status=500) for _ in range(4)]
    client = LLMClient(backend, scheduler=Scheduler())
    rng = __import__("random").Random(1)

    async def go() -> tuple[int, int, str, int]:
        tasks = [asyncio.create_task(client.chat(user(str(i % 60)))) for i in range(200)]
        for _ in range(60):
            await asyncio.sleep(rng.uniform(0, 0.01))
            rng.choice(tasks).cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ep = client.scheduler.endpoint("fake", backend.config)
        after = await client.chat(user("after"))  # the endpoint still works
        assert after.text == "echo: after"
        return ep.slots.in_use, len(client._in_flight), ep.breaker.state, ep.in_flight

    in_use, shared, state, in_flight = run(go())
    assert (in_use, shared, state, in_flight) == (0, 0, "closed", 0)


def test_client_side_timeouts_shrink_the_concurrency_and_answers_grow_it_back() -> None:
    async def go() -> list[float]:
        slots = ConcurrencyLimit(64)
        seen = [slots.limit]
        start = time.monotonic()
        slots.overloaded(start)
        slots.overloaded(start)  # the same wave: one cut
        seen.append(slots.limit)
        slots.overloaded(time.monotonic())
        seen.append(slots.limit)
        for _ in range(100):
            slots.answered()
        seen.append(slots.limit)
        return seen

    assert run(go()) == [64, 32, 16, 64]


def test_a_client_that_stalls_its_own_loop_does_not_blame_the_endpoint() -> None:
    class Stalling(FakeBackend):
        async def complete(self, messages, params, *, timeout):  # type: ignore[no-untyped-def]
            if self.calls < 6:
                self.calls += 1
                await asyncio.sleep(0)
                time.sleep(0.3)  # the event loop cannot run: a starved client
                raise LLMTimeoutError("fake: no answer within 0.2s", where="read")
            return await super().complete(messages, params, timeout=timeout)

    backend = Stalling(timeout_s=0.2, breaker_threshold=2, max_retries=10)
    client = LLMClient(backend, scheduler=Scheduler())

    async def go() -> tuple[list[ChatResponse | LLMError], int]:
        answers = await client.chat_many([user(str(i)) for i in range(3)])
        return answers, client.scheduler.endpoint("fake", backend.config).breaker.openings

    answers, trips = run(go())
    assert all(isinstance(a, ChatResponse) for a in answers)
    assert client.stats.errors["timeout"] >= 2 and client.stats.failures == 0
    assert trips == 0  # the breaker never opened: the stalls were the client's


def test_sdk_timeouts_say_how_far_the_request_got() -> None:
    import httpx2

    def sdk_error(cause: Exception) -> Exception:
        err = TimeoutError("timed out")
        err.__cause__ = cause
        return err

    req = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    cases = {
        "pool": httpx2.PoolTimeout("", request=req),
        "connect": httpx2.ConnectTimeout("", request=req),
        "read": httpx2.ReadTimeout("", request=req),
    }
    for where, cause in cases.items():
        error = timeout_error("openai", 5, sdk_error(cause))
        assert error.where == where
        assert error.blames_endpoint is (where != "pool")
    assert "no answer within 5s" in str(timeout_error("x", 5, sdk_error(cases["read"])))


# -- group commit and cache keys -------------------------------------------------------------------


def count_commits(store: Store) -> list[str]:
    """Every COMMIT the store's connection runs, from SQLite's own statement trace."""
    commits: list[str] = []
    store._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    return commits


def test_requests_answered_together_share_one_commit(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        run_id = store.start_run("r", {})
        commits = count_commits(store)
        client = LLMClient(FakeBackend(), store=store.bind(run_id), scheduler=Scheduler())
        answers = run(client.chat_many([user(f"latent {i}") for i in range(200)]))
        assert all(isinstance(a, ChatResponse) for a in answers)
        assert len(commits) < 20  # one per turn of the event loop, not one per call
        hits = run(client.chat_many([user(f"latent {i}") for i in range(200)]))
        assert all(isinstance(a, ChatResponse) and a.from_cache for a in hits)
        assert len(commits) < 40
        usage = store.usage(run_id)  # and still one ledger row per call
        assert (usage.calls, usage.cache_hits, usage.prompt_tokens) == (200, 200, 2000)
        assert usage.cost_usd == pytest.approx(200 * (10 * 1.0 + 5 * 2.0) / 1e6)


def test_an_answer_is_committed_before_chat_returns(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    client = LLMClient(FakeBackend(), store=store, scheduler=Scheduler())
    seen: list[int] = []

    async def go() -> None:
        for i in range(3):
            await client.chat(user(f"q{i}"))
            # what another process (a rerun after a crash right now) would read
            with Store.open(tmp_path) as other:
                seen.append(other.usage().calls)

    run(go())
    store.close()
    assert seen == [1, 2, 3]


def test_a_caller_cancelled_while_its_answer_is_written_still_pays_once(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        backend = FakeBackend()
        client = LLMClient(backend, store=store, scheduler=Scheduler())

        async def go() -> ChatResponse:
            task = asyncio.ensure_future(client.chat(user("q")))
            while backend.calls == 0:  # answered, now waiting for its commit
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await client.chat(user("q"))

        assert run(go()).from_cache
        assert backend.calls == 1 and store.usage().calls == 1


def test_one_bad_entry_fails_only_its_own_caller(tmp_path: Path) -> None:
    from autointerp.llm import GroupCommit
    from autointerp.types import LLMCall

    def call(h: str) -> LLMCall:
        return LLMCall(h, "fake", "fake-1", {"q": h}, {"text": h})

    with Store.open(tmp_path) as store:

        async def go() -> list[object]:
            group = GroupCommit(store)
            futures = [
                group.put(call("a"), None, False),
                group.put(call("never-paid"), None, True),  # a hit for what is not cached
                group.put(call("b"), None, False),
            ]
            return list(await asyncio.gather(*futures, return_exceptions=True))

        ok_a, bad, ok_b = run(go())
        assert ok_a is None and ok_b is None and "not in the cache" in str(bad)
        assert store.get_llm_call("a") and store.get_llm_call("b")
        assert store.usage().calls == 2 and store.usage().cache_hits == 0


def test_cache_keys_are_unchanged() -> None:
    """Hashes computed by the code that wrote existing runs' caches: a change here would make
    every old run pay for its requests again."""
    msgs = [Message("system", "be brief", cache=True), Message("user", 'héllo "x"')]
    full = SamplingParams(
        temperature=0.7,
        max_tokens=9,
        top_p=0.9,
        stop=("\n", "END"),
        seed=4,
        logprobs=True,
        top_logprobs=3,
        json_schema={"type": "object", "properties": {"a": {"type": "number"}}},
    )
    from autointerp.store import request_hash

    expected = [
        (SamplingParams(), "0fde9c954cec344400c2d641d1095abaeb82850d76dd65964918a0243fd5aff1"),
        (full, "b3af610037f16de81df88a4d7fdbb1f97e00e11f344a4cd7b5047337df051eb7"),
    ]
    for params, digest in expected:
        assert request_hash(request_payload("openai-compatible", "m", msgs, params)) == digest
    stored = ChatResponse(
        "t",
        model="m",
        prompt_tokens=3,
        logprobs=(TokenLogprob("a", -0.5, (("a", -0.5),)),),
        finish_reason="stop",
        from_cache=True,
        request_hash="h",
    ).to_dict()
    assert stored == {
        "text": "t",
        "model": "m",
        "prompt_tokens": 3,
        "cached_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "latency_s": 0.0,
        "finish_reason": "stop",
        "logprobs": [["a", -0.5, [["a", -0.5]]]],
    }
