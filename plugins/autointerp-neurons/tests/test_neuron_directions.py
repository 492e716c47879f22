"""A neuron's decoder direction is its column of the MLP output projection: act x column is
exactly what the neuron adds to the MLP output, and a whole run scores neurons by intervention."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autointerp.adapter import Add
from autointerp.features import FeatureSourceError
from autointerp.plugins import PluginManager
from autointerp.store import Store
from autointerp.testing.adapters import build_tiny, random_ids, save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config

LAYER = 1


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def adapter(request, tmp_path_factory: pytest.TempPathFactory):
    arch = request.param
    model_dir = save_tiny(tiny_model(arch), tmp_path_factory.mktemp(arch))
    return PluginManager().build("model_adapter", "transformers", {"model": str(model_dir)})


def bound(adapter, layer: int = LAYER):
    source = PluginManager().build("feature_source", "neurons", {"layer": layer})
    source.bind_model(adapter)
    return source


def output_columns(adapter, neurons: list[int]) -> torch.Tensor:
    """The output projection's columns for ``neurons``, read from the model by hand."""
    if adapter.architecture == "gpt2":  # Conv1D: weight [d_mlp, d_model]
        return adapter.model.transformer.h[LAYER].mlp.c_proj.weight[neurons, :]
    return adapter.model.model.layers[LAYER].mlp.down_proj.weight[:, neurons].T  # [out, in]


def test_a_neurons_direction_is_its_output_projection_column(adapter) -> None:
    source = bound(adapter)
    neurons = [5, 0, 17, 5]
    directions = source.decoder_directions(torch.tensor(neurons))
    assert directions.shape == (4, adapter.d_model)
    assert torch.equal(directions, output_columns(adapter, neurons))  # unnormalised weights
    assert source.direction_site == f"resid_post.{LAYER}"
    assert adapter.site(source.direction_site).shape == (adapter.d_model,)


def test_act_times_direction_is_the_neurons_exact_contribution(adapter) -> None:
    source = bound(adapter)
    ids, n = random_ids(2, 7, seed=1), 9
    neurons, mlp_out = f"mlp_neurons.{LAYER}", f"mlp_out.{LAYER}"
    plain = adapter.forward(ids, capture=[neurons, mlp_out])
    h = plain.captures[neurons]
    assert h[..., n].abs().min() > 0  # the neuron is on everywhere: the check below means something
    only_n = torch.zeros(h.shape[-1])
    only_n[n] = 1.0
    ablate = Add(neurons, vector=-h * only_n)  # neuron n zeroed, the others as they were
    ablated = adapter.forward(ids, capture=[mlp_out, neurons], interventions=[ablate])
    assert torch.all(ablated.captures[neurons][..., n] == 0)
    (direction,) = source.decoder_directions(torch.tensor([n]))
    contribution = plain.captures[mlp_out] - ablated.captures[mlp_out]
    torch.testing.assert_close(contribution, h[..., n : n + 1] * direction, rtol=1e-4, atol=1e-6)
    # adding act x direction back, at the MLP output or at the direction's site, undoes the ablation
    for site in (mlp_out, source.direction_site):
        put_back = Add(site, vector=h[..., n : n + 1] * direction)
        restored = adapter.forward(ids, interventions=[ablate, put_back])
        torch.testing.assert_close(restored.logits, plain.logits, rtol=1e-4, atol=1e-5)


def test_directions_need_the_model_and_a_transformer_mlp(tmp_path: Path) -> None:
    source = PluginManager().build("feature_source", "neurons", {"layer": 1})
    with pytest.raises(FeatureSourceError, match="call bind_model"):
        source.decoder_directions(torch.tensor([0]))
    mamba = build_tiny("mamba", save_tiny(tiny_model("mamba"), tmp_path / "mamba"))
    with pytest.raises(FeatureSourceError) as err:
        source.bind_model(mamba)
    message = str(err.value)
    assert "no MLP output projection" in message and "mamba model" in message
    assert "layer 1" in message and "\n" not in message


def test_an_output_projection_without_a_weight_is_a_one_line_error() -> None:
    from autointerp_transformers.adapter import TransformersAdapter

    from autointerp.testing.adapters import tiny_tokenizer

    adapter = TransformersAdapter.wrap(tiny_model("llama"), tiny_tokenizer())
    mlp = adapter.model.model.layers[1].mlp
    mlp.down_proj = torch.nn.Sequential(mlp.down_proj)  # same path, the weight one level down
    with pytest.raises(FeatureSourceError) as err:
        bound(adapter)
    message = str(err.value)
    assert "MLP output projection of llama model" in message and "layer 1 (Sequential)" in message


def test_a_neuron_run_scores_every_latent_by_intervention(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = scripted_answers(suffix="\nAnswer: A")
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    scorers = (
        '[[scorers]]\nname = "intervention"\nnew_tokens = 4\n'
        'prompts = ["The weather today", "In the code"]'
    )
    path = write_run_config(
        tmp_path / "run.toml", base_url=autointerp_llm_server.openai_base_url, model=model,
        layer=LAYER, concurrency=2, scorers=scorers,
    )  # fmt: skip
    result = autointerp_cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        scores = store.scores(run.id, "intervention")
        assert not store.failures(run.id)
    assert len(scores) == 4  # every latent scored
    for s in scores:
        assert s.latent.source == f"neurons/mlp_neurons.{LAYER}"
        assert s.meta["site"] == f"resid_post.{LAYER}"  # steered in the residual stream
        assert any(c["steered"] != c["unsteered"] for c in s.meta["continuations"])
