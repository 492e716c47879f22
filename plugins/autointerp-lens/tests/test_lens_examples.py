"""The three-architecture miniature runs end to end (tiny budgets) and prints its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "three_architectures.py"


def test_three_architecture_miniature(tmp_path: Path, no_test_tools_env) -> None:
    """Runs with pytest unimportable: the example needs only the README's install."""
    pytest.importorskip("autointerp_steering")
    env = no_test_tools_env
    args = [
        "--steps",
        "3",
        "--lens-steps",
        "2",
        "--layers",
        "2",
        "--d-model",
        "32",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "out"),
    ]
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mean KL tuned" in out.stdout and "steer x+4 (mid)" in out.stdout
    rows = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert [r["arch"] for r in rows] == ["gpt2", "mamba", "rwkv"]
