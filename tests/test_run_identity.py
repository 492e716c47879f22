"""A run is found by its directory, however the path is spelled (absolute, relative, the
default runs/<name>), and an attempt with another config that fails before any work neither hides
the finished run from status and export nor replaces its config.toml."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config

respond = scripted_answers()


def config(tmp_path: Path, server: ScriptedLLMServer, run_dir: Path | None = None) -> Path:
    model = tmp_path / "model"
    if not model.exists():
        save_tiny(tiny_model("gpt2"), model)
    return write_run_config(
        tmp_path / "run.toml", base_url=server.openai_base_url, model=model, run_dir=run_dir
    )


def test_absolute_and_relative_spellings_resume_one_run(
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    autointerp_llm_server.responder = respond
    path = config(tmp_path, autointerp_llm_server)  # run_dir = the absolute tmp_path/run
    monkeypatch.chdir(tmp_path)
    first = autointerp_cli("run", str(path), "--no-report")
    assert first.exit_code == 0, first.stderr
    paid = len(autointerp_llm_server.requests)
    assert paid >= 8

    for args in (
        ("run", "run", "--no-report"),  # the run directory, relative, from its parent
        ("run", "run.toml", "--run-dir", "run", "--no-report"),
        ("run", "run.toml", "--run-dir", "./sub/../run/", "--no-report"),
        ("score", "run"),
        ("explain", str(tmp_path / "run")),
    ):
        again = autointerp_cli(*args)
        assert again.exit_code == 0, (args, again.stderr)
    assert len(autointerp_llm_server.requests) == paid  # not one LLM request again
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert run.status == "finished" and len(store.explanations(run.id)) == 4


def test_the_default_run_directory_and_its_path_are_one_run(
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    autointerp_llm_server.responder = respond
    path = config(tmp_path, autointerp_llm_server)
    text = path.read_text().replace(f'run_dir = "{(tmp_path / "run").as_posix()}"\n', "")
    path.write_text(text)  # no run_dir: runs/<name>
    monkeypatch.chdir(tmp_path)
    assert autointerp_cli("run", "run.toml", "--no-report").exit_code == 0
    paid = len(autointerp_llm_server.requests)
    assert autointerp_cli("run", "runs/e2e", "--no-report").exit_code == 0
    assert autointerp_cli("run", str(tmp_path / "runs" / "e2e"), "--no-report").exit_code == 0
    assert len(autointerp_llm_server.requests) == paid
    with Store.open(tmp_path / "runs" / "e2e") as store:
        assert len(store.runs()) == 1


def test_a_failed_attempt_with_another_config_does_not_hide_the_finished_run(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    server = autointerp_llm_server
    server.responder = respond
    path = config(tmp_path, server)
    run_dir = tmp_path / "run"
    assert autointerp_cli("run", str(path), "--no-report").exit_code == 0
    recorded = (run_dir / "config.toml").read_bytes()
    paid = len(server.requests)

    # another corpus: another run, which fails in its cache stage before any latent is stored
    # (the directory's cache was made of another corpus)
    missing = tmp_path / "missing.txt"
    failed = autointerp_cli("run", str(path), "--set", f'corpus.path="{missing.as_posix()}"')
    assert failed.exit_code == 1 and "a cache of other settings" in failed.stderr
    with Store.open(run_dir) as store:
        finished, attempt = store.runs()
        assert (finished.status, attempt.status) == ("finished", "failed")
        assert attempt.config["corpus"]["path"] == missing.as_posix()  # its own config is kept
    assert (run_dir / "config.toml").read_bytes() == recorded  # the finished run's config

    status = autointerp_cli("status", str(run_dir), "--json")
    assert status.exit_code == 0, status.stderr
    rows = {r["stage"]: (r["done"], r["failed"], r["pending"]) for r in json.loads(status.stdout)}
    assert rows == {"explain": (4, 0, 0), "score": (4, 0, 0)}
    table = autointerp_cli("status", str(run_dir))
    assert f"run {finished.id} 'e2e': finished" in table.stdout
    assert f"run {attempt.id}; see --run-id" in table.stdout
    picked = autointerp_cli("status", str(run_dir), "--run-id", str(attempt.id))
    assert picked.exit_code == 0 and f"run {attempt.id} 'e2e': failed" in picked.stdout
    rows_of_attempt = autointerp_cli("status", str(run_dir), "--run-id", str(attempt.id), "--json")
    assert json.loads(rows_of_attempt.stdout) == []  # it did nothing
    unknown = autointerp_cli("status", str(run_dir), "--run-id", "99")
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == f"error: {run_dir}: no run 99; runs here: 1, 2"

    exported = autointerp_cli("export", str(run_dir))
    assert exported.exit_code == 0, exported.stderr
    lines = (run_dir / "export" / "explanations.jsonl").read_text().splitlines()
    assert len(lines) == 4

    again = autointerp_cli("score", str(run_dir))  # the directory's config: the finished run
    assert again.exit_code == 0, again.stderr
    assert len(server.requests) == paid

    # another config that does work takes the directory over: config.toml and the default run
    fewer = autointerp_cli("run", str(path), "--set", "latents.n=2", "--no-report")
    assert fewer.exit_code == 0, fewer.stderr
    assert tomllib.loads((run_dir / "config.toml").read_text())["latents"]["n"] == 2
    with Store.open(run_dir) as store:
        assert [r.status for r in store.runs()] == ["finished", "failed", "finished"]
    rows = json.loads(autointerp_cli("status", str(run_dir), "--json").stdout)
    assert {r["stage"]: r["done"] for r in rows} == {"explain": 2, "score": 2}


def test_a_run_keeps_the_test_sampler_it_began_with(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = respond
    path = config(tmp_path, autointerp_llm_server)
    first = autointerp_cli("run", str(path), "--no-report")
    assert first.exit_code == 0, first.stderr
    recorded = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert recorded["latents"]["test_sampler"] == "stratified"  # a new directory: the default
    paid = len(autointerp_llm_server.requests)

    other = autointerp_cli(
        "run", str(path), "--no-report", "--set", "latents.test_sampler=quantile-v1"
    )
    assert other.exit_code != 0
    (line,) = other.stderr.strip().splitlines()
    assert "latents.test_sampler" in line and "'stratified'" in line and "Traceback" not in line
    same = autointerp_cli(
        "run", str(path), "--no-report", "--set", "latents.test_sampler=stratified"
    )
    assert same.exit_code == 0, same.stderr
    assert len(autointerp_llm_server.requests) == paid
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert run.config["latents"]["test_sampler"] == "stratified"
