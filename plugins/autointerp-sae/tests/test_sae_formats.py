"""SAE files in the three layouts load, and encode exactly like a direct matrix computation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from autointerp.features import FeatureSourceError
from autointerp.plugins import PluginManager
from autointerp.types import Site

D_IN, N = 8, 32


def weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(D_IN, N, generator=g),
        "b_enc": torch.randn(N, generator=g) * 0.1,
        "W_dec": torch.randn(N, D_IN, generator=g),
        "b_dec": torch.randn(D_IN, generator=g) * 0.1,
        "threshold": torch.rand(N, generator=g),
    }


def build(**options):
    return PluginManager().build("feature_source", "sae", options)


def dense(sparse, rows: int) -> torch.Tensor:
    out = torch.zeros(rows, N)
    out[sparse.rows, sparse.latents] = sparse.values
    return out


X = torch.randn(50, D_IN, generator=torch.Generator().manual_seed(1))


def test_plain_relu_matches_direct_computation(tmp_path: Path) -> None:
    w = weights()
    save_file({k: v for k, v in w.items() if k != "threshold"}, tmp_path / "sae.safetensors")
    sae = build(path=str(tmp_path / "sae.safetensors"), site="resid_post.1", chunk_tokens=7)
    expected = torch.relu(X @ w["W_enc"] + w["b_enc"])
    got = sae.encode(X)
    assert torch.allclose(dense(got, len(X)), expected, atol=1e-6)
    assert (got.values > 0).all() and sae.n_latents == N and sae.d_in == D_IN


def test_plain_topk_keeps_k_per_token(tmp_path: Path) -> None:
    w = weights()
    save_file({k: v for k, v in w.items() if k != "threshold"}, tmp_path / "s.safetensors")
    sae = build(path=str(tmp_path / "s.safetensors"), activation="topk", k=3)
    pre = X @ w["W_enc"] + w["b_enc"]
    values, idx = pre.topk(3, dim=-1)
    expected = torch.zeros_like(pre).scatter(1, idx, torch.relu(values))
    got = sae.encode(X)
    assert torch.allclose(dense(got, len(X)), expected, atol=1e-6)
    assert torch.bincount(got.rows, minlength=len(X)).max() <= 3


def test_saelens_jumprelu_and_topk(tmp_path: Path) -> None:
    w = weights()
    for arch in ("jumprelu", "topk", "standard"):
        d = tmp_path / arch
        d.mkdir()
        save_file(w, d / "sae_weights.safetensors")
        cfg = {"architecture": arch, "d_in": D_IN, "d_sae": N, "apply_b_dec_to_input": True,
               "hook_name": "resid_post.2", "activation_fn_kwargs": {"k": 4}}  # fmt: skip
        (d / "cfg.json").write_text(json.dumps(cfg))
        sae = build(path=str(d))
        pre = (X - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
        if arch == "jumprelu":
            expected = pre * ((pre > w["threshold"]) & (pre > 0))
        elif arch == "topk":
            values, idx = pre.topk(4, dim=-1)
            expected = torch.zeros_like(pre).scatter(1, idx, torch.relu(values))
        else:
            expected = torch.relu(pre)
        assert torch.allclose(dense(sae.encode(X), len(X)), expected, atol=1e-5), arch
        assert sae.site == "resid_post.2"


def test_sparsify_layout(tmp_path: Path) -> None:
    w = weights()
    d = tmp_path / "layers.5"
    d.mkdir()
    save_file(
        {"encoder.weight": w["W_enc"].T.contiguous(), "encoder.bias": w["b_enc"],
         "W_dec": w["W_dec"], "b_dec": w["b_dec"]},
        d / "sae.safetensors",
    )  # fmt: skip
    (d / "cfg.json").write_text(json.dumps({"k": 2, "num_latents": N}))
    sae = build(path=str(d))
    pre = (X - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    values, idx = pre.topk(2, dim=-1)
    expected = torch.zeros_like(pre).scatter(1, idx, torch.relu(values))
    assert torch.allclose(dense(sae.encode(X), len(X)), expected, atol=1e-5)
    assert sae.site == "resid_post.5"
    assert torch.equal(sae.decoder_directions(torch.tensor([3])), w["W_dec"][[3]])


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FeatureSourceError, match="does not exist"):
        build(path=str(tmp_path / "nope"))
    w = weights()
    w["W_dec"] = w["W_dec"][:, :5].contiguous()
    save_file({k: v for k, v in w.items() if k != "threshold"}, tmp_path / "bad.safetensors")
    with pytest.raises(FeatureSourceError, match=r"W_dec has shape \(32, 5\), expected \(32, 8\)"):
        build(path=str(tmp_path / "bad.safetensors"))
    good = weights()
    save_file({k: v for k, v in good.items() if k != "threshold"}, tmp_path / "ok.safetensors")
    sae = build(path=str(tmp_path / "ok.safetensors"), site="resid_post.1")
    with pytest.raises(FeatureSourceError, match=r"expects width 8 .* has width 16"):
        sae.check_site(Site("resid_post.1", (16,), "model.layers.1"))
    with pytest.raises(FeatureSourceError, match="input width is 8 but the activations have"):
        sae.encode(torch.zeros(3, 4))
    with pytest.raises(FeatureSourceError, match="topk SAE needs k"):
        build(path=str(tmp_path / "ok.safetensors"), activation="topk")


def test_encodes_a_tiny_models_captured_site(tmp_path: Path) -> None:
    from autointerp.testing.adapters import build_tiny, random_ids, save_tiny, tiny_model

    adapter = build_tiny("gpt2", save_tiny(tiny_model("gpt2"), tmp_path / "model"))
    site = adapter.site("resid_post.1")
    d = site.shape[-1]
    g = torch.Generator().manual_seed(3)
    w = {"W_enc": torch.randn(d, 64, generator=g), "b_enc": torch.zeros(64),
         "W_dec": torch.randn(64, d, generator=g), "b_dec": torch.zeros(d)}  # fmt: skip
    save_file(w, tmp_path / "sae.safetensors")
    sae = build(path=str(tmp_path / "sae.safetensors"), site=site.name, activation="topk", k=5)
    sae.check_site(site)
    h = adapter.forward(random_ids(2, 6), capture=[site.name]).captures[site.name].reshape(-1, d)
    got = sae.encode(h)
    values, idx = (h @ w["W_enc"]).topk(5, dim=-1)
    expected = torch.zeros(len(h), 64).scatter(1, idx, torch.relu(values))
    out = torch.zeros(len(h), 64)
    out[got.rows, got.latents] = got.values
    assert torch.allclose(out, expected, atol=1e-5)
