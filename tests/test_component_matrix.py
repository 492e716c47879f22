"""Every registered component runs inside `autointerp run` and stores results.

One small offline run per variation (tiny random models, the scripted LLM server answering every
prompt kind), and a check that the matrix covers every explainer, scorer, feature source, model
adapter and LLM client installed: a component is done when it runs here, not when its unit tests
pass. Register a new one? Add a row to MATRIX.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from autointerp.plugins import PluginManager
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import RecordedRequest, ScriptedLLMServer
from autointerp.testing.runs import write_run_config

KEY = "sk-matrix-test-key-0123456789abcdefXYZ"
INTERVENTION = 'name = "intervention"\nnew_tokens = 4\nprompts = ["The weather today", "In code"]'
ALL_SCORERS = "\n\n".join(
    f"[[scorers]]\n{body}"
    for body in (
        'name = "detection"',
        'name = "fuzzing"',
        'name = "simulation"',
        'name = "surprisal"',
        'name = "embedding"',
        INTERVENTION,
        'name = "myscorer"',
    )
)

#: one run per row: what it selects (the rest is the base run's: transformers, neurons, default,
#: openai-compatible, detection)
MATRIX: dict[str, dict[str, Any]] = {
    "every-scorer": {"scorers": ALL_SCORERS},
    "contrastive": {"explainer": "contrastive"},
    "output_side": {"explainer": "output_side"},
    "best_of_k": {"explainer": "best_of_k"},
    "sae": {"source": "sae"},
    "planted": {"source": "planted"},
    "planted-rwkv": {"arch": "rwkv", "source": "planted"},
    "hashed": {"source": "hashed"},
    "mamba": {"arch": "mamba", "source": "sae"},
    "rwkv": {"arch": "rwkv", "source": "sae"},
    "openai": {"llm": "openai"},
    "anthropic": {"llm": "anthropic"},
}
ADAPTERS = {"gpt2": "transformers", "mamba": "mamba", "rwkv": "rwkv"}
#: components covered elsewhere, with where: not run here
ELSEWHERE = {
    ("llm_client", "local"): "plugins/autointerp-local/tests (the packaged model, minutes)",
    ("llm_client", "openai-batch"): "plugins/autointerp-openai/tests/test_batch.py (batch server)",
    ("llm_client", "anthropic-batch"): "plugins/autointerp-anthropic/tests/test_batch.py",
    ("explainer", "imported"): "plugins/autointerp-explainers/tests/test_imported.py (a file of "
    "explanations to import, written by `autointerp import` from a finished run)",
}


def answer(request: RecordedRequest) -> str:
    """A parseable answer to any prompt of the standard explainers and scorers."""
    turn = "\n".join(_text(request.messages[-1].get("content"))) if request.messages else ""
    tokens = [ln for ln in turn.splitlines() if re.match(r'^\d+ "', ln)]
    if tokens:  # simulation: one activation per listed token
        return "Answer: [" + ", ".join("0" for _ in tokens) + "]"
    n = sum(1 for ln in turn.splitlines() if ln.startswith("Example "))
    return "Explanation: code words\nAnswer: [" + ", ".join(["1"] * n) + "]\nAnswer: A"


def _text(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or () if isinstance(b, dict)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("matrix-models")
    return {a: save_tiny(tiny_model(a), root / a) for a in ("gpt2", "mamba", "rwkv")}


@pytest.fixture(scope="module")
def sae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    d, n = 32, 16  # the tiny models' width
    path = tmp_path_factory.mktemp("matrix-sae") / "sae.safetensors"
    save_file(
        {
            "W_enc": torch.randn(d, n, generator=gen),
            "b_enc": torch.zeros(n),
            "W_dec": torch.randn(n, d, generator=gen),
            "b_dec": torch.zeros(d),
        },
        str(path),
    )
    return path


def write(tmp_path: Path, server: ScriptedLLMServer, models: dict[str, Path], sae: Path,
          row: dict[str, Any]) -> Path:  # fmt: skip
    source = None
    if row.get("source") == "sae":
        source = (f'name = "sae"\npath = "{sae.as_posix()}"\nsite = "resid_post.1"\n'
                  'activation = "relu"')  # fmt: skip
    elif row.get("source") == "planted":
        source = 'name = "planted"'
    elif row.get("source") == "hashed":  # few latents, each firing often
        source = 'name = "hashed"\nwidth = 64\nk = 4\nn = 2'
    llm = row.get("llm", "openai-compatible")
    base = server.anthropic_base_url if llm == "anthropic" else server.openai_base_url
    path = write_run_config(
        tmp_path / "run.toml", base_url=base, model=models[row.get("arch", "gpt2")],
        n_latents=3, concurrency=3, scorers=row.get("scorers", ("detection",)), source=source,
        top="max_failure_rate = 1.0",
    )  # fmt: skip
    text = path.read_text()
    text = text.replace(
        '[explainer]\nname = "default"', f'[explainer]\nname = "{row.get("explainer", "default")}"'
    )
    text = text.replace('[llm]\nname = "openai-compatible"', f'[llm]\nname = "{llm}"')
    adapter = ADAPTERS[row.get("arch", "gpt2")]
    text = text.replace('[model]\nname = "transformers"', f'[model]\nname = "{adapter}"')
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(MATRIX))
def test_each_component_runs_inside_autointerp_run(
    case: str,
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    models: dict[str, Path],
    sae: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    autointerp_llm_server.responder = answer
    row = MATRIX[case]
    path = write(tmp_path, autointerp_llm_server, models, sae, row)
    result = autointerp_cli("run", str(path), "--no-report")
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        latents = store.latents(run.id)
        explanations = store.explanations(run.id)
        failures = store.failures(run.id)
        assert latents and explanations, failures
        assert {e.explainer for e in explanations} == {row.get("explainer", "default")}
        scorers = re.findall(r'name = "(\w+)"', row.get("scorers", 'name = "detection"'))
        for scorer in scorers:
            scores = store.scores(run.id, scorer)
            assert scores, (scorer, failures)
            assert all(s.scorer == scorer for s in scores)
    protocol = "anthropic" if row.get("llm") == "anthropic" else "openai"
    assert autointerp_llm_server.count(protocol) > 0


def test_the_matrix_covers_every_installed_component() -> None:
    plugins = PluginManager()
    covered: set[tuple[str, str]] = set(ELSEWHERE)
    for row in MATRIX.values():
        covered.add(("explainer", row.get("explainer", "default")))
        covered.add(("feature_source", row.get("source", "neurons")))
        covered.add(("llm_client", row.get("llm", "openai-compatible")))
        arch = row.get("arch", "gpt2")
        covered.add(("model_adapter", ADAPTERS[arch]))
        for name in re.findall(r'name = "(\w+)"', row.get("scorers", 'name = "detection"')):
            covered.add(("scorer", name))
    kinds = ("explainer", "scorer", "feature_source", "model_adapter", "llm_client")
    missing = [(k, n) for k in kinds for n in plugins.names(k) if (k, n) not in covered]
    assert not missing, f"not run inside `autointerp run` by this matrix: {missing}"
