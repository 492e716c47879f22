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
from autointerp.features import FeatureSource, SparseActivations
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


def test_shards_are_written_in_the_background_and_a_write_error_is_raised(
    adapter, sae, tmp_path, monkeypatch
) -> None:
    import threading

    import safetensors.numpy

    real = safetensors.numpy.save_file
    writers: list[str] = []

    def save_file(tensors, path):  # the second shard's disk is full
        writers.append(threading.current_thread().name)
        if len(writers) == 2:
            raise OSError(28, "No space left on device")
        return real(tensors, path)

    monkeypatch.setattr(safetensors.numpy, "save_file", save_file)
    with pytest.raises(OSError, match="No space left"):
        build_cache(adapter, sae, batches(6), tmp_path / "c", INFO, contexts_per_shard=3,
                    progress=False)  # fmt: skip
    assert writers and all(name.startswith("autointerp-shard") for name in writers)
    assert threading.current_thread().name not in writers
    kept = ActivationCache(tmp_path / "c")
    assert len(kept.shards) == 1 and not kept.manifest["complete"]
    assert not list((tmp_path / "c").glob("shard-00001*"))  # nothing half-listed


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


# -- devices and memory ----------------------------------------------------------------------------


class Cramped(torch.nn.Module):
    """The SAE as a source on a device that holds at most ``fits`` contexts at once: a larger
    block raises the real out-of-memory exception (``exc``), as CUDA's allocator would."""

    def __init__(self, inner, fits: int, ctx_len: int, exc: type[Exception]) -> None:
        super().__init__()
        self.inner, self.fits, self.ctx_len, self.exc = inner, fits, ctx_len, exc
        self.site, self.n_latents = inner.site, inner.n_latents
        self.attempts: list[int] = []

    def forward(self, x: torch.Tensor):
        contexts = x.shape[0] // self.ctx_len
        self.attempts.append(contexts)
        if contexts > self.fits:
            message = "CUDA out of memory. Tried to allocate 2.00 GiB"
            if self.exc is RuntimeError:
                message = "[enforce fail at alloc_cpu.cpp:117] not enough memory: you tried to"
            raise self.exc(message)
        return self.inner.encode(x)

    encode = forward

    def check_site(self, site) -> None:
        self.inner.check_site(site)


def shard_bytes(cache_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(cache_dir.glob("shard-*.safetensors"))]


@pytest.mark.parametrize("exc", [torch.cuda.OutOfMemoryError, RuntimeError])
def test_a_batch_out_of_memory_is_split_and_the_cache_is_the_same(
    adapter, sae, tmp_path: Path, exc: type[Exception]
) -> None:
    g = torch.Generator().manual_seed(3)
    data = [torch.randint(0, 100, (5, 10), generator=g) for _ in range(3)]
    build_cache(adapter, sae, data, tmp_path / "whole", INFO, contexts_per_shard=6, progress=False)
    cramped = Cramped(sae, fits=2, ctx_len=10, exc=exc)
    build_cache(
        adapter, cramped, data, tmp_path / "split", INFO, contexts_per_shard=6, progress=False
    )
    # 5 fails, 3 fails, then pieces of 2 that fit; later batches start at the size that fit
    assert cramped.attempts == [5, 3, 2, 2, 1, 2, 2, 1, 2, 2, 1]
    assert shard_bytes(tmp_path / "split") == shard_bytes(tmp_path / "whole")
    a, b = ActivationCache(tmp_path / "split"), ActivationCache(tmp_path / "whole")
    assert a.manifest["shards"] == b.manifest["shards"]


