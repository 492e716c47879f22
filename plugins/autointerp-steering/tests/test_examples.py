"""The behaviour example runs with only the README's install (pytest unimportable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "caa_behaviors.py"


def without_test_tools(tmp_path: Path) -> dict[str, str]:
    blocked = tmp_path / "no-test-tools"
    for name in ("pytest", "_pytest"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed (blocked by the test)')\n"
        )
    path = os.pathsep.join(p for p in (str(blocked), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path}


def test_behaviour_example_with_a_judge(
    autointerp_tiny_dirs, autointerp_llm_server, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = lambda request: "Score: 3"
    out = tmp_path / "out"
    args = ["-a", "rwkv", "-m", str(autointerp_tiny_dirs["rwkv"]), "--layers", "1"]
    args += ["--behaviors", "sycophancy,refusal", "--multipliers=-2,0,2", "--out", str(out)]
    args += ["--judge-base-url", autointerp_llm_server.openai_base_url, "--max-new-tokens", "2"]
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        env=without_test_tools(tmp_path),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "p(matching) at layer 1" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["sycophancy", "refusal"]
    assert all(0 < v < 1 for row in summary.values() for v in row.values())
    data = json.loads((out / "refusal" / "sweep.json").read_text())
    assert len(data["residual"]["cells"]) == 3
    assert [c["metric"] for c in data["open_ended"]["cells"]] == [3.0, 3.0, 3.0]
    assert (out / "refusal" / "results.sqlite").is_file()
