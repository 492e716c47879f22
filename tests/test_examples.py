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
        data = [torch.randint(0, 100, (4, 16), generator=g) for _ in range(10)]
        # scaled so pre-activations are ~N(0, 1): latents fire on 1-30 % of tokens, leaving both
        # activating and silent windows (a tiny model's residual stream is small)
        h0 = adapter.forward(data[0], capture=[SITE], return_logits=False).captures[SITE]
        scale = float(h0.std()) * d**0.5
        w = {"W_enc": torch.randn(d, N_LATENTS, generator=g) / scale,
             "b_enc": -torch.linspace(0.5, 2.3, N_LATENTS),
             "W_dec": torch.randn(N_LATENTS, d, generator=g), "b_dec": torch.zeros(d)}  # fmt: skip
        save_file(w, root / "sae.safetensors")
        sae = PluginManager().build(
            "feature_source", "sae", {"path": str(root / "sae.safetensors"), "site": SITE}
        )
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


@pytest.mark.parametrize("negatives", ["random", "similar", "mixed"])
def test_train_examples_are_the_true_top_windows(cached, negatives: str) -> None:
    _, truth, _ = cached
    b = builder(cached, window=WINDOW, n_train=5, n_test=6, n_negatives=7, negatives=negatives)
    n_fired = 0
    for index in range(N_LATENTS):
        peaks = truth[:, index].reshape(-1, WINDOW).max(1)
        fired = np.flatnonzero(peaks > 0)
        ex = b.build(index)
        expected = np.sort(peaks[fired])[::-1][:5]
        got = np.array([e.max_activation for e in ex.train])
        assert np.allclose(got, expected, atol=2e-2, rtol=1e-3), index
        assert all(e.max_activation == 0 for e in ex.negatives)
        silent = truth[:, index].reshape(-1, WINDOW).max(1) == 0
        assert all(silent[window_of(b, e)] for e in ex.negatives), index
        keys = [{e.key for e in s} for s in (ex.train, ex.test, ex.negatives)]
        assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
        assert len(ex.negatives) == min(7, len(peaks) - len(fired))
        assert len(ex.test) <= 6 and all(e.max_activation > 0 for e in ex.test)
        assert len(ex.train) == min(5, len(fired))
        n_fired += len(fired)
    assert n_fired > 0  # the check above is not vacuous


def window_of(b: ExampleBuilder, example) -> int:
    (w,) = np.flatnonzero((b.stream.reshape(-1, WINDOW) == example.tokens).all(1))[:1]
    return int(w)


def test_similar_negatives_hold_the_top_tokens_and_are_silent(cached) -> None:
    cache, truth, _ = cached
    b = builder(cached, window=WINDOW, n_negatives=6, negatives="similar", similar_tokens=3)
    windows = b.stream.reshape(-1, WINDOW)
    n_similar = 0
    for index in range(N_LATENTS):
        dense = truth[:, index]
        fired = dense > 0
        # the expected top ids: distinct ids at the strongest activations, from the dense truth
        order = np.argsort(-dense, kind="stable")[: int(fired.sum())]
        top = list(dict.fromkeys(b.stream[order].tolist()))[:3]
        tokens, values = cache.latent(index)
        assert sorted(b.top_token_ids(tokens, values).tolist()) == sorted(top), index
        silent = dense.reshape(-1, WINDOW).max(1) == 0
        pool = np.flatnonzero(silent & np.isin(windows, top).any(1))
        ex = b.build(index)
        similar = [window_of(b, e) for e in ex.negatives if e.kind == "similar"]
        assert len(similar) == min(6, len(pool)), index
        assert set(similar) <= set(pool.tolist())
        assert len(ex.negatives) == min(6, int(silent.sum()))  # topped up at random
        n_similar += len(similar)
    assert n_similar > 0  # the fixture has latents with silent same-token windows


def test_mixed_negatives_split_between_similar_and_random(cached) -> None:
    b = builder(cached, window=WINDOW, n_negatives=6, negatives="mixed")
    kinds = [[e.kind for e in b.build(i).negatives] for i in range(N_LATENTS)]
    assert all(k.count("similar") <= 3 for k in kinds)
    assert any(k.count("similar") == 3 and k.count("random") == 3 for k in kinds)
    again = builder(cached, window=WINDOW, n_negatives=6, negatives="mixed")
    assert all(again.build(i) == b.build(i) for i in range(N_LATENTS))


