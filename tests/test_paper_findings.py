"""The paper-findings scripts (examples/paper-findings/) run end to end at a tiny size: a tiny
random GPT-2 as the subject, the scripted LLM server as explainer and scorer, and each script's
`autointerp analyze` tables, figures and results.md; one of them with pytest unimportable (the
README's install only). Their dry runs validate every config they would run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers

FOLDER = Path(__file__).resolve().parents[1] / "examples" / "paper-findings"
SCRIPTS = ("sampling", "deciles", "sae_vs_neurons", "layer_similarity")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tiny_model("gpt2"), tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture
def server() -> Iterator[ScriptedLLMServer]:
    with_server = ScriptedLLMServer().start()
    with_server.responder = scripted_answers("code words")
    try:
        yield with_server
    finally:
        with_server.stop()


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The scripts as modules (their folder on sys.path, as when run as files)."""
    import importlib

    monkeypatch.syspath_prepend(str(FOLDER))
    for name in ("findings", *SCRIPTS):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return {name: importlib.import_module(name) for name in SCRIPTS}


def tiny_overlay(tmp_path: Path, model: Path) -> Path:
    """A --config overlay: the tiny model and small sizes (the scaling path users take)."""
    path = tmp_path / "tiny.toml"
    path.write_text(
        f"""
concurrency = 4
[model]
model = "{model.as_posix()}"
[feature_source]
layer = 1
[corpus]
ctx_len = 32
batch_size = 4
n_tokens = 1024
[latents]
min_activations = 3
window = 16
n_train = 5
n_negatives = 2
""",
        encoding="utf-8",
    )
    return path


def common(tmp_path: Path, model: Path, server: ScriptedLLMServer, name: str) -> list[str]:
    return ["--config", str(tiny_overlay(tmp_path, model)), "--out", str(tmp_path / name),
            "--llm-base-url", server.openai_base_url, "--llm-model", "scripted",
            "--no-report"]  # fmt: skip


def test_deciles_runs_with_only_the_readme_install(
    tiny_gpt2: Path, server: ScriptedLLMServer, tmp_path: Path
) -> None:
    blocked = tmp_path / "no-test-tools"
    for name in ("pytest", "_pytest"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} blocked')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(blocked)}
    args = [*common(tmp_path, tiny_gpt2, server, "deciles"), "--latents", "2"]
    done = subprocess.run(
        [sys.executable, str(FOLDER / "deciles.py"), *args, "--set", "latents.n_test=10"],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = (tmp_path / "deciles" / "results.md").read_text()
    (found,) = (tmp_path / "deciles" / "figures").glob("deciles*.json")
    block = json.loads(found.read_text())["runs"][0]["scorers"]["detection"]
    # 2 latents x 10 activating examples, one per decile each; the scripted LLM always says 1
    assert {q: c["n"] for q, c in block["quantiles"].items()} == {str(q): 2 for q in range(10)}
    assert block["non_activating"]["n"] >= 1 and block["non_activating"]["accuracy"] == 0
    row = next(line for line in results.splitlines() if line.startswith("| detection |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "0.000" and cells[2:12] == ["1.000"] * 10
    assert cells[12] == str(20 + block["non_activating"]["n"])
    assert (tmp_path / "deciles" / "figures" / "deciles.svg").is_file()
    assert "[deciles.svg](figures/deciles.svg)" in results


def test_sampling_compares_every_train_sampler_on_one_cache(
    scripts: dict, tiny_gpt2: Path, server: ScriptedLLMServer, tmp_path: Path
) -> None:
    scripts["sampling"].main([*common(tmp_path, tiny_gpt2, server, "s"), "--latents", "2"])
    out = tmp_path / "s"
    results = (out / "results.md").read_text()
    for sampler in ("top", "quantiles", "random", "mixed"):
        assert f"| {sampler} | detection | 2 |" in results
    configs = sorted(p.name for p in (out / "configs").iterdir())
    assert configs == [f"sampling-{s}.toml" for s in ("mixed", "quantiles", "random", "top")]
    from autointerp.store import Store

    with Store.open(out / "run") as store:  # four runs, one cache
        runs = store.runs()
        samplers = [r.config["latents"]["train_sampler"] for r in runs]
        kinds = {e.kind for e in store.examples(runs[1].id, store.latents(runs[1].id)[0].latent)}
    assert samplers == ["top", "quantiles", "random", "mixed"]
    assert any(k.startswith("train-quantile:") for k in kinds), kinds
    assert [p.name for p in (out / "run" / "cache").iterdir()] == ["mlp_neurons.1"]
    (deciles,) = (out / "figures").glob("deciles*.json")  # per sampler, decile by decile
    blocks = json.loads(deciles.read_text())["runs"]
    assert [
        sum(c["n"] for c in b["scorers"]["detection"]["quantiles"].values()) for b in blocks
    ] == [2 * 10] * 4


def test_sae_vs_neurons_trains_an_sae_and_compares_both_sources(
    scripts: dict, tiny_gpt2: Path, server: ScriptedLLMServer, tmp_path: Path
) -> None:
    args = [*common(tmp_path, tiny_gpt2, server, "c"), "--latents", "3", "--layer", "1"]
    args += ["--k", "4", "--sae-tokens", "512", "--sae-batch-size", "128", "--sae-expansion", "2"]
    scripts["sae_vs_neurons"].main(args)
    out = tmp_path / "c"
    assert (out / "sae-resid_post.1.safetensors").is_file()
    results = (out / "results.md").read_text()
    assert "| sae | detection | 3 |" in results and "| neurons | detection | 3 |" in results
    sae = (out / "configs" / "sae-l1.toml").read_text()
    assert 'name = "sae"' in sae and "sae-resid_post.1.safetensors" in sae
    assert "top_k = 4" in (out / "configs" / "neurons-l1.toml").read_text()


def test_layer_similarity_explains_each_layer_and_builds_the_matrix(
    scripts: dict, tiny_gpt2: Path, server: ScriptedLLMServer, tmp_path: Path
) -> None:
    args = [*common(tmp_path, tiny_gpt2, server, "d"), "--latents", "2", "--layers", "0-1"]
    scripts["layer_similarity"].main(args)
    out = tmp_path / "d"
    (found,) = (out / "figures").glob("similarity*.json")
    data = json.loads(found.read_text())
    assert [r["n_explanations"] for r in data["runs"]] == [2, 2]
    # every explanation is "code words": every best match is the same text
    assert all(abs(v - 1) < 1e-4 for row in data["mean"] for v in row)
    assert "| 1 | 1.000 | 1 |" in (out / "results.md").read_text()
    with pytest.raises(SystemExit, match="--layers"):
        scripts["layer_similarity"].main([*args[:-2], "--layers", "two"])


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_validates_the_configs_and_runs_nothing(
    scripts: dict, script: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared-runs"
    args = ["--dry-run", "--out", str(tmp_path), "--runs", str(shared), "--set", "latents.n=7"]
    scripts[script].main(args)
    out = capsys.readouterr().out
    assert "autointerp analyze" in out and "nothing was run" in out
    configs = list((tmp_path / "configs").glob("*.toml"))
    assert configs and all("n = 7" in p.read_text() for p in configs)
    assert all(f'run_dir = "{shared.as_posix()}/' in p.read_text() for p in configs)
    assert not any(tmp_path.rglob("results.sqlite")) and not (tmp_path / "results.md").exists()
    with pytest.raises(SystemExit):
        scripts[script].main(["--dry-run", "--out", str(tmp_path), "--set", "latents.nn=1"])
