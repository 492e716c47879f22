"""The `hashed` source: k latents per token from its n-gram, deterministic, any width."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autointerp.features import FeatureSource, FeatureSourceError
from autointerp.plugins import PluginManager
from autointerp.types import Site


def build(**options: object) -> FeatureSource:
    return PluginManager().build("feature_source", "hashed", {"site": "resid_post.0", **options})


def test_each_token_fires_k_latents_chosen_by_its_ngram() -> None:
    source = build(width=1 << 20, k=8, n=3)
    ids = torch.tensor([[5, 6, 7, 8, 5, 6, 7, 9], [1, 5, 6, 7, 2, 3, 4, 5]])
    acts = source.encode_tokens(ids)
    rows, latents, values = (t.numpy() for t in acts)
    assert latents.dtype == np.int64 and rows.dtype == np.int64
    assert (latents >= 0).all() and (latents < 1 << 20).all()
    assert ((values > 0) & (values <= 1)).all()
    per_row = {r: set(latents[rows == r]) for r in range(16)}
    assert all(len(v) == 8 for v in per_row.values())  # no collision at this width
    # row 2 (5 6 7) and row 11 (5 6 7 in the second context) share their 3-gram: same latents
    assert per_row[2] == per_row[11] and per_row[6] == per_row[2]
    assert per_row[3] != per_row[7]  # 6 7 8 vs 6 7 9
    # the first two tokens of a context have no full n-gram: padded, not the previous context's
    assert per_row[9] != per_row[1]


def test_activations_are_fixed_by_the_seed_however_batched() -> None:
    ids = torch.randint(0, 500, (6, 16), generator=torch.Generator().manual_seed(0))
    a = build(width=4096, seed=3).encode_tokens(ids)
    b = build(width=4096, seed=3).encode_tokens(ids[3:])
    first = a.rows >= 3 * 16
    assert torch.equal(a.latents[first], b.latents) and torch.equal(a.values[first], b.values)
    other = build(width=4096, seed=4).encode_tokens(ids)
    assert not torch.equal(a.latents, other.latents)


def test_collisions_keep_one_firing_per_token_and_latent() -> None:
    acts = build(width=3, k=16).encode_tokens(torch.arange(20).reshape(2, 10))
    pairs = acts.rows * 3 + acts.latents
    assert len(pairs.unique()) == len(pairs)


def test_site_is_checked_and_encode_refused() -> None:
    source = build()
    source.check_site(Site("resid_post.0", (1, 8, 48), "x"))
    assert source.d_in == 48
    with pytest.raises(FeatureSourceError, match=r"reads site 'resid_post\.0'"):
        source.check_site(Site("resid_post.1", (1, 8, 48), "x"))
    with pytest.raises(FeatureSourceError, match="encode_tokens"):
        source.encode(torch.zeros(2, 48))


def test_a_million_latents_cost_no_more_per_token() -> None:
    ids = torch.randint(0, 50_000, (64, 64), generator=torch.Generator().manual_seed(1))
    acts = build(width=1_048_576, k=16).encode_tokens(ids)
    assert len(acts.rows) > 64 * 64 * 15