def test_embedding_neighbours_extend_the_similar_tokens(cached) -> None:
    cache, _, decode = cached
    tokens, values = cache.latent(0)
    plain = ExampleBuilder(cache, "k", decode, ExampleSettings(window=WINDOW, similar_tokens=1))
    (top,) = plain.top_token_ids(tokens, values)
    emb = np.random.default_rng(0).normal(size=(128, 4))
    emb[7] = emb[top] * 2 + 1e-3  # token 7 points the same way as the top token
    b = ExampleBuilder(cache, "k", decode, embeddings=emb, settings=ExampleSettings(
        window=WINDOW, similar_tokens=1, similar_neighbours=1, negatives="similar"))  # fmt: skip
    assert b.top_token_ids(tokens, values).tolist() == sorted({int(top), 7})
    with pytest.raises(ExamplesError, match="needs the model's token embeddings"):
        ExampleBuilder(cache, "k", decode, ExampleSettings(window=WINDOW, similar_neighbours=2))


def test_example_activations_match_the_dense_truth_token_by_token(cached) -> None:
    _, truth, _ = cached
    b = builder(cached, window=WINDOW, n_train=3)
    ex = b.build(2)
    windows = b.stream.reshape(-1, WINDOW)
    for e in ex.train:
        (w,) = [i for i in range(len(windows)) if tuple(windows[i]) == e.tokens][:1]
        assert np.allclose(e.activations, truth[w * WINDOW : (w + 1) * WINDOW, 2], atol=2e-2)
        assert len(e.str_tokens) == WINDOW


@pytest.mark.parametrize("negatives", ["random", "similar", "mixed"])
def test_reproducible_per_latent_and_seed(cached, negatives: str) -> None:
    # latent 12 fires in a few windows: many silent ones to choose from
    a = builder(cached, window=WINDOW, seed=1, n_negatives=8, negatives=negatives).build(12)
    b = builder(cached, window=WINDOW, seed=1, n_negatives=8, negatives=negatives).build(12)
    c = builder(cached, window=WINDOW, seed=2, n_negatives=8, negatives=negatives).build(12)
    assert a == b
    assert [e.tokens for e in a.negatives] != [e.tokens for e in c.negatives]


def test_window_must_divide_the_context(cached) -> None:
    with pytest.raises(ExamplesError, match="window 5 must divide the cached context length 16"):
        builder(cached, window=5)


