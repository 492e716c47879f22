"""examples/packaged_model.sh end to end on a tiny model (MODEL/ADAPTER overrides).

The script runs under bash with a stand-in ``autointerp`` on PATH that records each command line;
the commands are then run in process (one torch import instead of one per command)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autointerp.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "packaged_model.sh"


def test_packaged_model_script_on_a_tiny_model(autointerp_tiny_dirs, tmp_path: Path) -> None:
    pytest.importorskip("autointerp_steering")
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "commands.jsonl"
    stub = bin_dir / "autointerp"
    stub.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c \'import json, sys; '
        f'open(sys.argv[1], "a").write(json.dumps(sys.argv[2:]) + "\\n")\' "{log}" "$@"\n'
    )
    stub.chmod(0o755)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        "OUT": str(out),
        "TOKENS": "128",
        "EVAL_TOKENS": "128",
        "MULTIPLIERS": "-2,0,2",
        "ADAPTER": "mamba",
        "MODEL": str(autointerp_tiny_dirs["mamba"]),
        "LAYERS": "1",
        "BEHAVIORS": "hallucination",
    }
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    commands = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[:2] for c in commands] == [
        ["lens", "train"],
        ["lens", "eval"],
        ["lens", "top"],
        ["steer", "sweep"],
    ]
    for args in commands:
        if args[:2] == ["lens", "train"]:
            args.append("--no-progress")
        assert main(args) == 0, args
    assert json.loads((out / "lens" / "config.json").read_text())["corpus"] == "builtin:python-docs"
    assert (out / "eval" / "lens-eval.json").is_file()
    sweep = json.loads((out / "steer-hallucination" / "sweep.json").read_text())
    assert sweep["dataset"] == "hallucination" and len(sweep["residual"]["cells"]) == 3
