"""Neurons and top-k neurons match the adapter's captured MLP activations."""

from __future__ import annotations

import pytest
import torch

from autointerp.features import FeatureSourceError
from autointerp.plugins import PluginManager
from autointerp.testing.adapters import build_tiny, random_ids, save_tiny, tiny_model


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def adapter(request, tmp_path_factory: pytest.TempPathFactory):
    arch = request.param
    model_dir = save_tiny(tiny_model(arch), tmp_path_factory.mktemp(arch))
    if arch == "llama":  # the llama tiny model is served by the transformers adapter too
        return PluginManager().build("model_adapter", "transformers", {"model": str(model_dir)})
    return build_tiny(arch, model_dir)


def captured(adapter, layer: int) -> torch.Tensor:
    site = f"mlp_neurons.{layer}"
    h = adapter.forward(random_ids(2, 7), capture=[site], return_logits=False).captures[site]
    return h.reshape(-1, h.shape[-1])


def dense(acts, shape) -> torch.Tensor:
    out = torch.zeros(shape)
    out[acts.rows, acts.latents] = acts.values
    return out


def test_raw_neurons_are_the_positive_mlp_activations(adapter) -> None:
    source = PluginManager().build("feature_source", "neurons", {"layer": 1, "top_k": None})
    source.check_site(adapter.site("mlp_neurons.1"))
    h = captured(adapter, 1)
    assert source.n_latents == h.shape[-1] > adapter.d_model  # the MLP's hidden width
    assert torch.equal(dense(source.encode(h), h.shape), torch.relu(h))


def test_top_k_neurons_keep_the_k_largest(adapter) -> None:
    source = PluginManager().build("feature_source", "neurons", {"layer": 0, "top_k": 3})
    source.check_site(adapter.site("mlp_neurons.0"))
    h = captured(adapter, 0)
    values, idx = h.topk(3, dim=-1)
    expected = torch.zeros_like(h).scatter(1, idx, torch.relu(values))
    assert torch.equal(dense(source.encode(h), h.shape), expected)


def test_neurons_must_be_bound_to_their_site(adapter) -> None:
    source = PluginManager().build("feature_source", "neurons", {"layer": 0})
    with pytest.raises(FeatureSourceError, match="call check_site"):
        source.encode(torch.zeros(2, 4))
    with pytest.raises(FeatureSourceError, match=r"reads site 'mlp_neurons\.0', not 'mlp_out\.0'"):
        source.check_site(adapter.site("mlp_out.0"))