@pytest.mark.parametrize("n", [1, 5, 7, 15, 23, 50])
def test_test_examples_spread_over_every_part_of_the_activation_range(n: int) -> None:
    from autointerp.examples import _stratified_sample

    windows, peaks = np.arange(300) * 2, np.random.default_rng(1).random(300)
    chosen, quantile = _stratified_sample(windows, peaks, n, 10, np.random.default_rng(0))
    assert len(chosen) == n == len(set(chosen.tolist()))  # 15 stays 15, no window twice
    shares = np.bincount(quantile, minlength=10)
    assert shares.max() - shares.min() <= 1  # equal shares, weak to strong
    if 1 < n < 10:  # the quantiles used span the range, not only the weakest
        assert quantile.min() <= 1 and quantile.max() >= 8
    ranks = np.argsort(np.argsort(peaks))  # each window's peak lies in its quantile's tenth
    assert all(ranks[w // 2] // 30 == q for w, q in zip(chosen, quantile, strict=True))


def test_a_small_pool_gives_all_it_has() -> None:
    from autointerp.examples import _stratified_sample

    windows, peaks = np.arange(13), np.linspace(0, 1, 13)
    chosen, _ = _stratified_sample(windows, peaks, 12, 10, np.random.default_rng(0))
    assert len(set(chosen.tolist())) == 12
    chosen, _ = _stratified_sample(windows, peaks, 50, 10, np.random.default_rng(0))
    assert sorted(chosen.tolist()) == list(range(13))


def test_the_earlier_sampler_is_kept_for_runs_made_with_it(cached) -> None:
    """quantile-v1 (what runs made before "stratified" drew): one per quantile, cut to n_test,
    so 5 test examples come from the 5 weakest quantiles; "stratified" spreads them."""
    old = builder(cached, window=WINDOW, n_train=2, n_test=5, test_sampler="quantile-v1")
    new = builder(cached, window=WINDOW, n_train=2, n_test=5)
    for index in range(N_LATENTS):
        before, after = old.build(index), new.build(index)
        if len(before.test) < 5 or len(after.test) < 5:
            continue
        assert [e.kind for e in before.test] == [f"quantile:{q}" for q in range(5)]
        assert [e.kind for e in after.test] == [f"quantile:{q}" for q in (1, 3, 5, 7, 9)]
        return
    pytest.fail("no latent with enough activating windows")


def test_token_strings_decode_each_id_once_and_look_up_arrays() -> None:
    from autointerp.examples import TokenStrings

    calls: list[int] = []

    def one(token: int) -> str:
        calls.append(token)
        return f"<{token}>"

    strings = TokenStrings(one)
    got = strings.lookup(np.array([[3, 1], [3, 7]]))
    assert got.shape == (2, 2) and got.tolist() == [["<3>", "<1>"], ["<3>", "<7>"]]
    assert strings([7, 1, 2]) == ["<7>", "<1>", "<2>"]
    assert sorted(calls) == [1, 2, 3, 7]  # each id decoded once
    assert strings.unsaved(np.array([1, 3])) == {1: "<1>", 3: "<3>"}
    strings.saved([1, 3])
    assert strings.unsaved(np.array([1, 3, 9])) == {9: "<9>"}


def test_example_sets_hold_what_examples_hold(cached) -> None:
    b = builder(cached, window=WINDOW, n_train=3, n_test=4, n_negatives=5)
    for index in range(N_LATENTS):
        x, ex = b.build_set(index), b.build(index)
        assert len(x) == len(ex.train) + len(ex.test) + len(ex.negatives)
        assert x.tokens.shape == x.activations.shape == (len(x), WINDOW)
        rows = [*ex.train, *ex.test, *ex.negatives]
        assert x.tokens.tolist() == [list(e.tokens) for e in rows]
        assert list(x.kinds) == [e.kind for e in rows]


def _active_peaks(truth: np.ndarray, index: int) -> np.ndarray:
    """The latent's activating windows' peaks, from the dense truth."""
    peaks = truth[:, index].reshape(-1, WINDOW).max(1)
    return peaks[peaks > 0]


@pytest.mark.parametrize("sampler", ["quantiles", "random", "mixed"])
def test_train_samplers_draw_n_train_activating_windows_with_their_quantile(
    cached, sampler: str
) -> None:
    _, truth, _ = cached
    b = builder(cached, window=WINDOW, n_train=6, n_test=4, n_quantiles=3, train_sampler=sampler)
    checked = 0
    for index in range(N_LATENTS):
        peaks = np.sort(_active_peaks(truth, index))
        ex = b.build(index)
        assert len(ex.train) == min(6, len(peaks))
        assert all(e.role == "train" and e.max_activation > 0 for e in ex.train)
        keys = [{e.key for e in s} for s in (ex.train, ex.test, ex.negatives)]
        assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
        got = [e.max_activation for e in ex.train]
        assert got == sorted(got, reverse=True)  # strongest first, whatever the sampler
        if len(peaks) < 12:
            continue
        checked += 1
        drawn = [e for e in ex.train if e.kind != "top"]
        prefix = "train-random:" if sampler == "random" else "train-quantile:"
        assert all(e.kind.startswith(prefix) and e.quantile in (0, 1, 2) for e in drawn)
        if sampler == "quantiles":  # 6 over 3 quantiles of all activating windows: 2 each
            assert sorted(e.quantile for e in ex.train) == [0, 0, 1, 1, 2, 2]
        if sampler in ("quantiles", "random"):  # each window lies in the quantile it names
            bins = np.array_split(peaks, 3)
            for e in ex.train:
                lo, hi = bins[e.quantile][0], bins[e.quantile][-1]
                assert lo - 2e-2 <= e.max_activation <= hi + 2e-2, (index, e.kind)
        if sampler == "mixed":  # half the strongest, half spread over the others
            assert [e.kind for e in ex.train[:3]] == ["top"] * 3
            assert np.allclose(got[:3], peaks[::-1][:3], atol=2e-2)
            assert sorted(e.quantile for e in ex.train[3:]) == [0, 1, 2]
    assert checked  # a latent with enough activating windows was checked


def test_random_train_examples_reach_below_the_top(cached) -> None:
    _, truth, _ = cached
    top = builder(cached, window=WINDOW, n_train=4)
    rand = builder(cached, window=WINDOW, n_train=4, train_sampler="random", seed=3)
    differs = 0
    for index in range(N_LATENTS):
        if len(_active_peaks(truth, index)) >= 12:
            a, b = top.build(index), rand.build(index)
            differs += {e.key for e in a.train} != {e.key for e in b.train}
            assert rand.build(index) == b  # reproducible per latent
    assert differs


def test_the_top_sampler_draws_exactly_what_runs_before_it_drew(cached) -> None:
    """The default train sampler leaves every example as it was (old runs resume unchanged)."""
    b = builder(cached, window=WINDOW, n_train=3, n_test=5, n_negatives=4)
    explicit = builder(cached, window=WINDOW, n_train=3, n_test=5, n_negatives=4,
                       train_sampler="top", n_quantiles=10)  # fmt: skip
    for index in range(N_LATENTS):
        ex = b.build(index)
        assert ex == explicit.build(index)
        assert all(e.kind == "top" and e.quantile is None for e in ex.train)
        assert all(e.quantile == int(e.kind.split(":")[1]) for e in ex.test)


@pytest.mark.parametrize("n_quantiles", [1, 4, 7])
def test_test_examples_come_from_the_configured_number_of_quantiles(
    cached, n_quantiles: int
) -> None:
    b = builder(cached, window=WINDOW, n_train=2, n_test=7, n_quantiles=n_quantiles)
    seen: set[int] = set()
    for index in range(N_LATENTS):
        ex = b.build(index)
        assert len(ex.test) <= 7 and all(0 <= e.quantile < n_quantiles for e in ex.test)
        if len(ex.test) == 7:  # exactly n_test: no rounding to a multiple of the quantiles
            shares = np.bincount([e.quantile for e in ex.test], minlength=n_quantiles)
            assert shares.max() - shares.min() <= 1
        seen |= {e.quantile for e in ex.test}
    assert seen == set(range(n_quantiles))


def test_bad_sampler_settings_are_one_line_errors(cached) -> None:
    with pytest.raises(ExamplesError, match="train_sampler = 'best': expected top, quantiles"):
        builder(cached, window=WINDOW, train_sampler="best")
    with pytest.raises(ExamplesError, match="n_quantiles = 0: expected >= 1"):
        builder(cached, window=WINDOW, n_quantiles=0)


def test_sampling_options_are_part_of_a_runs_identity_only_when_they_change_examples() -> None:
    """A run recorded before the options existed has the identity of one leaving them at their
    defaults (it resumes); another train sampler or number of quantiles is another run."""
    from autointerp.config import RunConfig, load_config
    from autointerp.pipeline import run_identity

    def identity(**latents: object) -> dict:
        sets = [f"latents.{k}={v!r}".replace("'", '"') for k, v in latents.items()]
        return run_identity(load_config(None, sets).as_table())

    table = load_config(None).as_table()
    assert table["latents"]["train_sampler"] == "top"  # shown by `autointerp config show`
    added = ("train_sampler", "n_quantiles", "train_top_share")
    older = {**table, "latents": {k: v for k, v in table["latents"].items() if k not in added}}
    assert run_identity(older) == identity() == identity(train_sampler="top", n_quantiles=10)
    assert identity(train_top_share=0.25) == identity()  # only a mixed sample uses it
    others = [
        identity(train_sampler="quantiles"),
        identity(train_sampler="random"),
        identity(train_sampler="mixed"),
        identity(train_sampler="mixed", train_top_share=0.25),
        identity(n_quantiles=5),
    ]
    assert all(o != identity() for o in others)
    assert all(a != b for i, a in enumerate(others) for b in others[i + 1 :])
    assert RunConfig.model_fields["latents"].annotation.model_fields["n_quantiles"].description
