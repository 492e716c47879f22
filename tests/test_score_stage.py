"""The score stage: scorer + LLM client + results store, against the scripted server."""

from __future__ import annotations

import asyncio
import re

from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAICompatibleConfig

from autointerp.llm import LLMClient, Scheduler
from autointerp.pipeline import ScoreWork, score_explanations
from autointerp.plugins import PluginManager
from autointerp.store import Store
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.types import Example, Explanation, LatentRef

DAYS = re.compile(r"Monday|Friday|Sunday")


def example(text: str, seed: int) -> Example:
    words = text.split(" ")
    toks = tuple(w if i == 0 else " " + w for i, w in enumerate(words))
    acts = tuple(5.0 if DAYS.fullmatch(w) else 0.0 for w in words)
    return Example(tuple(seed * 100 + i for i in range(len(toks))), toks, acts)


ACTIVATING = ["we met on Monday", "closed on Friday", "see you Sunday"]
NEGATIVE = ["the cat sat", "prices rose again", "a storm hit"]


def work(latents: range) -> list[ScoreWork]:
    return [
        ScoreWork(
            Explanation(LatentRef("src", i), "days of the week", "default"),
            [example(t, 10 * i + j) for j, t in enumerate(ACTIVATING)],
            [example(t, 10 * i + 5 + j) for j, t in enumerate(NEGATIVE)],
        )
        for i in latents
    ]


def respond(request) -> str:
    turn = request.body["messages"][-1]["content"]
    lines = [ln.split(": ", 1)[1] for ln in turn.splitlines() if ln.startswith("Example ")]
    return "Answer: [" + ", ".join(str(int(bool(DAYS.search(ln)))) for ln in lines) + "]"


def run_stage(server: ScriptedLLMServer, store: Store, run_id: int, items):
    async def go():
        config = OpenAICompatibleConfig(
            base_url=server.openai_base_url, backoff_base_s=0.01, backoff_max_s=0.02
        )
        client = LLMClient(OpenAIClient(config), store=store, run_id=run_id, scheduler=Scheduler())
        scorer = PluginManager().build("scorer", "detection", {"max_reasks": 0})
        try:
            return await score_explanations(
                items, scorer, "detection", store, run_id, llm=client, progress=False
            )
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_scores_are_committed_and_a_rerun_skips_them(
    autointerp_llm_server: ScriptedLLMServer, autointerp_run_dir
) -> None:
    autointerp_llm_server.responder = respond
    with Store.open(autointerp_run_dir) as store:
        run_id = store.start_run("t", {})
        summary = run_stage(autointerp_llm_server, store, run_id, work(range(4)))
        assert (summary.done, summary.failed, summary.skipped) == (4, 0, 0)
        scores = store.scores(run_id, "detection")
        assert [s.value for s in scores] == [1.0] * 4
        calls = len(autointerp_llm_server.requests)

        again = run_stage(autointerp_llm_server, store, run_id, work(range(6)))
        assert (again.done, again.skipped) == (2, 4)
        assert len(autointerp_llm_server.requests) > calls  # only the two new latents were asked
        assert len(store.scores(run_id)) == 6


def test_a_latent_without_held_out_activating_examples_is_not_scorable_never_zero(
    autointerp_llm_server: ScriptedLLMServer, autointerp_run_dir
) -> None:
    autointerp_llm_server.responder = respond
    negatives_only = [
        ScoreWork(w.explanation, (), w.negatives) for w in work(range(2))
    ]  # fired too rarely: every activating window went to the explainer
    with Store.open(autointerp_run_dir) as store:
        run_id = store.start_run("t", {})
        summary = run_stage(autointerp_llm_server, store, run_id, negatives_only)
        assert (summary.done, summary.failed) == (2, 0)
        scores = store.scores(run_id, "detection")
        assert [s.value for s in scores] == [None, None]
        assert all("no held-out activating examples" in s.meta["not_scorable"] for s in scores)
        assert not store.failures(run_id)
    assert autointerp_llm_server.requests == []  # nothing was asked: no number to make
