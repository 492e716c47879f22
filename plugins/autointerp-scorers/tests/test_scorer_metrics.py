"""The metrics against hand computations, and the undefined cases left out."""

from __future__ import annotations

import pytest
from autointerp_scorers.metrics import (
    accuracy,
    auroc,
    balanced_accuracy,
    binary_metrics,
    f1,
    pearson,
    precision,
    recall,
)

# 4 positives, 6 negatives: TP 3, FN 1, FP 2, TN 4
ACTUAL = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
PREDICTED = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]


def test_confusion_matrix_metrics_match_hand_computation() -> None:
    assert accuracy(ACTUAL, PREDICTED) == pytest.approx(7 / 10)
    assert recall(ACTUAL, PREDICTED) == pytest.approx(3 / 4)
    assert precision(ACTUAL, PREDICTED) == pytest.approx(3 / 5)
    assert f1(ACTUAL, PREDICTED) == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert balanced_accuracy(ACTUAL, PREDICTED) == pytest.approx((3 / 4 + 4 / 6) / 2)


def test_auroc_counts_pairs_and_ties_count_half() -> None:
    # positives 0.9, 0.6, 0.4 vs negatives 0.7, 0.2, 0.1: 3 + 2 + 2 = 7 of 9 pairs
    assert auroc([1, 1, 1, 0, 0, 0], [0.9, 0.6, 0.4, 0.7, 0.2, 0.1]) == pytest.approx(7 / 9)
    # one tie (0.5 vs 0.5) is half a pair: (1 + 0.5 + 1 + 1) / 4
    assert auroc([1, 1, 0, 0], [0.5, 0.8, 0.5, 0.1]) == pytest.approx(3.5 / 4)
    assert auroc([1, 0], [0.0, 1.0]) == 0.0
    assert auroc([1, 1], [0.3, 0.4]) is None


def test_pearson_matches_hand_computation_and_is_undefined_for_constants() -> None:
    # x = 1,2,3; y = 1,3,2: cov 1 (sum of products of deviations), variances 2 and 2
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert pearson([1, 2, 3], [6, 4, 2]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert pearson([1], [2]) is None


def test_undefined_metrics_are_left_out() -> None:
    only_negatives = binary_metrics([0, 0, 0], [0, 0, 1])
    assert "recall" not in only_negatives and only_negatives["f1"] == 0.0
    assert only_negatives["balanced_accuracy"] == pytest.approx(2 / 3)
    assert binary_metrics([1, 0], [1, 0], [0.9, 0.1])["auroc"] == 1.0
    with pytest.raises(ValueError, match="2 labels but 3"):
        accuracy([1, 0], [1, 0, 1])
