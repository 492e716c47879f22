"""Device and dtype of the sae source: by default it follows the model's device and keeps the files'
dtype; an explicit device pins it, an explicit dtype casts the weights."""

from __future__ import annotations

import pytest
import torch
from autointerp_sae.plugin import SAEConfig
from autointerp_sae.sae import load_sae
from safetensors.torch import save_file

from autointerp.errors import ConfigError
from autointerp.features import FeatureSourceError
from autointerp.plugins import PluginManager

D_IN, N = 8, 32
X = torch.randn(40, D_IN, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def path(tmp_path):
    g = torch.Generator().manual_seed(0)
    weights = {"W_enc": torch.randn(D_IN, N, generator=g), "b_enc": torch.randn(N, generator=g),
               "W_dec": torch.randn(N, D_IN, generator=g), "b_dec": torch.zeros(D_IN)}  # fmt: skip
    save_file(weights, tmp_path / "sae.safetensors")
    return str(tmp_path / "sae.safetensors")


def build(**options):
    return PluginManager().build("feature_source", "sae", options)


def test_auto_follows_the_models_device_and_a_pinned_device_stays(path) -> None:
    follows = build(path=path, activation="topk", k=4)
    assert follows.device.type == "cpu" and follows.pinned is None
    follows.place(torch.device("meta"))  # a device with no data: where the model would be
    assert {follows.W_enc.device.type, follows.b_enc.device.type, follows.W_dec.device.type,
            follows.b_dec.device.type} == {"meta"}  # fmt: skip
    pinned = build(path=path, activation="topk", k=4, device="cpu")
    pinned.place(torch.device("meta"))
    assert pinned.device.type == "cpu"


def test_bfloat16_weights_encode_like_float32_to_its_precision(path) -> None:
    full = build(path=path, activation="relu")
    half = build(path=path, activation="relu", dtype="bfloat16")
    assert half.W_enc.dtype == half.b_dec.dtype == torch.bfloat16
    acts = half.encode(X)  # float32 activations are cast as they are encoded
    assert acts.values.dtype == torch.bfloat16
    dense = {}
    for name, sae in (("full", full), ("half", half)):
        a = sae.encode(X)
        dense[name] = torch.zeros(len(X), N).index_put_((a.rows, a.latents), a.values.float())
    assert torch.allclose(dense["half"], dense["full"], atol=0.1, rtol=0.02)


def test_a_device_this_machine_lacks_is_one_line_naming_the_field(path) -> None:
    with pytest.raises(ConfigError, match=r"device: .*expected .*\(got 'cuda:99'\)"):
        build(path=path, activation="relu", device="cuda:99")
    unchecked = SAEConfig.model_construct(path=path, device="cuda:99", dtype="auto",
                                          format="auto", chunk_tokens=1024)  # fmt: skip
    with pytest.raises(FeatureSourceError, match=r"^feature_source\.device: .*expected"):
        load_sae(unchecked)


def test_options_left_at_auto_stay_out_of_the_fingerprinted_dump(path) -> None:
    # caches made before the options existed keep their fingerprint
    assert {"device", "dtype"}.isdisjoint(SAEConfig(path=path).model_dump())
    assert SAEConfig(path=path, device="cpu", dtype="float32").model_dump()["dtype"] == "float32"
