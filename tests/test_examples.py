"""Examples from the cache: the true top windows, disjoint sets, reproducible per latent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from autointerp.cache import ActivationCache, build_cache
from autointerp.examples import ExampleBuilder, ExamplesError, ExampleSettings
from autointerp.plugins import PluginManager
from autointerp.testing.adapters import build_tiny, save_tiny, tiny_model, torch_threads

N_LATENTS, SITE, WINDOW = 16, "resid_post.0", 8


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("examples")
    with torch_threads(1):
        adapter = build_tiny("gpt2", save_tiny(tiny_model("gpt2"), root / "model"))
        d = adapter.site(SITE).shape[-1]
        g = torch.Generator().manual_seed(0)
        w = {"W_enc": torch.randn(d, N_LATENTS, generator=g), "b_enc": -torch.ones(N_LATENTS),
             "W_dec": torch.randn(N_LATENTS, d, generator=g), "b_dec": torch.zeros(d)}  # fmt: skip
        save_file(w, root / "sae.safetensors")
        sae = PluginManager().build(
            "feature_source", "sae", {"path": str(root / "sae.safetensors"), "site": SITE}
        )
        data = [torch.randint(0, 100, (4, 16), generator=g) for _ in range(10)]
        build_cache(adapter, sae, data, root / "cache", {"m": 1}, contexts_per_shard=8,
                    progress=False)  # fmt: skip
        truth = []
        for ids in data:
            h = adapter.forward(ids, capture=[SITE], return_logits=False).captures[SITE]
            truth.append(torch.relu(h.reshape(-1, d) @ w["W_enc"] + w["b_enc"]))
    tok = adapter.tokenizer
    return (
        ActivationCache(root / "cache"),
        torch.cat(truth).numpy(),
        lambda ids: [tok.decode([i]) for i in ids],
    )


def builder(cached, **settings) -> ExampleBuilder:
    cache, _, decode = cached
    return ExampleBuilder(cache, "sae/resid_post.0", decode, ExampleSettings(**settings))


def test_train_examples_are_the_true_top_windows(cached) -> None:
    _, truth, _ = cached
    b = builder(cached, window=WINDOW, n_train=5, n_test=6, n_negatives=7)
    for index in range(N_LATENTS):
        peaks = truth[:, index].reshape(-1, WINDOW).max(1)
        fired = np.flatnonzero(peaks > 0)
        ex = b.build(index)
        expected = np.sort(peaks[fired])[::-1][:5]
        got = np.array([e.max_activation for e in ex.train])
        assert np.allclose(got, expected, atol=2e-2, rtol=1e-3), index
        assert all(e.max_activation == 0 for e in ex.negatives)
        keys = [{e.key for e in s} for s in (ex.train, ex.test, ex.negatives)]
        assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
        assert len(ex.negatives) == min(7, len(peaks) - len(fired))
        assert len(ex.test) <= 6 and all(e.max_activation > 0 for e in ex.test)


def test_example_activations_match_the_dense_truth_token_by_token(cached) -> None:
    _, truth, _ = cached
    b = builder(cached, window=WINDOW, n_train=3)
    ex = b.build(2)
    windows = b.stream.reshape(-1, WINDOW)
    for e in ex.train:
        (w,) = [i for i in range(len(windows)) if tuple(windows[i]) == e.tokens][:1]
        assert np.allclose(e.activations, truth[w * WINDOW : (w + 1) * WINDOW, 2], atol=2e-2)
        assert len(e.str_tokens) == WINDOW


def test_reproducible_per_latent_and_seed(cached) -> None:
    a = builder(cached, window=WINDOW, seed=1).build(3)
    b = builder(cached, window=WINDOW, seed=1).build(3)
    c = builder(cached, window=WINDOW, seed=2).build(3)
    assert a == b
    assert [e.tokens for e in a.negatives] != [e.tokens for e in c.negatives]


def test_window_must_divide_the_context(cached) -> None:
    with pytest.raises(ExamplesError, match="window 5 must divide the cached context length 16"):
        builder(cached, window=5)
