"""The score stage: scorer + LLM client + results store, against the scripted server."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAICompatibleConfig

from autointerp.examples import scored_examples
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


# -- the score stage's CPU savings: examples read once for all scorers, fewer full collections --


def test_shared_examples_are_read_once_for_the_scorers_that_still_need_them(
    autointerp_run_dir,
) -> None:
    from autointerp.pipeline import SharedExamples

    refs = [LatentRef("src", i) for i in range(4)]
    with Store.open(autointerp_run_dir) as store:
        run = store.bind(store.start_run("t", {}))
        for w, ref in zip(work(range(4)), refs, strict=True):
            stored = [replace(x, kind="quantile:0") for x in w.examples]
            run.put_examples(ref, [*stored, *(replace(x, kind="random") for x in w.negatives)])
        shared = SharedExamples(run, keep=2)
        detection = shared.reader(set())
        fuzzing = shared.reader({refs[1]})  # scored refs[1] already: never asks for it
        first = detection(refs[0])
        assert fuzzing(refs[0]) is first and shared.reads == 1  # the same decoded objects
        test, negatives = first
        assert [x.kind for x in test] == ["quantile:0"] * 3 and len(negatives) == 3
        assert (test, negatives) == scored_examples(run.examples(refs[0]))
        detection(refs[1])  # nobody else will ask: not kept
        assert shared.reads == 2 and not shared._kept
        for ref in refs[2:]:
            detection(ref)
        detection(refs[0])  # taken by both already: read again
        assert shared.reads == 5
        assert list(shared._kept) == [refs[3], refs[0]]  # at most keep=2: refs[2] dropped
        fuzzing(refs[3])
        assert shared.reads == 5 and list(shared._kept) == [refs[0]]
        assert fuzzing(refs[2]) == scored_examples(run.examples(refs[2]))  # dropped: read again
        assert shared.reads == 6


def test_full_collections_are_held_back_while_scoring_and_restored_after() -> None:
    import gc

    from autointerp.pipeline import SCORE_FULL_COLLECTION_EVERY, fewer_full_collections

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with fewer_full_collections():
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] == max(before[2], SCORE_FULL_COLLECTION_EVERY)
        assert gc.get_freeze_count() > frozen  # what was alive before is out of reach
        with fewer_full_collections():  # nested: the outer block's settings stay
            assert gc.get_threshold()[2] == max(before[2], SCORE_FULL_COLLECTION_EVERY)
        assert gc.get_freeze_count() > frozen
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect(1) >= 1  # young cycles are still collected
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen


def test_detection_and_fuzzing_read_each_latents_examples_once_and_score_as_alone(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path, monkeypatch
) -> None:
    import shutil

    from autointerp import pipeline
    from autointerp.testing.adapters import save_tiny, tiny_model
    from autointerp.testing.runs import scripted_answers, write_run_config

    autointerp_llm_server.responder = scripted_answers(answer="1")
    save_tiny(tiny_model("gpt2"), tmp_path / "model")
    config = write_run_config(
        tmp_path / "run.toml", base_url=autointerp_llm_server.openai_base_url,
        model=tmp_path / "model", scorers=("detection", "fuzzing"), concurrency=2,
    )  # fmt: skip
    result = autointerp_cli("explain", str(config), "--no-report")
    assert result.exit_code == 0, result.stderr
    shutil.copytree(tmp_path / "run", tmp_path / "alone")
    reads: list[LatentRef] = []
    examples = Store.examples

    def counted(self, run_id, latent, kind=None, **roles):
        reads.append(latent)
        return examples(self, run_id, latent, kind, **roles)

    monkeypatch.setattr(Store, "examples", counted)
    result = autointerp_cli("score", str(tmp_path / "run"), "--no-report")
    assert result.exit_code == 0, result.stderr
    assert len(reads) == 4 and len(set(reads)) == 4  # once per latent, not once per scorer

    # each scorer reading for itself (the code before sharing) scores exactly the same
    monkeypatch.setattr(
        pipeline.SharedExamples, "reader", lambda self, done: pipeline._read_examples(self._store)
    )
    reads.clear()
    result = autointerp_cli("score", str(tmp_path / "alone"), "--no-report")
    assert result.exit_code == 0, result.stderr
    assert len(reads) == 8

    def scores(run_dir) -> list[tuple]:
        with Store.open(run_dir) as store:
            (run,) = store.runs()
            return [
                (s.latent, s.scorer, s.value, s.metrics, s.predictions, s.meta)
                for s in sorted(store.scores(run.id), key=lambda s: (s.scorer, s.latent.index))
            ]

    shared, alone = scores(tmp_path / "run"), scores(tmp_path / "alone")
    assert len(shared) == 8 and {s[1] for s in shared} == {"detection", "fuzzing"}
    assert shared == alone
