"""Activation caching through an adapter and the sae feature source (cross-package).

Golden: every stored activation equals the source's encode of the captured hidden state, token by
token (not a reconstruction); reading a latent recovers a dense computation; interrupted caching
resumes; a cache of other settings is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from autointerp.cache import ActivationCache, CacheError, build_cache
from autointerp.plugins import PluginManager
from autointerp.testing.adapters import build_tiny, save_tiny, tiny_model, torch_threads

N_LATENTS, SITE = 48, "resid_post.1"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory):
    with torch_threads(1):
        yield build_tiny("gpt2", save_tiny(tiny_model("gpt2"), tmp_path_factory.mktemp("gpt2")))


@pytest.fixture(scope="module")
def sae(adapter, tmp_path_factory: pytest.TempPathFactory):
    d = adapter.site(SITE).shape[-1]
    g = torch.Generator().manual_seed(0)
    w = {"W_enc": torch.randn(d, N_LATENTS, generator=g), "b_enc": torch.zeros(N_LATENTS),
         "W_dec": torch.randn(N_LATENTS, d, generator=g), "b_dec": torch.zeros(d)}  # fmt: skip
    path = tmp_path_factory.mktemp("sae") / "sae.safetensors"
    save_file(w, path)
    options = {"path": str(path), "site": SITE, "activation": "topk", "k": 4}
    return PluginManager().build("feature_source", "sae", options)


def batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 100, (3, 10), generator=g) for _ in range(n)]


INFO = {"model": "tiny-gpt2", "source": "sae:test", "dataset": "random ids"}


def dense_truth(adapter, sae, data: list[torch.Tensor]) -> torch.Tensor:
    rows = []
    for ids in data:
        h = adapter.forward(ids, capture=[SITE], return_logits=False).captures[SITE]
        h = h.reshape(-1, h.shape[-1])
        values, idx = (h @ sae.W_enc + sae.b_enc).topk(4, dim=-1)
        rows.append(torch.zeros(len(h), N_LATENTS).scatter(1, idx, torch.relu(values)))
    return torch.cat(rows)


def test_every_stored_activation_is_the_encoding_of_the_captured_state(
    adapter, sae, tmp_path: Path
) -> None:
    data = batches(5)
    build_cache(adapter, sae, data, tmp_path / "c", INFO, contexts_per_shard=4, progress=False)
    cache = ActivationCache(tmp_path / "c")
    assert len(cache.shards) == 3  # 5 batches of 3 contexts; a shard closes at >= 4: 6, 6, 3
    truth = dense_truth(adapter, sae, data)
    stored = torch.zeros_like(truth)
    for index, tokens, values in cache.iter_latents():
        assert np.all(np.diff(tokens.astype(np.int64)) > 0)  # ascending, no duplicates
        stored[torch.from_numpy(tokens.astype(np.int64)), index] = torch.from_numpy(values)
    assert torch.allclose(stored, truth, atol=2e-2, rtol=1e-3)  # float16 storage
    assert np.array_equal(cache.tokens(), torch.cat(data).numpy())
    stats = cache.stats()
    nonzero = truth > 0
    assert np.allclose(stats["frequency"], nonzero.float().mean(0).numpy())
    assert np.allclose(stats["max"], truth.max(0).values.numpy(), atol=2e-2)


def test_interrupted_cache_resumes_from_the_last_complete_shard(adapter, sae, tmp_path) -> None:
    data = batches(6, seed=1)

    def dying():
        for i, ids in enumerate(data):
            if i == 4:
                raise KeyboardInterrupt
            yield ids

    with pytest.raises(KeyboardInterrupt):
        build_cache(
            adapter, sae, dying(), tmp_path / "c", INFO, contexts_per_shard=3, progress=False
        )
    partial = ActivationCache(tmp_path / "c")
    assert len(partial.shards) == 4 and not partial.manifest["complete"]

    calls = []
    original = adapter.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    adapter.forward = counting
    try:
        build_cache(adapter, sae, data, tmp_path / "c", INFO, contexts_per_shard=3, progress=False)
    finally:
        del adapter.forward
    assert len(calls) == 2  # only the batches after the last complete shard
    resumed = ActivationCache(tmp_path / "c")
    fresh_dir = tmp_path / "fresh"
    build_cache(adapter, sae, data, fresh_dir, INFO, contexts_per_shard=3, progress=False)
    fresh = ActivationCache(fresh_dir)
    for index in range(N_LATENTS):
        a, b = resumed.latent(index), fresh.latent(index)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_a_cache_of_other_settings_is_refused(adapter, sae, tmp_path) -> None:
    build_cache(adapter, sae, batches(1), tmp_path / "c", INFO, progress=False)
    other = {**INFO, "dataset": "another corpus"}
    with pytest.raises(CacheError, match="holds a cache of other settings"):
        build_cache(adapter, sae, batches(1), tmp_path / "c", other, progress=False)
    with pytest.raises(CacheError, match="latent 99 out of range"):
        ActivationCache(tmp_path / "c").latent(99)


def test_cache_command_on_a_corpus_file(adapter, tmp_path, autointerp_cli) -> None:
    model_dir = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    d = adapter.site(SITE).shape[-1]
    g = torch.Generator().manual_seed(5)
    w = {"W_enc": torch.randn(d, 24, generator=g), "b_enc": torch.zeros(24),
         "W_dec": torch.randn(24, d, generator=g), "b_dec": torch.zeros(d)}  # fmt: skip
    save_file(w, tmp_path / "sae.safetensors")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"paragraph {i} has some words in it" for i in range(40)))
    args = ["cache", str(corpus), "--out", str(tmp_path / "run"), "-m", str(model_dir),
            "-s", f'path="{tmp_path / "sae.safetensors"}"', "-s", f'site="{SITE}"',
            "-s", 'activation="topk"', "-s", "k=3",
            "--ctx-len", "16", "--batch-size", "2", "--max-tokens", "128"]  # fmt: skip
    result = autointerp_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "cached 128 tokens of resid_post.1" in result.stdout
    cache = ActivationCache(tmp_path / "run" / "cache" / SITE)
    assert cache.manifest["complete"] and cache.tokens().shape == (8, 16)
    again = autointerp_cli(*args)  # a finished cache is reused, not recomputed
    assert again.exit_code == 0 and "cached 128 tokens" in again.stdout


def test_shards_store_four_bytes_per_activation_when_their_tokens_fit_uint16(
    adapter, sae, tmp_path
) -> None:
    import json

    from safetensors import safe_open

    data = batches(4)
    build_cache(adapter, sae, data, tmp_path / "c", INFO, contexts_per_shard=6, progress=False)
    cache = ActivationCache(tmp_path / "c")
    firsts = [s["first_token"] for s in cache.manifest["shards"]]
    assert firsts == [0, 6 * 10]  # global index of each shard's first token
    for path in cache.shards:
        with safe_open(str(path), framework="numpy") as f:
            token, value = f.get_tensor("token"), f.get_tensor("value")
            assert token.dtype == np.uint16 and value.dtype == np.float16
            assert token.max() < 6 * 10  # within the shard
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest["format"] = 1
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match=r"cache format 1.*delete the directory"):
        build_cache(adapter, sae, data, tmp_path / "c", INFO, contexts_per_shard=6, progress=False)


class Scaled:
    """A feature source whose values are the SAE's times ``factor`` (out of float16's range)."""

    def __init__(self, inner, factor: float) -> None:
        self.inner, self.factor = inner, factor
        self.site, self.n_latents = inner.site, inner.n_latents

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode(self, x):
        acts = self.inner.encode(x)
        return type(acts)(acts.rows, acts.latents, acts.values * self.factor)


def test_values_beyond_float16_are_an_error_and_tiny_ones_are_not_firing(
    adapter, sae, tmp_path: Path
) -> None:
    with pytest.raises(CacheError, match=r"beyond the 65504 a cache value can hold"):
        build_cache(adapter, Scaled(sae, 1e6), batches(2), tmp_path / "big", INFO, progress=False)
    build_cache(adapter, Scaled(sae, 1e-12), batches(2), tmp_path / "tiny", INFO, progress=False)
    cache = ActivationCache(tmp_path / "tiny")
    assert cache.stats()["count"].sum() == 0  # stored as 0 they would have counted as firing
    assert all(np.isfinite(v).all() for _, _, v in cache.iter_latents())


def test_garbage_in_a_shards_data_is_one_line_naming_it(adapter, sae, tmp_path: Path) -> None:
    import struct

    data = batches(5)
    build_cache(adapter, sae, data, tmp_path / "c", INFO, contexts_per_shard=4, progress=False)
    shard = ActivationCache(tmp_path / "c").shards[0]
    raw = bytearray(shard.read_bytes())
    start = 8 + struct.unpack("<Q", raw[:8])[0]  # header intact, size intact, data garbled
    raw[start:] = np.random.default_rng(0).integers(0, 256, len(raw) - start, np.uint8).tobytes()
    shard.write_bytes(bytes(raw))
    cache = ActivationCache(tmp_path / "c")  # the header still reads
    with pytest.raises(
        CacheError, match=r"shard-00000\.safetensors: damaged .*delete it and rerun"
    ):
        cache.stats()
    with pytest.raises(CacheError, match=r"shard-00000\.safetensors: damaged"):
        list(cache.iter_latents())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_a_damaged_shard_is_named_and_a_rerun_recomputes_it(
    adapter, sae, tmp_path: Path, damage: str
) -> None:
    data = batches(5)
    build_cache(adapter, sae, data, tmp_path / "c", INFO, contexts_per_shard=4, progress=False)
    before = {i: (t.copy(), v.copy()) for i, t, v in ActivationCache(tmp_path / "c").iter_latents()}
    shard = ActivationCache(tmp_path / "c").shards[1]
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "garbage":
        shard.write_bytes(b"\x00garbage" * (shard.stat().st_size // 8))
    else:
        shard.unlink()
    with pytest.raises(CacheError, match=r"shard-00001\.safetensors: damaged .*rerun the same"):
        ActivationCache(tmp_path / "c")
    build_cache(adapter, sae, data, tmp_path / "c", INFO, contexts_per_shard=4, progress=False)
    after = ActivationCache(tmp_path / "c")
    assert len(after.shards) == 3
    for i, t, v in after.iter_latents():
        np.testing.assert_array_equal(t, before[i][0])
        np.testing.assert_array_equal(v, before[i][1])
