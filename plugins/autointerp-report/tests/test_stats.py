"""Rank statistics, scorer agreement, bootstrap intervals and two-sample tests of
autointerp_report.stats, against hand computations and planted effects."""

from __future__ import annotations

import math

import numpy as np
import pytest
from autointerp_report.stats import (
    agreement,
    agreement_arrays,
    bootstrap_ci,
    bootstrap_medians,
    mann_whitney,
    median_difference_ci,
    permutation_test,
    rankdata,
    spearman,
)


def test_rankdata_averages_tied_ranks() -> None:
    # sorted: 1 (rank 1), 2 2 (ranks 2, 3 -> 2.5), 5 (4), 7 7 7 (5, 6, 7 -> 6)
    assert rankdata([7, 2, 5, 7, 1, 2, 7]).tolist() == [6, 2.5, 4, 6, 1, 2.5, 6]
    assert rankdata([3.0]).tolist() == [1.0]


def test_spearman_matches_a_hand_computation_with_ties() -> None:
    x, y = [1, 2, 2, 3], [1, 3, 2, 4]
    # ranks: x -> 1, 2.5, 2.5, 4; y -> 1, 3, 2, 4; centred: (-1.5, 0, 0, 1.5), (-1.5, .5, -.5, 1.5)
    # sum of products 4.5; sqrt(4.5 * 5) -> rho = 4.5 / sqrt(22.5)
    assert spearman(x, y) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2], [1, 2]))  # too few pairs
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))  # constant side
    assert spearman([1, 2, float("nan"), 3, 4], [1, 2, 9, 3, 4]) == pytest.approx(1.0)


def test_agreement_finds_planted_correlated_and_anti_correlated_scorers() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    scores = {
        "a": {i: float(v) for i, v in enumerate(truth + rng.normal(scale=0.2, size=200))},
        "b": {i: float(v) for i, v in enumerate(truth + rng.normal(scale=0.2, size=200))},
        "flipped": {i: float(-v) for i, v in enumerate(truth)},
        "noise": {i: float(v) for i, v in enumerate(rng.normal(size=200))},
    }
    scores["b"][5] = None  # type: ignore[assignment]  # a failed score is left out pairwise
    del scores["noise"][7]
    names, rho, n = agreement(scores)
    assert names == ["a", "b", "flipped", "noise"]
    r = dict(zip(names, range(4), strict=True))
    assert rho[r["a"], r["b"]] > 0.9 and rho[r["a"], r["b"]] == rho[r["b"], r["a"]]
    assert rho[r["a"], r["flipped"]] < -0.9
    assert abs(rho[r["a"], r["noise"]]) < 0.2
    assert np.allclose(np.diag(rho), 1.0)
    assert n[r["a"], r["b"]] == 199 and n[r["b"], r["noise"]] == 198 and n[r["a"], r["a"]] == 200


def test_agreement_of_arrays_equals_agreement_of_dicts() -> None:
    rng = np.random.default_rng(2)
    keys = rng.choice(10_000, size=(3, 400), replace=False)
    dicts = {
        name: {int(k): float(v) for k, v in zip(ks, rng.normal(size=400), strict=True)}
        for name, ks in zip("xyz", keys, strict=True)
    }
    dicts["y"].update({int(k): dicts["x"][int(k)] + 0.1 for k in keys[0][:200]})
    arrays = {}
    for name, d in dicts.items():
        order = sorted(d)
        arrays[name] = (np.array(order, dtype=np.int64), np.array([d[k] for k in order]))
    names, rho, n = agreement(dicts)
    names_a, rho_a, n_a = agreement_arrays(arrays)
    assert names == names_a and (n == n_a).all() and n[0, 1] >= 200
    assert np.allclose(rho, rho_a, equal_nan=True) and rho[0, 1] > 0.5


def test_bootstrap_ci_covers_the_true_median_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    covered = 0
    trials = 200
    for trial in range(trials):
        x = rng.exponential(size=60)  # skewed; true median ln 2
        med, lo, hi = bootstrap_ci(x, n_boot=500, seed=trial)
        assert lo <= med <= hi
        covered += lo <= math.log(2) <= hi
    assert 0.88 <= covered / trials <= 0.99
    # seeded: the same call gives the same interval; a wider confidence a wider interval
    x = rng.normal(size=50)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    _, lo90, hi90 = bootstrap_ci(x, confidence=0.9)
    _, lo99, hi99 = bootstrap_ci(x, confidence=0.99)
    assert lo99 <= lo90 and hi99 >= hi90
    assert all(math.isnan(v) for v in bootstrap_ci([float("nan")]))


