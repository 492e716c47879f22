"""The fault storm, many times, idle and under CPU contention: it ends, loses nothing, pays once.

Hundreds of requests in flight through the real OpenAI SDK to the scripted server, which answers
with 429 + Retry-After, 500, hangs past the timeout, dropped connections and malformed bodies.
Every storm has a deadline, so a regression fails in seconds with the client's state instead of
hanging the suite.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAIConfig

from autointerp.llm import LLMClient, Message, Scheduler
from autointerp.store import Store
from autointerp.testing.contention import busy_cpus
from autointerp.testing.llm_server import (
    ScriptedLLMServer,
    drop,
    hang,
    malformed,
    rate_limit,
    server_error,
)

KEY = "sk-planted-storm-key-0123456789abcdefXYZ"
N = 300
DEADLINE_S = 90.0


def storm(server: ScriptedLLMServer, store: Store, seed: int) -> tuple[list[object], LLMClient]:
    rng = random.Random(seed)
    faults = [rate_limit(0.05), server_error(), server_error(503), malformed(), drop(), hang(2)]
    server.script(*[rng.choice(faults) for _ in range(60)])
    config = OpenAIConfig(
        base_url=server.openai_base_url,
        backoff_base_s=0.02,
        backoff_max_s=0.1,
        breaker_cooldown_s=0.05,
        breaker_threshold=50,
        timeout_s=0.5,
        max_retries=20,
    )
    client = LLMClient(OpenAIClient(config), store=store, scheduler=Scheduler())
    prompts = [[Message("user", f"storm {seed} latent {i}")] for i in range(N)]

    async def go() -> list[object]:
        try:
            async with asyncio.timeout(DEADLINE_S):
                return list(await client.chat_many(prompts))
        except TimeoutError:
            ep = next(iter(client.scheduler._by_loop[asyncio.get_running_loop()].values()))
            pytest.fail(
                f"storm {seed} stalled: {client.stats}, breaker {ep.breaker.state} "
                f"(trips {ep.breaker.trips}), slots {ep.slots.in_use}/{ep.slots.limit:g}, "
                f"server received {server.count()}"
            )
        finally:
            await client.aclose()

    return asyncio.run(go()), client


def check(answers: list[object], client: LLMClient, store: Store, seed: int) -> None:
    texts = [getattr(a, "text", repr(a)) for a in answers]
    assert texts == [f"answer to storm {seed} latent {i}" for i in range(N)]
    assert client.stats.peak_in_flight > 100  # hundreds in flight at once
    assert client.stats.calls == N  # each answered request paid exactly once
    ep_errors = sum(client.stats.errors.values())
    assert client.stats.requests == N + ep_errors


@pytest.fixture
def server(
    autointerp_llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> ScriptedLLMServer:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    autointerp_llm_server.latency = 0.05
    autointerp_llm_server.responder = lambda r: "answer to " + r.body["messages"][-1]["content"]
    return autointerp_llm_server


@pytest.mark.parametrize("contended", [False, True], ids=["idle", "busy-cpus"])
def test_the_fault_storm_always_ends_with_every_answer_paid_once(
    server: ScriptedLLMServer, tmp_path: Path, contended: bool
) -> None:
    rounds = range(3) if contended else range(5)
    with Store.open(tmp_path) as store:
        for seed in rounds:
            if contended:
                with busy_cpus():
                    answers, client = storm(server, store, seed)
            else:
                answers, client = storm(server, store, seed)
            check(answers, client, store, seed)
        assert store.usage().calls == N * len(rounds)
