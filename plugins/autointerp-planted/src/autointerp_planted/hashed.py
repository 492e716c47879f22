"""The ``hashed`` feature source: as wide as you like, and nearly free to compute.

Each token fires ``k`` of ``width`` latents, chosen by hashing the token's last ``n`` ids (its
n-gram, within its context) with ``k`` salts; the activation is a second hash of the same, in
(0, 1]. A latent's meaning is therefore known — "one of these n-grams" — and, for a width well above
the corpus's distinct n-grams times ``k``, a latent fires on a single n-gram. It exists for
scale: a million-latent source whose caching costs no forward pass and no matrix product.
"""

from __future__ import annotations

import numpy as np
import torch

from autointerp.features import FeatureSource, FeatureSourceError, SparseActivations
from autointerp.types import Site
from autointerp_planted.plugin import HashedConfig
from autointerp_planted.source import PlantedSource, _mix

_PAD = np.uint64(0x9E3779B97F4A7C15)  # stands for "before the context's first token"


class HashedSource(FeatureSource):
    reads_tokens = True

    def __init__(self, config: HashedConfig) -> None:
        self.config = config
        self.site = config.site
        self.n_latents = config.width
        self.d_in = 0
        salts = np.arange(config.k, dtype=np.uint64) + np.uint64(config.seed) * np.uint64(1000003)
        self._salts = _mix(salts + np.uint64(1))

    def check_site(self, site: Site, *, source: str = "hashed") -> None:
        """Any width: the site only names where the cache lives (as for planted latents)."""
        PlantedSource.check_site(self, site, source=source)  # type: ignore[arg-type]

    def encode(self, x: torch.Tensor) -> SparseActivations:
        raise FeatureSourceError("hashed: latents are hashes of token ids; use encode_tokens")

    def encode_tokens(self, ids: torch.Tensor) -> SparseActivations:
        """``k`` latents per token of ``[contexts, ctx_len]`` ids, rows context-major."""
        arr = ids.detach().cpu().numpy().astype(np.uint64)
        c, t = arr.shape
        h = np.zeros((c, t), dtype=np.uint64)
        for back in range(self.config.n):  # n-gram of the last n ids; a loop over n, not tokens
            shifted = np.full((c, t), _PAD, dtype=np.uint64)
            shifted[:, back:] = arr[:, : t - back] if back else arr
            h = _mix(h ^ shifted)
        keys = _mix(h.reshape(-1, 1) ^ self._salts)  # [tokens, k]
        latents = (keys % np.uint64(self.n_latents)).astype(np.int64)
        values = ((_mix(keys) >> np.uint64(40)).astype(np.float32) + 1.0) * np.float32(2.0**-24)
        rows = np.repeat(np.arange(c * t, dtype=np.int64), self.config.k)
        flat = rows * self.n_latents + latents.reshape(-1)
        # two salts of one token may land on one latent: keep the first firing
        _, first = np.unique(flat, return_index=True)
        return SparseActivations(
            torch.from_numpy(rows[first]),
            torch.from_numpy(latents.reshape(-1)[first]),
            torch.from_numpy(values.reshape(-1)[first]),
        )
