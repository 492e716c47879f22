"""The run's stages on a tiny model with the scripted LLM server: `explain` and `score` as separate
commands, the failure-rate exit code, provenance on every record, the progress counters, and the
decoder direction reaching scorers that need it."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAICompatibleConfig

from autointerp import __version__, hookimpl
from autointerp.config import EmptyConfig
from autointerp.examples import scored_examples
from autointerp.features import FeatureSource, SparseActivations
from autointerp.llm import LLMClient, Scheduler
from autointerp.pipeline import LatentWork, explain_latents, llm_meter
from autointerp.plugins import PluginManager
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import RecordedRequest, ScriptedLLMServer, reject, reply
from autointerp.testing.runs import scripted_answers, write_run_config
from autointerp.types import Example, LatentRef, Score

#: parseable explanations, detection answers (all active) and intervention choices
respond = scripted_answers(suffix="\nAnswer: A")


def write_config(
    tmp_path: Path,
    server: ScriptedLLMServer,
    *,
    source: str | None = None,
    scorers: str = "",
    top: str = "",
) -> Path:
    model = tmp_path / "model"
    if not model.exists():
        save_tiny(tiny_model("gpt2"), model)
    return write_run_config(
        tmp_path / "run.toml", base_url=server.openai_base_url, model=model, name="stages",
        concurrency=1, source=source, scorers=scorers or ("detection",), top=top,
    )  # fmt: skip


# -- failure rate ------------------------------------------------------------------------------


def test_a_failing_latent_never_aborts_and_the_rate_decides_the_exit_code(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    server = autointerp_llm_server
    failing: set[str] = set()
    lock = threading.Lock()

    def one_latent_rejected(request: RecordedRequest):
        key = json.dumps(request.body, sort_keys=True)
        with lock:
            if not failing:  # the first request (latent 0's explanation) is rejected for good
                failing.add(key)
        return reject(400, "this prompt is refused") if key in failing else reply(respond(request))

    server.responder = one_latent_rejected
    path = write_config(tmp_path, server)
    run_dir = tmp_path / "run"

    over = autointerp_cli("run", str(path))
    assert over.exit_code == 1
    error = over.stderr.strip().splitlines()[-1]
    assert error.startswith("error: explain (default): 1 of 4 latents failed (25%)")
    assert "max_failure_rate = 0.1" in error and f"autointerp status {run_dir}" in error
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert run.status == "failed"
        assert len(store.explanations(run.id)) == 3  # the others went on
        assert len(store.scores(run.id)) == 3
        ((latent, component),) = store.failures(run.id)
        assert component == "default" and latent.index == 0

    status = autointerp_cli("status", str(run_dir))
    assert status.exit_code == 0 and "'stages': failed" in status.stdout
    assert "this prompt is refused" in status.stdout  # the failed latent's reason is listed
    listed = autointerp_cli("status", str(run_dir), "--failures", "--json")
    (row,) = json.loads(listed.stdout)
    assert (row["stage"], row["component"], row["latent"]) == ("explain", "default", 0)
    rows = json.loads(autointerp_cli("status", str(run_dir), "--json").stdout)
    counts = {r["stage"]: (r["done"], r["failed"], r["pending"]) for r in rows}
    assert counts == {"explain": (3, 1, 0), "score": (3, 0, 0)}  # no score waits on a failure

    under = autointerp_cli("run", str(path), "--set", "max_failure_rate=0.3")
    assert under.exit_code == 0, under.stderr
    with Store.open(run_dir) as store:
        (run,) = store.runs()  # the limit is not part of the run's identity: resumed
        assert run.status == "finished"
        assert len(store.failures(run.id)) == 1  # re-queued, failed again, within the limit


def test_max_failure_rate_is_validated(autointerp_cli) -> None:
    bad = autointerp_cli("config", "validate", "--set", "max_failure_rate=1.5")
    assert bad.exit_code == 1
    assert "max_failure_rate" in bad.stderr and "less than or equal to 1" in bad.stderr


# -- explain, then score ------------------------------------------------------------------------


def test_explain_then_score_as_separate_commands(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    server = autointerp_llm_server
    server.responder = respond
    path = write_config(tmp_path, server)
    run_dir = tmp_path / "run"

    run_dir.mkdir()
    early = autointerp_cli("score", str(run_dir))
    assert early.exit_code == 1 and "no config.toml" in early.stderr

    explained = autointerp_cli("explain", str(path))
    assert explained.exit_code == 0, explained.stderr
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert len(store.explanations(run.id)) == 4 and not store.scores(run.id)
        assert all(store.examples(run.id, s.latent, "top") for s in store.latents(run.id))
    explain_calls = len(server.requests)
    assert explain_calls == 4

    again = autointerp_cli("explain", str(run_dir))  # the run directory instead of the config
    assert again.exit_code == 0, again.stderr
    assert len(server.requests) == explain_calls  # resumed: nothing left to explain

    scored = autointerp_cli("score", str(run_dir))
    assert scored.exit_code == 0, scored.stderr
    score_calls = len(server.requests) - explain_calls
    assert score_calls >= 4
    with Store.open(run_dir) as store:
        (run,) = store.runs()  # one run all along
        assert len(store.explanations(run.id)) == 4 and len(store.scores(run.id, "detection")) == 4

    rescore = autointerp_cli("score", str(run_dir))
    assert rescore.exit_code == 0, rescore.stderr
    assert len(server.requests) == explain_calls + score_calls  # every score already done

    # other scorer options: the old scores do not count as done, they are redone
    changed = autointerp_cli(
        "score", str(run_dir), "--set", 'scorers=[{name="detection", batch_size=2}]'
    )
    assert changed.exit_code == 0, changed.stderr
    assert len(server.requests) > explain_calls + score_calls
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        scores = store.scores(run.id, "detection")
        assert len(scores) == 4 and len({s.provenance["options_hash"] for s in scores}) == 1


# -- provenance ---------------------------------------------------------------------------------


def test_every_explanation_and_score_carries_provenance_and_exports_it(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = respond
    path = write_config(tmp_path, autointerp_llm_server)
    run_dir = tmp_path / "run"
    assert autointerp_cli("run", str(path)).exit_code == 0
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        explanations, scores = store.explanations(run.id), store.scores(run.id)
        n_records = store._query("SELECT COUNT(*) FROM provenance")[0][0]
    assert len(explanations) == 4 and len(scores) == 4
    assert n_records == 2  # one record for the explainer's rows, one for the scorer's
    for record, component in [
        *((e, "default") for e in explanations),
        *((s, "detection") for s in scores),
    ]:
        p = record.provenance
        assert p["component"] == component and p["autointerp_version"] == __version__
        assert len(p["config_hash"]) == 16 and len(p["options_hash"]) == 16
        assert p["subject_model"] == f"transformers:{(tmp_path / 'model').as_posix()}"
        assert p["feature_source"] == "neurons/mlp_neurons.1"
        assert p["llm_client"] == "openai-compatible" and p["llm_model"]
        assert p["prompt_version"]
    assert explanations[0].provenance["prompt_version"] != "1"  # read from the loaded template
    assert {e.provenance["config_hash"] for e in explanations} == {
        s.provenance["config_hash"] for s in scores
    }

    assert autointerp_cli("export", str(run_dir)).exit_code == 0
    rows = [json.loads(line) for line in (run_dir / "export" / "scores.jsonl").open()]
    assert len(rows) == 4 and all(r["provenance"]["component"] == "detection" for r in rows)
    rows = [json.loads(line) for line in (run_dir / "export" / "explanations.jsonl").open()]
    assert all(r["provenance"]["config_hash"] == p["config_hash"] for r in rows)


# -- progress counters --------------------------------------------------------------------------


def _example(word: str) -> Example:
    return Example((1, 2, 3), (" the", " " + word, " again"), (0.0, 5.0, 0.0))


def test_in_flight_peaks_at_the_bound_and_tokens_match_the_ledger(
    autointerp_llm_server: ScriptedLLMServer, autointerp_run_dir: Path
) -> None:
    server = autointerp_llm_server
    server.latency = 0.15
    server.default_text = "Explanation: the word w"
    seen: list[str] = []

    async def go(store: Store, run_id: int) -> tuple[Any, Any]:
        config = OpenAICompatibleConfig(base_url=server.openai_base_url, max_concurrency=16)
        client = LLMClient(OpenAIClient(config), store=store, run_id=run_id, scheduler=Scheduler())
        explainer = PluginManager().build("explainer", "default", {"max_reasks": 0})
        work = [LatentWork(LatentRef("src", i), [_example(f"w{i}")] * 3) for i in range(12)]

        async def watch() -> None:
            while True:
                seen.append(llm_meter(client.stats))
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        try:
            summary = await explain_latents(
                work, explainer, "default", client, store, run_id, concurrency=3, progress=False
            )
        finally:
            watcher.cancel()
            await client.aclose()
        return summary, client.stats

    with Store.open(autointerp_run_dir) as store:
        run_id = store.start_run("t", {})
        summary, stats = asyncio.run(go(store, run_id))
        usage = store.usage(run_id)
    assert summary.done == 12
    assert stats.peak_in_flight == 3 == server.peak_in_flight  # the concurrency bound, reached
    assert stats.in_flight == 0
    assert stats.calls == usage.calls == 12
    assert stats.prompt_tokens == usage.prompt_tokens > 0
    assert stats.completion_tokens == usage.completion_tokens > 0
    assert stats.tokens == usage.prompt_tokens + usage.completion_tokens
    assert any(s.startswith("3 in flight") for s in seen)  # what the display showed mid-stage
    assert llm_meter(stats) == f"0 in flight · {stats.tokens:,} tokens · $0.0000"


# -- decoder directions -------------------------------------------------------------------------


class DirectionProbe:
    """A scorer that needs the decoder direction and keeps what it got in the score's meta."""

    needs = frozenset({"direction"})

    def __init__(self, config: Any) -> None:
        pass

    async def score(self, explanation, examples, negatives, llm, *, direction=None, **_: Any):
        return Score(
            explanation.latent,
            "probe",
            explanation.explainer,
            1.0,
            meta={"direction": [float(x) for x in np.asarray(direction)]},
        )


