"""The explain stage: explainer + LLM client + results store, against the scripted server."""

from __future__ import annotations

import asyncio

from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAICompatibleConfig

from autointerp.llm import LLMClient, Scheduler
from autointerp.pipeline import LatentWork, explain_latents
from autointerp.plugins import PluginManager
from autointerp.store import Store
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.types import Example, LatentRef


def example(word: str) -> Example:
    words = ["the", word, "again"]
    return Example(
        tokens=(1, 2, 3),
        str_tokens=tuple(" " + w for w in words),
        activations=(0.0, 5.0, 0.0),
    )


def work(n: int) -> list[LatentWork]:
    return [LatentWork(LatentRef("src", i), [example(f"w{i}")] * 3) for i in range(n)]


def run_stage(server: ScriptedLLMServer, store: Store, run_id: int, items, concurrency=8):
    async def go():
        config = OpenAICompatibleConfig(
            base_url=server.openai_base_url, backoff_base_s=0.01, backoff_max_s=0.02, max_retries=1
        )
        client = LLMClient(OpenAIClient(config), store=store, run_id=run_id, scheduler=Scheduler())
        explainer = PluginManager().build("explainer", "default", {"max_reasks": 0})
        try:
            return await explain_latents(
                items,
                explainer,
                "default",
                client,
                store,
                run_id,
                concurrency=concurrency,
                progress=False,
            )
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_explains_records_failures_and_resumes_without_new_calls(
    autointerp_llm_server: ScriptedLLMServer, autointerp_run_dir
) -> None:
    def respond(request) -> str:
        turn = request.body["messages"][-1]["content"]
        return "I cannot tell.\nThe examples vary." if "w3" in turn else "Explanation: the word w"

    autointerp_llm_server.responder = respond
    with Store.open(autointerp_run_dir) as store:
        run_id = store.start_run("t", {})
        summary = run_stage(autointerp_llm_server, store, run_id, work(12))
        assert (summary.done, summary.failed, summary.skipped) == (11, 1, 0)
        assert len(store.explanations(run_id)) == 11
        (((latent, component), reason),) = store.failures(run_id, "explain").items()
        assert latent == LatentRef("src", 3) and component == "default" and reason
        calls = len(autointerp_llm_server.requests)

        again = run_stage(autointerp_llm_server, store, run_id, work(12))
        assert (again.done, again.failed, again.skipped) == (0, 1, 11)
        # only the failed latent is asked again, and its request is answered from the cache
        assert len(autointerp_llm_server.requests) == calls