@pytest.mark.parametrize("n", [1, 2, 7, 8])
def test_bootstrap_medians_have_the_distribution_of_resampled_medians(n) -> None:
    # the order-statistic shortcut against plain resampling: same distribution over the
    # (few) values a resample median of n = 7 or 8 points can take
    x = np.random.default_rng(n).normal(size=n)
    fast = bootstrap_medians(x, 100_000, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    slow = np.median(x[rng.integers(0, n, size=(100_000, n))], axis=1)
    support = np.union1d(np.round(fast, 9), np.round(slow, 9))
    p = np.array([(np.round(fast, 9) == v).mean() for v in support])
    q = np.array([(np.round(slow, 9) == v).mean() for v in support])
    assert 0.5 * np.abs(p - q).sum() < 0.01  # total variation distance
    assert fast.min() >= x.min() and fast.max() <= x.max()


def test_bootstrap_is_fast_for_a_million_values_and_brackets_the_median() -> None:
    x = np.random.default_rng(2).uniform(size=1_000_000)
    med, lo, hi = bootstrap_ci(x, n_boot=5000)
    assert med == pytest.approx(float(np.median(x)))
    # the median of U(0, 1) has standard error 1 / (2 sqrt(n)) = 0.0005
    assert lo < med < hi and 0.001 < hi - lo < 0.003


def test_median_difference_interval() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.8, 0.1, size=300), rng.normal(0.6, 0.1, size=300)
    diff, lo, hi = median_difference_ci(a, b)
    assert diff == pytest.approx(float(np.median(b) - np.median(a)))
    assert lo < diff < hi < -0.1
    diff, lo, hi = median_difference_ci(a, a.copy())
    assert diff == 0 and lo < 0 < hi
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        median_difference_ci(a, b, confidence=1.5)


def test_tests_detect_a_planted_shift_and_not_identical_samples() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0.4, 1.0, size=80)
    b = a - 0.15 + rng.normal(scale=0.02, size=80)
    diff, p = permutation_test(a, b, n_perm=2000)
    assert diff == pytest.approx(float(np.median(b) - np.median(a)))
    assert diff < -0.1 and p < 0.01
    assert p == pytest.approx(1 / 2001)  # no shuffle is as extreme: the smallest p possible
    _, p_mwu = mann_whitney(a, b)
    assert p_mwu < 0.01
    diff, p = permutation_test(a, a.copy())
    assert diff == 0 and p == 1.0
    u, p_mwu = mann_whitney(a, a.copy())
    assert u == 80 * 80 / 2 and p_mwu == 1.0
    # two samples of one distribution: p is uniform, so rarely tiny
    ps = [permutation_test(rng.normal(size=30), rng.normal(size=30), seed=s)[1] for s in range(40)]
    assert sum(p < 0.05 for p in ps) <= 6


def test_mann_whitney_matches_a_hand_computation_with_ties() -> None:
    x, y = [1, 1, 2, 3, 3, 3], [2, 3, 4, 4, 5]
    # pooled ranks: 1 1 -> 1.5; 2 2 -> 3.5; 3 3 3 3 -> 6.5; 4 4 -> 9.5; 5 -> 11
    # R_x = 1.5 + 1.5 + 3.5 + 3 * 6.5 = 26; U = 26 - 6 * 7 / 2 = 5
    # tie term over groups of 2, 2, 4, 2: 3 * (2^3 - 2) + (4^3 - 4) = 18 + 60 = 78
    # var = 6 * 5 / 12 * (12 - 78 / (11 * 10)); z = (|5 - 15| - 0.5) / sqrt(var)
    u, p = mann_whitney(x, y)
    var = 30 / 12 * (12 - 78 / 110)
    z = 9.5 / math.sqrt(var)
    assert u == 5
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.mannwhitneyu(x, y, method="asymptotic")
    assert p == pytest.approx(ref.pvalue) and u == ref.statistic
    assert math.isnan(mann_whitney([1, 1], [1, 1])[1])


@pytest.mark.parametrize("sizes", [(7, 8), (41, 30), (300, 300)])
def test_split_by_counts_gives_the_same_test_as_shuffling(sizes) -> None:
    # tied scores (accuracies on a 0.1 grid): the multivariate-hypergeometric split and the
    # shuffle draw the same null distribution, so their p-values agree up to Monte Carlo error
    rng = np.random.default_rng(sizes[0])
    a = np.round(rng.uniform(0.3, 1.0, sizes[0]), 1)
    b = np.round(rng.uniform(0.25, 0.85, sizes[1]), 1)
    diff_s, p_s = permutation_test(a, b, n_perm=20_000, method="shuffle")
    diff_c, p_c = permutation_test(a, b, n_perm=20_000, method="counts", seed=1)
    assert diff_s == diff_c != 0
    assert abs(p_s - p_c) < 4 * math.sqrt(p_s * (1 - p_s) / 20_000) + 1e-3
    assert permutation_test(a, a.copy(), method="counts")[1] == 1.0


def test_medians_from_counts_equal_numpy_medians() -> None:
    from autointerp_report.stats import _medians_from_counts

    rng = np.random.default_rng(5)
    values = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    for n in (1, 2, 9, 10):
        counts = rng.multinomial(n, [0.2] * 5, size=50)
        expected = [np.median(np.repeat(values, c)) for c in counts]
        assert np.allclose(_medians_from_counts(values, counts, n), expected)
