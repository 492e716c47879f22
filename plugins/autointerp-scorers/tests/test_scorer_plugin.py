"""Registration: six scorers with their configs, a light plugin module, a uniform interface."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import pytest
from autointerp_scorers.common import binary_probabilities

from autointerp.llm import TokenLogprob
from autointerp.plugins import PluginManager

SCORERS = ("detection", "fuzzing", "simulation", "surprisal", "embedding", "intervention")


def test_every_scorer_is_registered_with_a_config() -> None:
    manager = PluginManager()
    assert set(SCORERS) <= set(manager.names("scorer"))
    with pytest.raises(Exception, match="batch_sise"):
        manager.build("scorer", "detection", {"batch_sise": 3})


def test_the_plugin_and_the_llm_scorers_import_no_torch() -> None:
    code = (
        "import sys, autointerp_scorers.plugin, autointerp_scorers.detection, "
        "autointerp_scorers.fuzzing, autointerp_scorers.simulation; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["detection", "fuzzing", "simulation", "surprisal"])
def test_the_score_interface_is_uniform(name: str) -> None:
    scorer = PluginManager().build("scorer", name, {})
    params = inspect.signature(scorer.score).parameters
    assert list(params)[:4] == ["explanation", "examples", "negatives", "llm"]
    assert params["seed"].kind is inspect.Parameter.KEYWORD_ONLY and params["seed"].default == 0
    assert params["adapter"].default is None
    assert isinstance(scorer.needs, frozenset)


def test_answer_probabilities_count_a_spaced_token_once() -> None:
    top = (("1", math.log(0.75)), ("0", math.log(0.25)))
    assert binary_probabilities([TokenLogprob(" 1", math.log(0.75), top)], 1) == [
        pytest.approx(0.75)
    ]
    assert binary_probabilities([TokenLogprob("1", -0.1)], 2) is None
