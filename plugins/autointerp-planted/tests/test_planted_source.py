"""The planted source: rules agree with a slow reference on real token ids, the source keeps the
feature-source contract, and its activations are fixed by the seed, however they are batched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from autointerp_planted.defaults import BASES, default_set
from autointerp_planted.rules import Vocab, fires, reference_fires

from autointerp.features import FeatureSource, FeatureSourceError, SparseActivations
from autointerp.plugins import PluginManager
from autointerp.testing.adapters import tiny_tokenizer
from autointerp.types import Site


def corpus_ids(tokenizer, contexts: int, ctx: int = 64) -> torch.Tensor:
    from autointerp.corpus import iter_texts

    text = "\n".join(
        t for _, t in zip(range(400), iter_texts("builtin:python-docs", "text"), strict=False)
    )
    ids = tokenizer(text)["input_ids"][: contexts * ctx]
    return torch.tensor(ids).reshape(contexts, ctx)


def smollm2_tokenizer():
    """SmolLM2's tokenizer, when its dequantized copy is cached (no load or hub download here)."""
    from autointerp_transformers.hooks import cache_dir

    folder = cache_dir() / "models" / "smollm2-135m"
    if not (folder / "tokenizer.json").is_file() and not (folder / "config.json").is_file():
        pytest.skip("SmolLM2 not cached here (run `autointerp run` once with smollm2-135m)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


TOKENIZERS = {"tiny": tiny_tokenizer, "smollm2": smollm2_tokenizer}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def tokenizer(request):
    return TOKENIZERS[request.param]()


def build(**options) -> FeatureSource:
    return PluginManager().build("feature_source", "planted", options)


@pytest.fixture(scope="module")
def source(tokenizer) -> FeatureSource:
    src = build()
    src.bind_tokenizer(tokenizer, len(tokenizer))
    return src


@pytest.mark.parametrize("base", range(len(BASES)), ids=[b[0] for b in BASES])
def test_every_rule_matches_the_slow_reference_on_real_token_ids(tokenizer, base: int) -> None:
    vocab = Vocab.of(tokenizer)
    ids = corpus_ids(tokenizer, 6).numpy()
    rule = BASES[base][1]
    fast = fires(rule, ids, vocab)
    slow = reference_fires(rule, ids.tolist(), vocab.strings, tokenizer.all_special_ids)
    assert fast.tolist() == slow


def test_rules_fire_where_they_say() -> None:
    strings = ["x", "def", " foo", "(", "1", ")", "[", "2", "]", "=", "Monday", " 3"]
    vocab = Vocab(strings)
    row = np.array([[1, 2, 3, 4, 5, 4, 6, 7, 8, 7, 9, 11]])
    after_def = {"kind": "after", "prev": {"words": ["def"]}, "match": {"regex": r"^\s*\w+$"}}
    assert fires(after_def, row, vocab)[0].nonzero()[0].tolist() == [1]
    in_square = {"kind": "inside", "brackets": "[]", "match": {"regex": r"\d"}}
    assert fires(in_square, row, vocab)[0].nonzero()[0].tolist() == [7]
    after_eq = {"kind": "cooccur", "with": {"regex": "="}, "window": 2, "match": {"regex": r"\d"}}
    assert fires(after_eq, row, vocab)[0].nonzero()[0].tolist() == [11]
    days = {"kind": "token", "match": {"words": ["monday"]}}
    assert fires(days, np.array([[10, 0]]), vocab)[0].tolist() == [True, False]


def test_the_default_set_is_a_few_hundred_seeded_latents_with_their_truth() -> None:
    src = build()
    assert 200 <= src.n_latents <= 400
    assert default_set(0) == default_set(0) != default_set(1)
    truths = src.truths()
    assert {t["mode"] for t in truths} == {"pure", "graded", "noisy", "polysemantic"}
    assert all(t["description"] for t in truths)
    poly = next(t for t in truths if t["mode"] == "polysemantic")
    assert " ; also " in poly["description"] and len(poly["kinds"]) == 2
    days = next(t for t in truths if t["description"] == "days of the week" and t["mode"] == "pure")
    assert days["keys"] == ["monday", "friday"] and days["purity"] == 1.0
    with pytest.raises(FeatureSourceError, match="no latent"):
        src.truth(src.n_latents)


def test_encode_tokens_keeps_the_feature_source_contract(source, tokenizer) -> None:
    ids = corpus_ids(tokenizer, 8)
    acts = source.encode_tokens(ids)
    assert isinstance(acts, SparseActivations)
    assert acts.rows.dtype == acts.latents.dtype == torch.int64
    assert acts.values.dtype.is_floating_point
    assert len(acts.rows) == len(acts.latents) == len(acts.values) > 0
    assert int(acts.rows.min()) >= 0 and int(acts.rows.max()) < ids.numel()
    assert int(acts.latents.min()) >= 0 and int(acts.latents.max()) < source.n_latents
    assert bool((acts.values > 0).all()) and bool(torch.isfinite(acts.values).all())
    pairs = acts.rows * source.n_latents + acts.latents
    assert len(pairs.unique()) == len(pairs)  # one value per (token, latent)
    fired = np.bincount(acts.latents.numpy(), minlength=source.n_latents)
    assert (fired >= 3).sum() >= source.n_latents // 2  # fires usefully on the built-in corpus


def test_the_site_is_checked_and_activations_are_not_read(source) -> None:
    source.check_site(Site("resid_post.0", (32,), "h.0"))
    assert source.d_in == 32
    with pytest.raises(FeatureSourceError, match=r"reads site 'resid_post\.0', not 'mlp_out\.0'"):
        source.check_site(Site("mlp_out.0", (32,), "h.0.mlp"))
    with pytest.raises(FeatureSourceError, match="encode_tokens"):
        source.encode(torch.zeros(2, 32))
    with pytest.raises(FeatureSourceError, match="bind_model"):
        build().encode_tokens(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(FeatureSourceError, match="decoder directions"):
        source.decoder_directions(torch.tensor([0]))


def dense(acts: SparseActivations, n_rows: int, n_latents: int) -> torch.Tensor:
    out = torch.zeros(n_rows, n_latents)
    out[acts.rows, acts.latents] = acts.values.float()
    return out


def test_activations_are_fixed_by_the_seed_however_batched(source, tokenizer) -> None:
    ids = corpus_ids(tokenizer, 8)
    n = source.n_latents
    whole = dense(source.encode_tokens(ids), ids.numel(), n)
    halves = torch.cat([dense(source.encode_tokens(h), h.numel(), n) for h in ids.split(3)])
    assert torch.equal(whole, halves)
    again = build()
    again.bind_tokenizer(tokenizer, len(tokenizer))
    assert torch.equal(whole, dense(again.encode_tokens(ids), ids.numel(), n))
    other = build(seed=1)
    other.bind_tokenizer(tokenizer, len(tokenizer))
    assert not torch.equal(whole, dense(other.encode_tokens(ids), ids.numel(), n))


def test_noise_fires_at_its_rate_and_grades_vary_by_token(tokenizer, tmp_path) -> None:
    import json

    latents = [
        {"mode": "noisy", "rules": [{"kind": "position", "lo": 0, "hi": 1}], "noise": 0.1},
        {"mode": "graded", "graded": True, "strength": 2.0,
         "rules": [{"kind": "token", "match": {"regex": "."}}]},
    ]  # fmt: skip
    path = tmp_path / "set.json"
    path.write_text(json.dumps(latents))
    src = build(set=str(path))
    src.bind_tokenizer(tokenizer, len(tokenizer))
    ids = corpus_ids(tokenizer, 64)
    acts = src.encode_tokens(ids)
    noisy = acts.latents == 0
    extra = int(noisy.sum()) - ids.shape[0]  # beyond the first position of each context
    assert 0.07 < extra / (ids.numel() - ids.shape[0]) < 0.13
    graded = acts.values[acts.latents == 1]
    assert 0.5 <= float(graded.min()) < float(graded.max()) <= 2.0
    by_token = {}
    for row, value in zip(acts.rows[acts.latents == 1].tolist(), graded.tolist(), strict=True):
        assert by_token.setdefault(int(ids.view(-1)[row]), value) == value


def test_a_set_file_that_does_not_parse_is_one_clear_error(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"rules": [{"kind": "sideways"}]}]')
    with pytest.raises(FeatureSourceError, match=r"latent 0 .*rule kind 'sideways'"):
        build(set=str(path))
