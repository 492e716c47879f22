"""The `planted` feature source: latents defined by rules over the token ids, with known meanings.

The source reads no activations (``reads_tokens``): the cache stage binds it to the model adapter
(:meth:`PlantedSource.bind_model` decodes the tokenizer's vocabulary once and compiles every
predicate into a per-id table) and hands it each batch's token ids (:meth:`encode_tokens`).

A planted latent (JSON-able data, see :mod:`autointerp_planted.rules` for the rules)::

    {"mode": "pure" | "graded" | "noisy" | "polysemantic",
     "rules": [RULE, ...],   one, or two OR-ed (polysemantic); each with "description", "keys"
     "strength": 2.0,        the activation where a rule fires
     "graded": false,        true: the activation varies by token, strength x [0.25, 1]
     "noise": 0.0}           extra random firings: the chance per token (value strength x [0.5, 1])

Random firings and grades are hashes of (seed, latent, token ids of the context, position), never
of the batch: a cache holds the same activations however it is batched or resumed.
:meth:`PlantedSource.truth` gives a latent's ground truth (description, rule kinds, key tokens,
difficulty); the run's stored config (``feature_source``: set and seed) determines it, which is
how ``autointerp bench planted`` reads it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autointerp.features import FeatureSource, FeatureSourceError, SparseActivations
from autointerp.types import Site
from autointerp_planted.defaults import default_set
from autointerp_planted.plugin import PlantedConfig
from autointerp_planted.rules import RuleError, Vocab, check_rule, fires

MODES = ("pure", "graded", "noisy", "polysemantic")
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def load_set(name: str, seed: int = 0) -> list[dict[str, Any]]:
    """The planted latents of ``name`` ("default" or a JSON file), checked."""
    if name == "default":
        latents = default_set(seed)
    else:
        path = Path(name).expanduser()
        try:
            latents = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FeatureSourceError(f"planted: cannot read set {path}: {exc}") from None
        if not isinstance(latents, list) or not latents:
            raise FeatureSourceError(f"planted: {path} must hold a non-empty list of latents")
    for i, latent in enumerate(latents):
        try:
            _check_latent(latent)
        except (RuleError, KeyError, TypeError, ValueError) as exc:
            raise FeatureSourceError(f"planted: latent {i} of set {name}: {exc}") from None
    return latents


def _check_latent(latent: dict[str, Any]) -> None:
    if latent.get("mode", "pure") not in MODES:
        raise RuleError(f"mode {latent.get('mode')!r}: expected one of {', '.join(MODES)}")
    rules = latent["rules"]
    if not 1 <= len(rules) <= 2:
        raise RuleError(f"{len(rules)} rules: a latent has one, or two (polysemantic)")
    for rule in rules:
        check_rule(rule)
    if not 0.0 <= float(latent.get("noise", 0.0)) < 1.0:
        raise RuleError("noise must be in [0, 1)")
    if not float(latent.get("strength", 1.0)) > 0:
        raise RuleError("strength must be positive")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: uint64 in, well-mixed uint64 out (wraps, as it should)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _uniform(x: np.ndarray) -> np.ndarray:
    return (_mix(x) >> np.uint64(11)).astype(np.float64) * 2.0**-53


class PlantedSource(FeatureSource):
    reads_tokens = True

    def __init__(self, config: PlantedConfig) -> None:
        self.config = config
        self.site = config.site
        self.latents = load_set(config.set, config.seed)
        self.n_latents = len(self.latents)
        self.d_in = 0  # the site's width, once checked (no activations are read)
        self.vocab: Vocab | None = None
        self._bound: Any = None
        self._weights: dict[int, np.ndarray] = {}

    # -- the contract --------------------------------------------------------------------------

    def check_site(self, site: Site, *, source: str = "planted") -> None:
        """Any width: the site only names where the cache lives."""
        if site.name != self.site:
            raise FeatureSourceError(f"{source} reads site '{self.site}', not '{site.name}'")
        self.d_in = site.shape[-1]

    def bind_model(self, adapter: Any) -> None:
        """Decode the adapter's vocabulary once (the rules' tables are built from it)."""
        if self._bound is adapter:
            return
        self.bind_tokenizer(adapter.tokenizer, getattr(adapter, "vocab_size", None))
        self._bound = adapter

    def bind_tokenizer(self, tokenizer: Any, vocab_size: int | None = None) -> None:
        """Evaluate the rules over ``tokenizer``'s token strings (ids up to ``vocab_size``)."""
        self.vocab = Vocab.of(tokenizer, vocab_size)

    def encode(self, x: torch.Tensor) -> SparseActivations:
        raise FeatureSourceError(
            "planted: the latents are rules over token ids; the cache stage calls encode_tokens"
        )

    @torch.no_grad()
    def encode_tokens(self, ids: torch.Tensor) -> SparseActivations:
        """Every latent's firings on ``[contexts, ctx_len]`` ids, rows context-major."""
        if self.vocab is None:
            raise FeatureSourceError("planted: call bind_model with the model adapter first")
        arr = ids.detach().cpu().numpy().astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self.vocab.strings)):
            raise FeatureSourceError(
                f"planted: token id {int(arr.max())} outside the bound vocabulary of "
                f"{len(self.vocab.strings)}"
            )
        rows, latents, values = self._fire(arr)
        return SparseActivations(
            torch.from_numpy(rows), torch.from_numpy(latents), torch.from_numpy(values)
        )

    # -- ground truth --------------------------------------------------------------------------

    def truth(self, index: int) -> dict[str, Any]:
        """Latent ``index``'s ground truth: description, mode, rule kinds, key tokens, noise,
        strength and nominal purity (1 pure or graded, 0.5 polysemantic, None noisy: it depends
        on how often the rule fires, see ``autointerp bench planted``)."""
        if not 0 <= index < self.n_latents:
            raise FeatureSourceError(f"planted: no latent {index} (0..{self.n_latents - 1})")
        latent = self.latents[index]
        rules = latent["rules"]
        mode = latent.get("mode", "pure")
        keys = [k for rule in rules for k in rule.get("keys", [])]
        description = " ; also ".join(r.get("description", r["kind"]) for r in rules)
        purity = {"pure": 1.0, "graded": 1.0, "polysemantic": 0.5}.get(mode)
        return {
            "index": index,
            "description": description,
            "mode": mode,
            "kinds": [r["kind"] for r in rules],
            "keys": list(dict.fromkeys(keys)),
            "noise": float(latent.get("noise", 0.0)),
            "strength": float(latent.get("strength", 1.0)),
            "graded": bool(latent.get("graded", False)),
            "purity": purity,
        }

    def truths(self) -> list[dict[str, Any]]:
        return [self.truth(i) for i in range(self.n_latents)]

    # -- evaluation ----------------------------------------------------------------------------

    def context_keys(self, ids: np.ndarray) -> np.ndarray:
        """``[contexts, ctx_len]`` uint64: a hash of each context's ids and of the position."""
        t = ids.shape[1]
        if t not in self._weights:
            gen = np.random.default_rng([self.config.seed, t])
            self._weights[t] = gen.integers(0, 2**63, size=t, dtype=np.uint64) | np.uint64(1)
        h = (ids.astype(np.uint64) * self._weights[t]).sum(axis=1, dtype=np.uint64)
        return _mix(h[:, None] + np.arange(t, dtype=np.uint64)[None, :] * _GOLDEN)

    def firings(
        self, index: int, ids: np.ndarray, keys: np.ndarray | None = None
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Latent ``index`` on ``[contexts, ctx_len]`` ids, by cause: each rule's firings, the
        extra random firings (where no rule fires), and the values where it fires (all
        ``[contexts, ctx_len]``). ``keys``: :meth:`context_keys` of ``ids`` (made when needed)."""
        assert self.vocab is not None
        latent = self.latents[index]
        rules = [fires(rule, ids, self.vocab) for rule in latent["rules"]]
        fired = np.logical_or.reduce(rules)
        strength = float(latent.get("strength", 1.0))
        values = np.full(ids.shape, strength, dtype=np.float32)
        salted = (self.config.seed * 1_000_003 + index + 1) % 2**63
        salt, noise_salt = np.uint64(salted), np.uint64(salted * int(_M1) % 2**64)
        if latent.get("graded"):  # by token id: the same token always fires as strongly
            grade = _uniform(ids.astype(np.uint64) * _GOLDEN + salt)
            values *= (0.25 + 0.75 * grade).astype(np.float32)
        noise = float(latent.get("noise", 0.0))
        extra = np.zeros(ids.shape, dtype=bool)
        if noise > 0:
            draw = _uniform((self.context_keys(ids) if keys is None else keys) ^ noise_salt)
            extra = (draw < noise) & ~fired
            # the draw below the rate, rescaled, gives the extra firing's value
            values[extra] = strength * (0.5 + 0.5 * (draw[extra] / noise)).astype(np.float32)
        return rules, extra, values

    def _fire(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.vocab is not None
        keys = None
        out_rows, out_latents, out_values = [], [], []
        for index, latent in enumerate(self.latents):
            if keys is None and float(latent.get("noise", 0.0)) > 0:
                keys = self.context_keys(ids)
            rules, extra, values = self.firings(index, ids, keys)
            rows = np.flatnonzero(np.logical_or.reduce(rules) | extra)
            out_rows.append(rows)
            out_latents.append(np.full(len(rows), index, dtype=np.int64))
            out_values.append(values.reshape(-1)[rows])
        if not out_rows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0, dtype=np.float32)
        return (
            np.concatenate(out_rows).astype(np.int64),
            np.concatenate(out_latents),
            np.concatenate(out_values).astype(np.float32),
        )
