"""The bench's measures on hand-made cases."""

from __future__ import annotations

import pytest
from autointerp_planted.bench import auroc, key_match, purity, spearman


def test_key_match_counts_whole_words_and_symbols() -> None:
    assert key_match("Days of the week such as Monday", ["monday", "friday"]) == 0.5
    assert key_match("mondays", ["monday"]) == 0.0  # whole words only
    assert key_match("commas (,) in lists", [","]) == 1.0
    assert key_match("anything", []) is None


def test_spearman_and_auroc() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert auroc([0.9, 0.8], [0.1, 0.8]) == pytest.approx(0.875)
    assert auroc([0.9], []) is None


def test_purity_of_a_noisy_latent_is_the_share_of_rule_firings() -> None:
    noisy = {"purity": None, "noise": 0.01}
    assert purity(noisy, 0.04) == pytest.approx(0.75)
    assert purity(noisy, 0.005) == 0.0
    assert purity({"purity": 0.5, "noise": 0.0}, 0.1) == 0.5
