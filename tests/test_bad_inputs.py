"""Bad input to `autointerp run`: exit non-zero, one line naming the field or file and what was
expected, no traceback, nothing finished lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config


@pytest.fixture
def config(tmp_path: Path, autointerp_llm_server: ScriptedLLMServer) -> Path:
    autointerp_llm_server.responder = scripted_answers()
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    return write_run_config(
        tmp_path / "run.toml", base_url=autointerp_llm_server.openai_base_url, model=model
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("latents.indices=[0, 99999, 100000]", "latents.indices: 99999 and 1 more outside the"),
        ("latents.n=100000", "latents.n = 100000: the feature source has only"),
        ("latents.min_activations=1000000", "no latent fires at least latents.min_activations"),
        ('corpus.path="missing.txt"', "missing.txt"),
    ],
)
def test_latent_choices_the_source_cannot_meet_are_one_line_errors(
    config: Path, autointerp_cli, autointerp_llm_server: ScriptedLLMServer, override: str,
    expected: str,
) -> None:  # fmt: skip
    result = autointerp_cli("run", str(config), "--no-report", "--set", override)
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, result.stderr
    assert "Traceback" not in result.stderr
    assert autointerp_llm_server.requests == []  # refused before any LLM call


def test_a_run_directory_that_cannot_be_written_is_one_line(
    config: Path, autointerp_cli, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the run directory should go")
    result = autointerp_cli("run", str(config), "--run-dir", str(blocker / "run"))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "not-a-dir" in last, result.stderr


@pytest.mark.parametrize("limit_kib", [48, 160])
def test_a_full_disk_is_one_line_and_the_same_command_then_finishes(
    config: Path, tmp_path: Path, limit_kib: int
) -> None:
    """A file-size limit (what a full disk or quota looks like to the process) stops the run
    with one line; with space again the same command resumes and finishes."""
    import os
    import resource
    import subprocess
    import sys

    from autointerp.store import Store

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kib << 10, limit_kib << 10))

    argv = [sys.executable, "-m", "autointerp", "run", str(config), "--no-report"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "300"}
    full = subprocess.run(argv, capture_output=True, text=True, env=env, preexec_fn=limit,
                          timeout=240, cwd=tmp_path)  # fmt: skip
    assert full.returncode == 1, full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "disk is full" in last, full.stderr
    assert "Traceback" not in full.stderr
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    with Store.open(tmp_path / "run") as store:
        run = store.runs()[-1]
        assert run.status == "finished" and len(store.explanations(run.id)) == 4
