"""`autointerp run` end to end, offline: a tiny model, MLP neurons, the built-in corpus, and the
scripted LLM server behind the real OpenAI-compatible client. A rerun resumes and pays nothing."""

from __future__ import annotations

from pathlib import Path

from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config

respond = scripted_answers()


def config(tmp_path: Path, server: ScriptedLLMServer) -> Path:
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    return write_run_config(tmp_path / "run.toml", base_url=server.openai_base_url, model=model)


def test_run_caches_explains_scores_and_resumes(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = respond
    path = config(tmp_path, autointerp_llm_server)
    first = autointerp_cli("run", str(path))
    assert first.exit_code == 0, first.stderr
    assert "code words" in first.stdout
    run_dir = tmp_path / "run"
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert run.status == "finished"
        explanations = store.explanations(run.id)
        scores = store.scores(run.id, "detection")
        assert len(explanations) == 4 and len(store.latents(run.id)) == 4
        assert len(scores) == 4 and all(s.value is not None for s in scores)
        assert all(store.examples(run.id, e.latent) for e in explanations)
    requests = len(autointerp_llm_server.requests)
    assert requests >= 8  # one explanation and at least one detection call per latent

    again = autointerp_cli("run", str(path))
    assert again.exit_code == 0, again.stderr
    assert len(autointerp_llm_server.requests) == requests  # cached: not one request repeated
    with Store.open(run_dir) as store:
        (run,) = store.runs()  # the same run, resumed: every latent still stored exactly once
        assert len(store.explanations(run.id)) == 4 and len(store.scores(run.id)) == 4


def test_a_run_whose_llm_server_is_unreachable_ends_with_one_clear_error(
    autointerp_cli, tmp_path: Path
) -> None:
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on: every connect is refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    path = config_for(tmp_path, dead)
    overrides = ["llm.breaker_give_up_s=1", "llm.breaker_cooldown_s=0.05", "llm.max_retries=100"]
    start = time.monotonic()
    result = autointerp_cli("run", str(path), *[a for o in overrides for a in ("--set", o)])
    assert time.monotonic() - start < 120
    assert result.exit_code != 0
    assert "unavailable" in result.stderr and "rerun to resume" in result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert run.status == "failed"
        assert store.latents(run.id)  # the cache and latents are kept for the rerun


def config_for(tmp_path: Path, base_url: str) -> Path:
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    return write_run_config(tmp_path / "run.toml", base_url=base_url, model=model)
