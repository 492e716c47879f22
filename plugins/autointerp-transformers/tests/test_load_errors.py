"""A model that cannot load is one line, with the packaged name a typo was probably meant as."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_misspelt_packaged_name_is_one_line_with_a_suggestion(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_VERBOSITY", None)
    result = subprocess.run(
        [sys.executable, "-m", "autointerp", "sites", "smollm2-13m"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot load model 'smollm2-13m'")
    assert "did you mean 'smollm2-135m' (packaged, offline)?" in lines[0]


def test_an_unrelated_name_gets_no_suggestion(tmp_path) -> None:
    from autointerp_transformers.hooks import _packaged_hint

    assert _packaged_hint("EleutherAI/pythia-160m") == ""
    assert _packaged_hint("smollm-135m") == "; did you mean 'smollm2-135m' (packaged, offline)?"
