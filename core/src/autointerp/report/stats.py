"""Rank statistics shared by the report and the comparison commands (numpy only, no scipy)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np


def rankdata(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties sharing their average rank (scipy's ``method="average"``)."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(1, len(x) + 1, dtype=float)
    # average the ranks inside each group of equal values
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation; NaN when fewer than 3 pairs or either side is constant."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"spearman: x has {a.shape} values, y has {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 3:
        return math.nan
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return math.nan if denom == 0 else float((ra * rb).sum() / denom)


def agreement(
    scores: Mapping[str, Mapping[Hashable, float | None]],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pairwise Spearman correlation between scorers over the latents both scored.

    ``scores`` maps scorer name -> {latent: value}; returns (names, correlation matrix, matrix of
    the number of shared latents). Missing or None values are left out pair by pair.
    """
    names = sorted(scores)
    k = len(names)
    rho = np.full((k, k), math.nan)
    n = np.zeros((k, k), dtype=int)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            common = [
                key
                for key, v in scores[a].items()
                if v is not None and scores[b].get(key) is not None
            ]
            n[i, j] = len(common)
            rho[i, j] = spearman(
                [scores[a][key] for key in common], [scores[b][key] for key in common]
            )
    return names, rho, n