class ProbePlugin:
    @hookimpl
    def autointerp_register_scorers(self, register):
        register("probe", DirectionProbe, config=EmptyConfig)


@pytest.fixture
def sae_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    d, n = 32, 16
    w_dec = torch.randn(n, d, generator=gen)
    tensors = {
        "W_enc": torch.randn(d, n, generator=gen),
        "b_enc": torch.zeros(n),
        "W_dec": w_dec,
        "b_dec": torch.zeros(d),
    }
    path = tmp_path / "sae.safetensors"
    save_file(tensors, str(path))
    return path, w_dec.numpy()


def test_the_latents_decoder_direction_reaches_scorers_that_need_it(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, autointerp_plugins, sae_file, tmp_path
) -> None:
    autointerp_llm_server.responder = respond
    autointerp_plugins.register(ProbePlugin(), "probe")
    sae, w_dec = sae_file
    source = f'name = "sae"\npath = "{sae.as_posix()}"\nsite = "resid_post.1"\nactivation = "relu"'
    scorers = (
        '[[scorers]]\nname = "probe"\n\n[[scorers]]\nname = "intervention"\nnew_tokens = 4\n'
        'prompts = ["The weather today", "In the code"]'
    )
    path = write_config(tmp_path, autointerp_llm_server, source=source, scorers=scorers)
    result = autointerp_cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        probes = store.scores(run.id, "probe")
        interventions = store.scores(run.id, "intervention")
        assert not store.failures(run.id)
    assert len(probes) == 4
    for s in probes:
        np.testing.assert_allclose(s.meta["direction"], w_dec[s.latent.index], rtol=1e-6)
    assert len(interventions) == 4  # the real scorer got its direction and scored


