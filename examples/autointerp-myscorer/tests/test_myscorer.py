"""Tests of the tutorial scorer, using the fixtures autointerp gives every plugin author."""

from __future__ import annotations

import asyncio
import json

import pytest

from autointerp.errors import ConfigError
from autointerp.types import Example, Explanation, LatentRef


def example(text: str) -> Example:
    words = text.split(" ")
    toks = tuple(w if i == 0 else " " + w for i, w in enumerate(words))
    ids = tuple(sum(map(ord, text)) * 100 + i for i in range(len(toks)))  # distinct per text
    return Example(ids, toks, (1.0,) * len(toks))


ACTIVATING = [example("rain fell all day"), example("heavy rain and wind")]
NEGATIVE = [example("the cat sat down"), example("prices went up")]


def score(autointerp_plugins, text: str, **options):
    scorer = autointerp_plugins.build("scorer", "myscorer", options)
    explanation = Explanation(LatentRef("sae/resid_post.3", 7), text, "default")
    return asyncio.run(scorer.score(explanation, ACTIVATING, NEGATIVE, None))


def test_matching_explanation_scores_one(autointerp_plugins) -> None:
    result = score(autointerp_plugins, "rain")
    assert result.value == 1.0 and result.scorer == "myscorer"
    assert [p.predicted for p in result.predictions] == [1.0, 1.0, 0.0, 0.0]


def test_unrelated_explanation_scores_half(autointerp_plugins) -> None:
    assert score(autointerp_plugins, "violins").value == 0.5


def test_shown_examples_are_not_scored(autointerp_plugins) -> None:
    scorer = autointerp_plugins.build("scorer", "myscorer", {})
    shown = {"exclude_from_scoring": [ACTIVATING[0].key]}
    explanation = Explanation(LatentRef("src", 1), "rain", "contrastive", shown)
    result = asyncio.run(scorer.score(explanation, ACTIVATING, NEGATIVE, None))
    assert [p.example_id for p in result.predictions] == [1, 2, 3]


def test_options_are_validated(autointerp_plugins) -> None:
    with pytest.raises(ConfigError, match="min_word_lenght: unknown field"):
        autointerp_plugins.get("scorer", "myscorer").validate({"min_word_lenght": 2})


def test_listed_by_autointerp_plugins(autointerp_cli) -> None:
    rows = json.loads(autointerp_cli("plugins", "--json").stdout)
    row = next(r for r in rows if r["name"] == "myscorer")
    assert row["kind"] == "scorer" and row["distribution"] == "autointerp-myscorer"
    assert row["status"] == "ok"
