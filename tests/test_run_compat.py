"""Behaviour does not drift: a run directory written by an earlier autointerp (the fixture, made
by tests/fixtures/make_run_before_contracts.py) resumes with zero LLM requests: the same examples,
the same prompts, the same cache keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer

FIXTURE = Path(__file__).parent / "fixtures" / "run-before-contracts"


def test_a_run_made_before_resumes_without_one_request(
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "compat"
    shutil.copytree(FIXTURE, work)
    save_tiny(tiny_model("gpt2"), work / "model")  # seeded: the weights the run was made with
    monkeypatch.chdir(work)
    with Store.open(work / "run") as store:
        (before,) = store.runs()
        explained = {e.latent: e.text for e in store.explanations(before.id)}
        scored = {(s.latent, s.scorer): s.value for s in store.scores(before.id)}
    assert explained and scored
    base_url = f'llm.base_url="{autointerp_llm_server.openai_base_url}"'
    result = autointerp_cli("run", "run.toml", "--no-report", "--set", base_url)
    assert result.exit_code == 0, result.stderr
    assert autointerp_llm_server.requests == []  # every prompt was answered before
    with Store.open(work / "run") as store:
        latest = store.runs()[-1]
        # recorded before the stratified test sampler: its directory keeps the one it drew with
        assert latest.config["latents"]["test_sampler"] == "quantile-v1"
        assert {e.latent: e.text for e in store.explanations(latest.id)} == explained
        assert {(s.latent, s.scorer): s.value for s in store.scores(latest.id)} == scored