class ResidualSource(FeatureSource):
    """A feature source without decoder directions: the positive residual units of layer 1."""

    site = "resid_post.1"
    n_latents = d_in = 32  # the tiny model's width

    def __init__(self, config: Any) -> None:
        pass

    def encode(self, x):
        rows, latents = (x > 0).nonzero(as_tuple=True)
        return SparseActivations(rows, latents, x[rows, latents])


class ResidualSourcePlugin:
    @hookimpl
    def autointerp_register_feature_sources(self, register):
        register("residual", ResidualSource, config=EmptyConfig)


def test_a_scorer_needing_directions_a_source_lacks_is_refused_before_any_compute(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, autointerp_plugins, tmp_path
) -> None:
    autointerp_llm_server.responder = respond
    autointerp_plugins.register(ProbePlugin(), "probe")
    autointerp_plugins.register(ResidualSourcePlugin(), "residual")
    scorers = '[[scorers]]\nname = "detection"\n\n[[scorers]]\nname = "probe"'
    source = 'name = "residual"'
    path = write_config(tmp_path, autointerp_llm_server, source=source, scorers=scorers)
    result = autointerp_cli("run", str(path))  # the residual source has no decoder directions
    assert result.exit_code != 0
    (line,) = [ln for ln in result.stderr.splitlines() if "probe" in ln]
    assert "scorers[1]: scorer 'probe' needs the latent's decoder direction" in line
    assert "the selected feature source has none" in line
    assert not (tmp_path / "run").exists()  # refused while planning: no cache, no store
    assert autointerp_llm_server.requests == []


