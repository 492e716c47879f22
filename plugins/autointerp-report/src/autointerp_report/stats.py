"""Rank statistics shared by the report and the comparison commands (numpy only, no scipy)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

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


#: one scorer's values over a run's latents: latent codes (sorted, unique) and the values
Column = tuple[np.ndarray, np.ndarray]


class ScoreColumns:
    """Scores gathered into arrays as they are read, one :data:`Column` per scorer key: a
    latent's code is ``source number << 40 | index`` (sources numbered as met; rows read in
    (source, index) order give sorted codes), the same for every key of one run."""

    def __init__(self) -> None:
        self._codes: dict[str, array[int]] = {}
        self._values: dict[str, array[float]] = {}
        self.missing: dict[str, int] = {}  #: scores without a finite value, per key
        self._sources: dict[str, int] = {}

    @property
    def sources(self) -> list[str]:
        """The sources met, sorted."""
        return sorted(self._sources)

    def add(self, key: str, source: str, index: int, value: Any) -> None:
        if key not in self._codes:
            self._codes[key], self._values[key], self.missing[key] = array("q"), array("d"), 0
        number = self._sources.setdefault(source, len(self._sources))
        if isinstance(value, int | float) and math.isfinite(value):
            self._codes[key].append(number << 40 | index)
            self._values[key].append(float(value))
        else:
            self.missing[key] += 1

    def arrays(self) -> dict[str, Column]:
        return {k: (np.asarray(self._codes[k], dtype=np.int64),
                    np.asarray(self._values[k], dtype=float)) for k in self._codes}  # fmt: skip


def agreement(
    scores: Mapping[str, Mapping[Hashable, float | None]],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pairwise Spearman correlation between scorers over the latents both scored.

    ``scores`` maps scorer name -> {latent: value}; returns (names, correlation matrix, matrix of
    the number of shared latents). Missing or None values are left out pair by pair.
    """
    position: dict[Hashable, int] = {}
    arrays = {}
    for name, values in scores.items():
        kept = [(position.setdefault(key, len(position)), v)
                for key, v in values.items() if v is not None]  # fmt: skip
        keys = np.fromiter((k for k, _ in kept), dtype=np.int64, count=len(kept))
        vals = np.fromiter((v for _, v in kept), dtype=float, count=len(kept))
        order = np.argsort(keys)
        arrays[name] = (keys[order], vals[order])
    return agreement_arrays(arrays)


def agreement_arrays(
    scores: Mapping[str, Column],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """:func:`agreement` of scores held as arrays: scorer name -> (latent keys, sorted unique
    integers; their values). A million latents' scores take 16 bytes each, not a dict entry."""
    names = sorted(scores)
    k = len(names)
    rho = np.full((k, k), math.nan)
    n = np.zeros((k, k), dtype=int)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            (ka, va), (kb, vb) = scores[a], scores[b]
            _, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
            n[i, j] = len(ia)
            rho[i, j] = spearman(va[ia], vb[ib])
    return names, rho, n


def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]


