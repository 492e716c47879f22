"""Device and dtype of the neurons source: by default it encodes where and in what the model
computed; explicit options move and cast each block first."""

from __future__ import annotations

import pytest
import torch
from autointerp_neurons.plugin import NeuronsConfig

from autointerp.errors import ConfigError
from autointerp.plugins import PluginManager
from autointerp.types import Site

SITE = Site(name="mlp_neurons.0", shape=(16,), module_path="h.0.mlp.c_proj")
X = torch.randn(10, 16, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)


def build(**options):
    source = PluginManager().build("feature_source", "neurons", {"layer": 0, **options})
    source.check_site(SITE)
    return source


def test_auto_keeps_the_activations_dtype_and_float32_casts_them() -> None:
    assert build(top_k=3).encode(X).values.dtype == torch.bfloat16
    acts = build(top_k=3, dtype="float32").encode(X)
    assert acts.values.dtype == torch.float32
    assert torch.equal(acts.values, X.float()[acts.rows, acts.latents])


def test_a_device_this_machine_lacks_is_refused_when_planned() -> None:
    with pytest.raises(ConfigError, match=r"device: .*expected .*\(got 'cuda:99'\)"):
        build(device="cuda:99")
    assert build(device="cpu").encode(X.float()).rows.device.type == "cpu"


def test_options_left_at_auto_stay_out_of_the_fingerprinted_dump() -> None:
    assert NeuronsConfig().model_dump() == {"layer": 6, "top_k": 32}
