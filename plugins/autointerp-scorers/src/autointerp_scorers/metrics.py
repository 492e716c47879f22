"""Classification and ranking metrics, in plain numpy.

Undefined values (recall with no positives, AUROC with one class, correlation of a constant) are
left out of the result rather than reported as a made-up number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _arrays(actual: Sequence[float], predicted: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=float).astype(bool)
    p = np.asarray(predicted, dtype=float).astype(bool)
    if a.shape != p.shape:
        raise ValueError(f"{a.size} labels but {p.size} predictions")
    return a, p


def accuracy(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    a, p = _arrays(actual, predicted)
    return float(np.mean(a == p)) if a.size else None


def recall(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    """True positive rate; None without positives."""
    a, p = _arrays(actual, predicted)
    return float(np.mean(p[a])) if a.any() else None


def specificity(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    """True negative rate; None without negatives."""
    a, p = _arrays(actual, predicted)
    return float(np.mean(~p[~a])) if (~a).any() else None


def precision(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    """None when nothing was predicted positive."""
    a, p = _arrays(actual, predicted)
    return float(np.mean(a[p])) if p.any() else None


def f1(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    a, p = _arrays(actual, predicted)
    tp = int(np.sum(a & p))
    denominator = 2 * tp + int(np.sum(a & ~p)) + int(np.sum(~a & p))
    return 2 * tp / denominator if denominator else None


def balanced_accuracy(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    """Mean of the recalls of the classes present (one class: that class's recall)."""
    both = (recall(actual, predicted), specificity(actual, predicted))
    rates = [r for r in both if r is not None]
    return float(np.mean(rates)) if rates else None


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.arange(1, values.size + 1)
    # average the ranks of each run of equal values
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        if count > 1:
            idx = order[start : start + count]
            ranks[idx] = ranks[idx].mean()
    return ranks


def auroc(actual: Sequence[float], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties
    count half). None unless both classes are present."""
    a = np.asarray(actual, dtype=float).astype(bool)
    s = np.asarray(scores, dtype=float)
    if a.shape != s.shape:
        raise ValueError(f"{a.size} labels but {s.size} scores")
    n_pos, n_neg = int(a.sum()), int((~a).sum())
    if not n_pos or not n_neg:
        return None
    rank_sum = _ranks(s)[a].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None when either side is constant or there are < 2 points."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} values against {b.size}")
    if a.size < 2:
        return None
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else None


def binary_metrics(
    actual: Sequence[float],
    predicted: Sequence[float],
    probability: Sequence[float] | None = None,
) -> dict[str, float]:
    """Accuracy, balanced accuracy, precision, recall, F1, and AUROC when probabilities are given;
    undefined entries are omitted."""
    values = {
        "accuracy": accuracy(actual, predicted),
        "balanced_accuracy": balanced_accuracy(actual, predicted),
        "precision": precision(actual, predicted),
        "recall": recall(actual, predicted),
        "f1": f1(actual, predicted),
    }
    if probability is not None:
        values["auroc"] = auroc(actual, probability)
    return {k: v for k, v in values.items() if v is not None}
