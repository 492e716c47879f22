"""Measured purity on a constructed corpus: known counts of two tokens, cached by the real cache
stage over a tiny model's tokenizer, read back in chunks and shards of any size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from autointerp_planted.purity import measure_purity
from autointerp_planted.source import PlantedSource

from autointerp.cache import ActivationCache, build_cache
from autointerp.errors import ConfigError
from autointerp.plugins import PluginManager
from autointerp.testing.adapters import build_tiny, save_tiny, tiny_model, tiny_tokenizer

COMMA = {"kind": "token", "match": {"words": [","]}}
STOP = {"kind": "token", "match": {"words": ["."]}}
PUNCT = {"kind": "token", "match": {"regex": r"^[,.]$"}}
SET = [
    {"mode": "pure", "rules": [COMMA]},
    {"mode": "polysemantic", "rules": [COMMA, STOP]},
    {"mode": "polysemantic", "rules": [STOP, PUNCT]},  # the second rule covers the first
    {"mode": "noisy", "rules": [COMMA], "noise": 0.3},
    {"mode": "pure", "rules": [{"kind": "token", "match": {"words": ["never"]}}]},
]
N_COMMA, N_STOP = 30, 10


def corpus(contexts: int = 10, ctx: int = 16) -> torch.Tensor:
    """Filler letters with exactly N_COMMA commas and N_STOP full stops, at random places."""
    tok = tiny_tokenizer()
    comma, stop = (tok.convert_tokens_to_ids(c) for c in (",", "."))
    letters = [tok.convert_tokens_to_ids(c) for c in "abcdefgh"]
    rng = np.random.default_rng(0)
    ids = rng.choice(letters, size=contexts * ctx)
    places = rng.permutation(contexts * ctx)
    ids[places[:N_COMMA]] = comma
    ids[places[N_COMMA : N_COMMA + N_STOP]] = stop
    return torch.from_numpy(ids.reshape(contexts, ctx))


def planted(path: Path, latents: list[dict]) -> PlantedSource:
    path.write_text(json.dumps(latents), encoding="utf-8")
    return PluginManager().build("feature_source", "planted", {"set": str(path), "seed": 1})


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.Tensor]:
    """A cache of the set on the corpus (several shards), the set's file and the ids."""
    tmp = tmp_path_factory.mktemp("purity")
    adapter = build_tiny("gpt2", save_tiny(tiny_model("gpt2"), tmp / "model"))
    source = planted(tmp / "set.json", SET)
    ids = corpus()
    cache_dir = tmp / "cache"
    batches = list(ids.split(4))
    build_cache(adapter, source, batches, cache_dir, {"test": 1}, contexts_per_shard=3,
                progress=False)  # fmt: skip
    return cache_dir, tmp / "set.json", ids


def bound(set_path: Path) -> PlantedSource:
    source = PluginManager().build("feature_source", "planted", {"set": str(set_path), "seed": 1})
    source.bind_tokenizer(tiny_tokenizer())
    return source


@pytest.mark.parametrize("chunk", [1, 2, 512])
def test_measured_purity_counts_each_cause_of_the_firings(cached, chunk: int) -> None:
    cache_dir, set_path, ids = cached
    assert len(ActivationCache(cache_dir).shards) == 3  # batches of 4 contexts, 3+ a shard
    got = measure_purity(bound(set_path), cache_dir, [0, 1, 2, 3], chunk=chunk)

    assert got[0] == {"firings": N_COMMA, "rule_firings": [N_COMMA], "random_firings": 0,
                      "dominant_rule": 0, "purity": 1.0}  # fmt: skip
    assert got[1]["rule_firings"] == [N_COMMA, N_STOP] and got[1]["firings"] == N_COMMA + N_STOP
    assert got[1]["purity"] == pytest.approx(0.75) and got[1]["dominant_rule"] == 0
    # a token both rules fire on counts for each: the wider rule covers every firing
    assert got[2]["rule_firings"] == [N_STOP, N_COMMA + N_STOP]
    assert got[2]["purity"] == 1.0 and got[2]["dominant_rule"] == 1

    # the noisy latent: its random firings are exactly the cached firings off the commas
    where, _ = ActivationCache(cache_dir).latent(3)
    comma = tiny_tokenizer().convert_tokens_to_ids(",")
    off_rule = int((ids.reshape(-1).numpy()[where] != comma).sum())
    assert off_rule > 10  # noise 0.3 over ~130 filler tokens
    assert got[3]["random_firings"] == off_rule and got[3]["rule_firings"] == [N_COMMA]
    assert got[3]["purity"] == pytest.approx(N_COMMA / (N_COMMA + off_rule))


def test_a_latent_that_never_fires_has_no_purity(cached) -> None:
    cache_dir, set_path, _ = cached
    (got,) = measure_purity(bound(set_path), cache_dir, [4]).values()
    assert got["firings"] == 0 and got["purity"] is None


def test_a_set_changed_since_the_cache_is_refused(cached, tmp_path: Path) -> None:
    cache_dir, _, _ = cached
    changed = [dict(x) for x in SET]
    changed[0] = {"mode": "pure", "rules": [STOP]}
    planted(tmp_path / "changed.json", changed)
    with pytest.raises(ConfigError, match=r"latent 0 fires 10 times .* but 30 times in the cache"):
        measure_purity(bound(tmp_path / "changed.json"), cache_dir, [0])
