"""`autointerp sae train`: a TopK SAE learns a planted dictionary, and what it saves loads back
through the `sae` feature source and encodes exactly like the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from autointerp_sae.train import TopKSAE, TrainSettings, save, train_topk
from safetensors import safe_open

from autointerp.cli import main
from autointerp.plugins import PluginManager
from autointerp.testing.adapters import save_tiny, tiny_model, torch_threads

D, ATOMS, ACTIVE = 32, 64, 3


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def dictionary() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return torch.nn.functional.normalize(torch.randn(ATOMS, D, generator=g), dim=1), torch.randn(
        D, generator=g
    )


def planted(n_blocks: int, rows: int = 2048, seed: int = 0):
    """Each row: ACTIVE random atoms of a fixed unit-norm dictionary, positive weights, an offset
    (so b_dec matters) and a little noise. A TopK SAE with k = ACTIVE can explain nearly all."""
    g = torch.Generator().manual_seed(seed)
    atoms, offset = dictionary()
    for _ in range(n_blocks):
        idx = torch.rand(rows, ATOMS, generator=g).argsort(1)[:, :ACTIVE]
        w = 1 + 2 * torch.rand(rows, ACTIVE, generator=g)
        yield (
            torch.einsum("rk,rkd->rd", w, atoms[idx])
            + offset
            + 0.01 * torch.randn(rows, D, generator=g)
        )


def test_training_lowers_fvu_on_a_planted_dictionary() -> None:
    settings = TrainSettings(width=128, k=ACTIVE, tokens=150_000, batch_size=512, lr=3e-3,
                             buffer_tokens=8192, dead_tokens=20_000)  # fmt: skip
    sae, stats = train_topk(planted(100), D, settings, progress=False)
    assert stats.tokens == 150_000 and stats.steps == 150_000 // 512 + (150_000 % 512 > 0)
    assert stats.fvu < 0.08 and stats.fvu < 0.3 * stats.fvu_start, stats.summary()
    with torch.no_grad():
        # held-out data from the same dictionary
        x = next(planted(1, rows=4000, seed=99))
        values, latents = sae.encode(x)
        fvu = ((x - sae.decode(values, latents)) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
        assert float(fvu) < 0.08
        assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(128), atol=1e-5)
        # (nearly) every planted atom has a decoder row pointing its way
        atoms, _ = dictionary()
        assert ((atoms @ sae.W_dec.T).max(1).values > 0.9).float().mean() >= 0.95


def test_passes_reuse_each_buffer() -> None:
    settings = TrainSettings(width=32, k=2, tokens=4096, batch_size=512, passes=3)
    _, stats = train_topk(planted(3), D, settings, progress=False)
    assert (stats.tokens, stats.steps, len(stats.history)) == (4096, 24, 8)


def test_training_is_seeded() -> None:
    settings = TrainSettings(width=32, k=2, tokens=4096, batch_size=512, seed=3)
    a, _ = train_topk(planted(3), D, settings, progress=False)
    b, _ = train_topk(planted(3), D, settings, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("fmt", ["plain", "sparsify"])
def test_saved_sae_loads_and_encodes_like_the_trainer(tmp_path: Path, fmt: str) -> None:
    sae, _ = train_topk(planted(4), D, TrainSettings(width=40, k=5, tokens=8192, batch_size=1024),
                        progress=False)  # fmt: skip
    out = tmp_path / ("sae.safetensors" if fmt == "plain" else "layers.4")
    save(sae, out, site="resid_post.4", fmt=fmt, tokens=8192)
    source = PluginManager().build("feature_source", "sae", {"path": str(out)})
    assert (source.site, source.n_latents, source.d_in, source.k) == ("resid_post.4", 40, D, 5)
    x = next(planted(1, rows=300, seed=7))
    got = source.encode(x)
    dense = torch.zeros(len(x), 40)
    dense[got.rows, got.latents] = got.values
    with torch.no_grad():
        assert torch.allclose(dense, sae.dense(x), atol=1e-6, rtol=1e-6)
        values, latents = sae.encode(x)
        assert torch.allclose(source.decode_dense(dense), sae.decode(values, latents), atol=1e-5)
    assert torch.equal(source.decoder_directions(torch.tensor([2, 9])), sae.W_dec[[2, 9]].detach())


def test_k_out_of_range_is_refused() -> None:
    from autointerp.features import FeatureSourceError

    with pytest.raises(FeatureSourceError, match=r"k must be in 1\.\.width"):
        TopKSAE(4, 8, 9, torch.Generator())


def test_cli_trains_on_a_tiny_models_site(tmp_path: Path, capsys) -> None:
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Line {i}: the cat sat on mat {i % 7}." for i in range(40)))
    out = tmp_path / "sae.safetensors"
    args = ["sae", "train", "--site", "resid_post.1", "--corpus", str(corpus), "-m", str(model),
            "--width", "64", "--k", "4", "--tokens", "6000", "--batch-size", "256",
            "--ctx-len", "16", "--forward-batch", "4", "--buffer-tokens", "2048",
            "--lr", "1e-2", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "6,000 tokens" in text and "FVU" in text
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["site"] == "resid_post.1" and meta["tokens"] == "6000"
    assert float(meta["fvu"]) < 0.5  # the corpus repeats: a 64-latent SAE explains most of it
    source = PluginManager().build("feature_source", "sae", {"path": str(out)})
    assert source.site == "resid_post.1" and source.n_latents == 64
    # a site the model lacks: one line, before any work
    assert main([*args[:2], "--site", "resid_post.9", *args[4:]]) != 0
    assert "layer 9 out of range" in capsys.readouterr().err
