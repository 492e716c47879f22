"""The executor seam: work units (example building) go to the run's executor; a local process
pool gives exactly the results of the in-process default, reads its units lazily, and a dead
worker is a one-line error, never a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autointerp.executors import ExecutorError, ProcessPoolConfig, ProcessPoolExecutor
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config


def square(x: int) -> int:
    return x * x


def die(x: int) -> int:
    os._exit(3)


def snapshot(run_dir: Path) -> tuple[object, ...]:
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        latents = sorted(s.latent for s in store.latents(run.id))
        examples = {ref: store.examples(run.id, ref) for ref in latents}
        explanations = sorted((e.latent, e.text) for e in store.explanations(run.id))
        scores = sorted((s.latent, s.scorer, s.value, s.predictions) for s in store.scores(run.id))
    return latents, examples, explanations, scores


def test_a_process_pool_run_equals_the_in_process_run(
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import autointerp.pipeline as pipeline

    offloaded: list[str] = []
    real = pipeline.score_on_executor

    async def spy(work, step, *args, **kwargs):  # type: ignore[no-untyped-def]
        offloaded.append(step.component.name)
        return await real(work, step, *args, **kwargs)

    monkeypatch.setattr(pipeline, "score_on_executor", spy)
    autointerp_llm_server.responder = scripted_answers()
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    runs = {}
    for name, top in (("inproc", ""), ("pool", '[executor]\nname = "process-pool"\nworkers = 2')):
        path = write_run_config(
            tmp_path / f"{name}.toml", base_url=autointerp_llm_server.openai_base_url,
            model=model, run_dir=tmp_path / name, n_latents=20, top=top,
            scorers=("detection", "fuzzing", "myscorer"),
        )  # fmt: skip
        path.write_text(path.read_text().replace("[latents]", '[latents]\nnegatives = "mixed"'))
        result = autointerp_cli("run", str(path), "--no-report")
        assert result.exit_code == 0, result.stderr
        runs[name] = snapshot(tmp_path / name)
    latents, examples, _, _ = runs["inproc"]
    assert len(latents) > 16  # more than one work unit
    assert all(ex and all(e.str_tokens for e in ex) for ex in examples.values())
    scores = runs["inproc"][3]
    assert {s[1] for s in scores} == {"detection", "fuzzing", "myscorer"}  # myscorer: in workers
    assert offloaded == ["myscorer"]  # no LLM, no model: scored in the pool's workers
    assert runs["pool"] == runs["inproc"]


def test_the_pool_keeps_order_and_reads_units_lazily() -> None:
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield i

    pool = ProcessPoolExecutor(ProcessPoolConfig(workers=2, ahead=3))
    try:
        results = pool.map(square, items())
        assert next(results) == 0
        assert pulled <= 4  # three ahead, one more once the first was taken
        assert list(results) == [i * i for i in range(1, 100)]
    finally:
        pool.close()


def test_a_dead_worker_is_a_one_line_error() -> None:
    pool = ProcessPoolExecutor(ProcessPoolConfig(workers=1, unit_timeout_s=60))
    try:
        with pytest.raises(ExecutorError, match="a worker process died"):
            list(pool.map(die, range(3)))
    finally:
        pool.close()