# -- examples are built lazily ------------------------------------------------------------------


class PeekingExplainer:
    """Notes how many latents have stored examples when it is asked about each latent."""

    needs = frozenset()

    def __init__(self, config: Any) -> None:
        self.store_path: Path | None = None

    async def explain(self, latent, examples, llm, **_: Any):
        from autointerp.types import Explanation

        assert self.store_path is not None
        with Store(self.store_path) as store:
            (stored,) = store._query("SELECT COUNT(DISTINCT idx) FROM example_sets")[0]
        return Explanation(latent, "peeked", "peek", {"stored_before": stored})


class PeekPlugin:
    def __init__(self, explainer_holder: list[PeekingExplainer], store_path: Path) -> None:
        self.holder, self.store_path = explainer_holder, store_path

    def build(self, config: Any) -> PeekingExplainer:
        explainer = PeekingExplainer(config)
        explainer.store_path = self.store_path
        self.holder.append(explainer)
        return explainer

    @hookimpl
    def autointerp_register_explainers(self, register):
        register("peek", self.build, config=EmptyConfig)


def test_examples_are_built_per_unit_as_workers_ask(
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    autointerp_plugins,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from autointerp import pipeline

    monkeypatch.setattr(pipeline, "UNIT_LATENTS", 1)  # a unit per latent: laziness shows
    autointerp_llm_server.responder = respond
    run_dir = tmp_path / "run"
    built: list[PeekingExplainer] = []
    autointerp_plugins.register(PeekPlugin(built, run_dir / "results.sqlite"), "peek")
    path = write_config(tmp_path, autointerp_llm_server)
    result = autointerp_cli("explain", str(path), "--explainer", "peek")
    assert result.exit_code == 0, result.stderr
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        explanations = store.explanations(run.id, "peek")
    # one worker (concurrency = 1): latent k's examples exist, later latents' do not yet
    assert [e.meta["stored_before"] for e in explanations] == [1, 2, 3, 4]


def test_prompt_version_attribute_then_template_then_default() -> None:
    from types import SimpleNamespace

    from autointerp.pipeline import prompt_version

    assert prompt_version(SimpleNamespace(prompt_version="detection.v3")) == "detection.v3"
    template = SimpleNamespace(name="fuzzing", version=2)
    assert prompt_version(SimpleNamespace(template=template)) == "fuzzing.v2"
    assert prompt_version(object()) == "1"


def test_the_summary_table_is_capped_and_prints_explanations_verbatim(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path, monkeypatch
) -> None:
    import autointerp.cli

    def bracketed(request: RecordedRequest) -> str:
        return respond(request).replace("code words", "[bold]tags[/bold]")

    autointerp_llm_server.responder = bracketed
    monkeypatch.setattr(autointerp.cli, "SUMMARY_ROWS", 3)
    result = autointerp_cli("explain", str(write_config(tmp_path, autointerp_llm_server)))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("[bold]tags[/bold]") == 3  # markup in an explanation is text
    assert "... and 1 more latents" in result.stdout


# -- the model adapter under concurrent scorers -------------------------------------------------


def test_concurrent_steered_and_plain_forwards_do_not_mix(tmp_path: Path) -> None:
    """Scorers run the model from many threads; a steering hook must never reach another pass."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from autointerp.adapter import Add
    from autointerp.pipeline import SerialAdapter
    from autointerp.testing.adapters import build_tiny, random_ids, torch_threads

    with torch_threads(1):
        adapter = SerialAdapter(build_tiny("gpt2", save_tiny(tiny_model("gpt2"), tmp_path / "m")))
        ids = random_ids(1, 24)
        with torch.inference_mode():
            plain = adapter.forward(ids).logits
        steer = [Add("resid_post.0", vector=torch.full((32,), 50.0))]

        def steered(_: int) -> None:
            with torch.inference_mode():
                adapter.forward(ids, interventions=steer)

        def unsteered(_: int) -> bool:
            with torch.inference_mode():
                return torch.equal(adapter.forward(ids).logits, plain)

        with ThreadPoolExecutor(4) as pool:
            noise = [pool.submit(steered, i) for i in range(60)]
            clean = list(pool.map(unsteered, range(60)))
            for f in noise:
                f.result()
    assert all(clean)


# -- stages overlap --------------------------------------------------------------------------------


class CountingScorer:
    """Notes how many latents were explained when it scores each one."""

    needs = frozenset({"llm"})  # in process: it sees the explain stage as it goes

    def __init__(self, config: Any) -> None:
        self.store_path: Path | None = None

    async def score(self, explanation, examples, negatives, llm, **_: Any):
        assert self.store_path is not None
        with Store(self.store_path) as store:
            (explained,) = store._query("SELECT COUNT(*) FROM explanations")[0]
        seen = [[x.kind, list(x.str_tokens), list(x.activations)] for x in [*examples, *negatives]]
        return Score(explanation.latent, "counting", explanation.explainer, 1.0,
                     meta={"explained_then": explained, "seen": seen})  # fmt: skip


def test_a_latent_is_scored_as_soon_as_it_is_explained(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, autointerp_plugins, tmp_path
) -> None:
    autointerp_llm_server.responder = respond
    run_dir = tmp_path / "run"

    class CountingPlugin:
        @hookimpl
        def autointerp_register_scorers(self, register):
            def build(config: Any) -> CountingScorer:
                scorer = CountingScorer(config)
                scorer.store_path = run_dir / "results.sqlite"
                return scorer

            register("counting", build, config=EmptyConfig)

    autointerp_plugins.register(CountingPlugin(), "counting")
    scorers = '[[scorers]]\nname = "counting"\n\n[[scorers]]\nname = "detection"'
    path = write_config(tmp_path, autointerp_llm_server, scorers=scorers)  # concurrency = 1
    result = autointerp_cli("run", str(path), "--no-report")
    assert result.exit_code == 0, result.stderr
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        counting = store.scores(run.id, "counting")
        counts = sorted(s.meta["explained_then"] for s in counting)
        assert len(store.scores(run.id, "detection")) == 4 and not store.failures(run.id)
        for score in counting:  # handed over in memory: exactly what the store holds
            test, negatives = scored_examples(store.examples(run.id, score.latent))
            stored = [
                [x.kind, list(x.str_tokens), list(x.activations)] for x in [*test, *negatives]
            ]
            assert score.meta["seen"] == stored
    # one latent in flight per stage: latent k is scored while the explain stage is at k or k+1,
    # not after all 4 were explained
    assert len(counts) == 4 and counts[0] <= 2 and counts != [4, 4, 4, 4]