def _chunk_rows(n_rows: int, row_len: int, budget: int = 4_000_000) -> int:
    """Rows per chunk so that one chunk holds about ``budget`` numbers at most."""
    return max(1, min(n_rows, budget // max(1, row_len)))


def bootstrap_medians(
    values: Sequence[float] | np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Medians of ``n_boot`` bootstrap resamples of ``values`` (NaN-free), drawn exactly but
    without building the resamples.

    A resample is ``x_sorted[idx]`` for ``n`` uniform indices, so its i-th smallest value is
    ``x_sorted[floor(n * U_(i))]`` with ``U_(i)`` the i-th order statistic of ``n`` uniforms,
    ``Beta(i, n + 1 - i)``. The median needs the middle one (odd ``n``) or the middle two (even
    ``n``: the next is ``U + (1 - U) * Beta(1, n - i)``, the smallest of the ``n - i`` uniforms
    above ``U``), so each resample costs O(1) after one sort: same distribution as resampling
    ``n`` values ``n_boot`` times (checked against it in the tests), at O(n log n + n_boot).
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    k = (n + 1) // 2  # 1-based rank of the (lower) middle value
    u = rng.beta(k, n + 1 - k, size=n_boot)
    lower = x[np.minimum((u * n).astype(np.int64), n - 1)]
    if n % 2:
        return lower
    nxt = u + (1 - u) * rng.beta(1, n - k, size=n_boot)
    return (lower + x[np.minimum((nxt * n).astype(np.int64), n - 1)]) / 2


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The median of ``values`` with a percentile-bootstrap confidence interval.

    Returns ``(median, low, high)``; NaN values are left out; all NaN when nothing is left. The
    bootstrap medians come from :func:`bootstrap_medians` with a ``numpy.random.Generator``
    seeded with ``seed``: same inputs, same interval; fast for a million values.
    """
    _check_confidence(confidence)
    x = _clean(values)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    medians = bootstrap_medians(x, n_boot, np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(medians, [alpha, 1 - alpha])
    return float(np.median(x)), float(low), float(high)


def median_difference_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``median(b) - median(a)`` with a percentile-bootstrap interval (independent samples,
    each resampled on its own); all NaN when either side is empty."""
    _check_confidence(confidence)
    x, y = _clean(a), _clean(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    diffs = bootstrap_medians(y, n_boot, rng) - bootstrap_medians(x, n_boot, rng)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return float(np.median(y) - np.median(x)), float(low), float(high)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


def _medians_from_counts(values: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Row-wise medians of samples given as counts ``[rows, U]`` over sorted ``values`` [U]."""
    cum = np.cumsum(counts, axis=1)
    low = (cum > (n - 1) // 2).argmax(axis=1)  # 0-based ranks of the middle value(s)
    high = (cum > n // 2).argmax(axis=1)
    return (values[low] + values[high]) / 2


def permutation_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_perm: int = 10_000,
    seed: int = 0,
    method: Literal["auto", "shuffle", "counts"] = "auto",
) -> tuple[float, float]:
    """Two-sided permutation test of the difference of medians of two independent samples.

    Returns ``(median(b) - median(a), p)``. Under the null hypothesis that both samples come from
    one distribution the labels are exchangeable, so the observed difference is compared with the
    differences after splitting the pooled values at random ``n_perm`` times (seeded; one chunk
    of splits drawn at once). ``p = (1 + #{|d*| >= |d|}) / (1 + n_perm)``, never 0. This tests
    the statistic that ``compare`` reports (the median) without assuming a distribution; scores
    are bounded, often tied and skewed, where a t-test's normality does not hold.

    A random split is drawn one of two ways with the same distribution: ``shuffle`` permutes the
    pooled values (O(N) per split); ``counts`` draws how many of each distinct value fall in the
    first sample, multivariate-hypergeometric (O(distinct values) per split): far faster for
    scores with few distinct values (accuracies over a few examples). ``auto`` picks ``counts``
    when there are at most a quarter as many distinct values as values.
    """
    x, y = _clean(a), _clean(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    observed = float(np.median(y) - np.median(x))
    pooled = np.concatenate([x, y])
    rng = np.random.default_rng(seed)
    # a tiny tolerance so ties from float rounding count as "as extreme" (identical samples: p = 1)
    threshold = abs(observed) - 1e-12 * max(1.0, abs(observed))
    values, colors = np.unique(pooled, return_counts=True)
    if method == "auto":
        method = "counts" if 4 * len(values) <= len(pooled) else "shuffle"
    extreme = 0
    step = _chunk_rows(n_perm, len(values) if method == "counts" else len(pooled))
    for start in range(0, n_perm, step):
        rows = min(step, n_perm - start)
        if method == "counts":
            in_x = rng.multivariate_hypergeometric(colors, len(x), size=rows, method="marginals")
            diff = _medians_from_counts(values, colors - in_x, len(y)) - _medians_from_counts(
                values, in_x, len(x)
            )
        else:
            shuffled = rng.permuted(np.broadcast_to(pooled, (rows, len(pooled))), axis=1)
            diff = np.median(shuffled[:, len(x) :], axis=1) - np.median(
                shuffled[:, : len(x)], axis=1
            )
        extreme += int((np.abs(diff) >= threshold).sum())
    return observed, (1 + extreme) / (1 + n_perm)


def mann_whitney(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Mann-Whitney U test of two independent samples, two-sided, normal approximation.

    Returns ``(U of a, p)``; ties get average ranks and the variance the tie correction, with a
    continuity correction of 1/2. A rank test: insensitive to outliers and to the scale of a
    scorer, it asks whether a value from one sample tends to exceed one from the other. The normal
    approximation is good from about 8 values per sample; p is NaN if all values are equal.
    """
    x, y = _clean(a), _clean(b)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    ranks = rankdata(np.concatenate([x, y]))
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    n = n1 + n2
    _, counts = np.unique(np.concatenate([x, y]), return_counts=True)
    ties = float((counts**3 - counts).sum())
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return u, math.nan
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(var)
    return u, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
