"""`autointerp steer` end to end on tiny saved models, and a plugin listing without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autointerp.cli import main


@pytest.fixture
def pairs_file(tmp_path: Path, ab_pairs) -> Path:
    # short prompts: the tiny GPT-2 has 128 positions
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": p.prompt, "positive": p.positive, "negative": p.negative} for p in ab_pairs(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_listing_plugins_imports_no_torch() -> None:
    code = (
        "import sys; from autointerp.cli import main; rc = main(['plugins', '--json']); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = {r["plugin"]: r for r in json.loads(out.stdout)}
    assert rows["steering"]["status"] == "ok" and rows["steering"]["kind"] == "commands"


def _run(args: list[str]) -> int:
    return main(args)


@pytest.mark.parametrize("arch", ["gpt2", "rwkv"])
def test_steer_commands(arch, autointerp_tiny_dirs, tmp_path: Path, capsys, pairs_file) -> None:
    adapter = {"gpt2": "transformers", "rwkv": "rwkv"}[arch]
    model = ["-a", adapter, "-m", str(autointerp_tiny_dirs[arch])]
    vec = tmp_path / "v.safetensors"
    assert _run(["steer", "vectors", str(pairs_file), "--out", str(vec), *model]) == 0
    assert vec.is_file()
    out = tmp_path / "sweep"
    args = [
        "steer",
        "sweep",
        str(pairs_file),
        "--vectors",
        str(vec),
        "--out",
        str(out),
        "--multipliers",
        "-1,0,1",
        "--layers",
        "0,-1",
        *model,
    ]
    if arch == "gpt2":
        args += ["--positions", "-1"]
    if arch == "rwkv":
        args.append("--state")
    assert _run(args) == 0
    printed = capsys.readouterr().out
    assert "p(matching)" in printed and "resid_post.1" in printed
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["residual"]["cells"]) == 6
    assert (out / "sweep-residual.csv").is_file() and (out / "sweep-residual.svg").is_file()
    if arch == "rwkv":
        assert len(data["state"]["cells"]) == 6
    gen = [
        "steer",
        "generate",
        "Hello",
        "--vectors",
        str(vec),
        "--multiplier",
        "4",
        "--max-new-tokens",
        "3",
        *model,
    ]
    assert _run(gen) == 0
    assert "steered:" in capsys.readouterr().out


def test_cli_errors_are_one_line(autointerp_tiny_dirs, tmp_path: Path, capsys, pairs_file) -> None:
    model = ["-a", "transformers", "-m", str(autointerp_tiny_dirs["gpt2"])]
    assert _run(["steer", "vectors", str(tmp_path / "missing.jsonl"), *model]) == 1
    assert "dataset file not found" in capsys.readouterr().err
    assert _run(["steer", "sweep", str(pairs_file), "--layers", "7", *model]) == 1
    assert "out of range" in capsys.readouterr().err