def test_out_of_memory_on_a_single_context_is_one_line(adapter, sae, tmp_path: Path) -> None:
    cramped = Cramped(sae, fits=0, ctx_len=10, exc=torch.cuda.OutOfMemoryError)
    with pytest.raises(CacheError) as caught:
        build_cache(adapter, cramped, batches(1), tmp_path / "c", INFO, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "out of memory caching a single context of 10 tokens on cpu" in message
    assert "OutOfMemoryError: CUDA out of memory" in message and "ctx_len" in message
    assert cramped.attempts == [3, 2, 1]


def test_other_errors_are_not_taken_for_memory(adapter, sae, tmp_path: Path) -> None:
    cramped = Cramped(sae, fits=0, ctx_len=10, exc=ValueError)
    with pytest.raises(ValueError, match="CUDA out of memory"):
        build_cache(adapter, cramped, batches(1), tmp_path / "c", INFO, progress=False)
    assert cramped.attempts == [3]


def test_a_refused_cache_names_the_settings_that_differ(adapter, sae, tmp_path) -> None:
    info = {**INFO, "model": {"model": "tiny", "dtype": "float32", "device": "cpu"}}
    build_cache(adapter, sae, batches(1), tmp_path / "c", info, progress=False)
    other = {**info, "model": {**info["model"], "dtype": "bfloat16"}}
    with pytest.raises(CacheError, match=r'other settings \(model.dtype was "float32", now "bf'):
        build_cache(adapter, sae, batches(1), tmp_path / "c", other, progress=False)


def test_a_cache_made_on_another_device_is_reused(adapter, sae, tmp_path) -> None:
    on_gpu = {**INFO, "model": {"model": "tiny", "device": "cuda"}, "source_options": {}}
    build_cache(adapter, sae, batches(2), tmp_path / "c", on_gpu, progress=False)
    before = shard_bytes(tmp_path / "c")
    on_cpu = {**on_gpu, "model": {"model": "tiny", "device": "cpu"},
              "source_options": {"device": "cpu"}}  # fmt: skip
    calls = []
    original = adapter.forward
    adapter.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        build_cache(adapter, sae, batches(2), tmp_path / "c", on_cpu, progress=False)
    finally:
        del adapter.forward
    assert calls == [] and shard_bytes(tmp_path / "c") == before


def test_bfloat16_caches_end_to_end_on_the_cpu(adapter, tmp_path: Path) -> None:
    """The transformers adapter and the sae source both in bfloat16: a real cache, whose values
    are the float32 cache's to bfloat16 precision."""
    pm = PluginManager()
    model_dir = save_tiny(tiny_model("gpt2"), tmp_path / "gpt2")
    d = adapter.site(SITE).shape[-1]
    g = torch.Generator().manual_seed(0)
    w = {"W_enc": torch.randn(d, N_LATENTS, generator=g), "b_enc": torch.zeros(N_LATENTS),
         "W_dec": torch.randn(N_LATENTS, d, generator=g), "b_dec": torch.zeros(d)}  # fmt: skip
    save_file(w, tmp_path / "sae.safetensors")
    sae_options = {"path": str(tmp_path / "sae.safetensors"), "site": SITE, "activation": "relu"}
    data = batches(2)
    dense = {}
    for dtype in ("float32", "bfloat16"):
        with torch_threads(1):
            model = pm.build("model_adapter", "transformers", {"model": str(model_dir),
                                                               "dtype": dtype})  # fmt: skip
            source = pm.build("feature_source", "sae", {**sae_options, "dtype": dtype})
            assert model.dtype == source.W_enc.dtype == getattr(torch, dtype)
            build_cache(model, source, data, tmp_path / dtype, INFO, progress=False)
        cache = ActivationCache(tmp_path / dtype)
        out = torch.zeros(len(data) * 3 * 10, N_LATENTS)
        for index, tokens, values in cache.iter_latents():
            out[torch.from_numpy(tokens), index] = torch.from_numpy(values)
        dense[dtype] = out
    full, half = dense["float32"], dense["bfloat16"]
    assert (half > 0).sum() > 0.3 * (full > 0).sum()
    scale = full.abs().max()
    assert (half - full).abs().max() < 0.05 * scale  # bfloat16 keeps ~3 significant digits


class _TokenParity(FeatureSource):
    """Reads token ids, not activations: latent 0 fires (value = id) on even ids."""

    reads_tokens = True
    site, n_latents, d_in = SITE, 1, 32

    def __init__(self) -> None:
        self.bound = None

    def check_site(self, site, *, source: str = "token parity") -> None:
        pass

    def bind_model(self, adapter) -> None:
        self.bound = adapter

    def encode(self, x: torch.Tensor):
        raise AssertionError("a source that reads tokens is never given activations")

    def encode_tokens(self, ids: torch.Tensor) -> SparseActivations:
        flat = ids.reshape(-1)
        rows = ((flat % 2 == 0) & (flat > 0)).nonzero().squeeze(1)
        return SparseActivations(rows, torch.zeros_like(rows), flat[rows].float())


def test_a_source_that_reads_tokens_is_bound_and_given_the_ids_without_a_forward(
    adapter, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _TokenParity()
    monkeypatch.setattr(adapter, "forward", lambda *a, **k: pytest.fail("forward ran"))
    data = batches(2)
    build_cache(adapter, source, data, tmp_path, {"test": 1}, progress=False)
    assert source.bound is adapter
    ids = torch.cat(data).reshape(-1)
    token, value = ActivationCache(tmp_path).latent(0)
    expected = ((ids % 2 == 0) & (ids > 0)).nonzero().squeeze(1)
    assert token.tolist() == expected.tolist()
    assert value.astype(np.float32).tolist() == ids[expected].float().tolist()
