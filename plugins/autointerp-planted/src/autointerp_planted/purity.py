"""Measured purity: how much of a planted latent's firings, on the cache a run actually read, one
rule accounts for.

A latent's firings are its rules' firings OR-ed with its extra random ones (noisy latents). Its
measured purity is the share of all its firings that its dominant rule (the one firing most)
covers: 1 for pure and graded latents; for a noisy one the rule's share against the random
firings; for a polysemantic one the larger rule's share (a token both rules fire on counts for
each), near 0.5 only where the two rules fire about as often. The nominal purity
(:meth:`PlantedSource.truth`) is what the set's definition expects; the measured one is what the
explainer and scorers saw.

The cache's token ids are read shard by shard, ``chunk`` contexts at a time, and each chosen
latent's rules are evaluated on the chunk (numpy over the tokens): memory does not grow with
the corpus. The totals are checked against the cache's own firing counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autointerp.errors import ConfigError
from autointerp_planted.source import PlantedSource


def token_chunks(cache_dir: Path, chunk: int = 512) -> Iterator[np.ndarray]:
    """The cache's contexts ``[<= chunk, ctx_len]`` (int64), shard by shard, in order."""
    from safetensors import safe_open

    from autointerp.cache import ActivationCache

    cache = ActivationCache(cache_dir)
    for shard in cache.shards:
        with safe_open(str(shard), framework="numpy") as f:
            tokens = f.get_slice("tokens")
            n = tokens.get_shape()[0]
            for lo in range(0, n, chunk):
                yield tokens[lo : min(n, lo + chunk)].astype(np.int64)


def measure_purity(
    source: PlantedSource, cache_dir: Path, indices: Sequence[int], chunk: int = 512
) -> dict[int, dict[str, Any]]:
    """Per latent of ``indices``: ``firings`` (all), ``rule_firings`` (per rule, in the set's
    order), ``random_firings`` (extra, where no rule fires), ``dominant_rule`` and ``purity``
    (dominant rule's firings / all; None for a latent that never fires). ``source`` must be
    bound to the run's tokenizer (:meth:`PlantedSource.bind_tokenizer`)."""
    from autointerp.cache import ActivationCache

    chosen = sorted(set(indices))
    n_rules = [len(source.latents[i]["rules"]) for i in chosen]
    rule_counts = np.zeros((len(chosen), 2), dtype=np.int64)
    extra = np.zeros(len(chosen), dtype=np.int64)
    total = np.zeros(len(chosen), dtype=np.int64)
    noisy = any(float(source.latents[i].get("noise", 0.0)) > 0 for i in chosen)
    for ids in token_chunks(cache_dir, chunk):
        keys = source.context_keys(ids) if noisy else None
        for row, index in enumerate(chosen):
            rules, random_firings, _ = source.firings(index, ids, keys)
            rule_counts[row, : len(rules)] = rule_counts[row, : len(rules)] + [
                int(r.sum()) for r in rules
            ]
            extra[row] += int(random_firings.sum())
            total[row] += int((np.logical_or.reduce(rules) | random_firings).sum())
    cached = ActivationCache(cache_dir).stats()["count"]
    out: dict[int, dict[str, Any]] = {}
    for row, index in enumerate(chosen):
        if int(cached[index]) != int(total[row]):
            raise ConfigError(
                f"{cache_dir}: planted latent {index} fires {int(total[row])} times on the "
                f"cached tokens but {int(cached[index])} times in the cache: the planted set "
                "(its definition or the tokenizer) changed since the run; rerun it"
            )
        counts = rule_counts[row, : n_rules[row]].tolist()
        best = int(np.argmax(counts))
        out[index] = {
            "firings": int(total[row]),
            "rule_firings": counts,
            "random_firings": int(extra[row]),
            "dominant_rule": best,
            "purity": counts[best] / int(total[row]) if total[row] else None,
        }
    return out
