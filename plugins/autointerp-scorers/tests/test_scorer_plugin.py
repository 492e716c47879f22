"""Registration: six scorers with their configs, a light plugin module, a uniform interface."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import pytest
from autointerp_scorers.common import parse_keyed, parse_list, span_probabilities

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


def test_answer_probabilities_come_from_the_token_holding_each_answer() -> None:
    top = (("1", math.log(0.75)), ("0", math.log(0.25)))
    text = "Answer: [ 1]"
    tokens = [TokenLogprob("Answer", -0.1), TokenLogprob(": [", -0.1)]
    tokens += [TokenLogprob(" 1", math.log(0.75), top), TokenLogprob("]", -0.1)]
    answers = parse_list(text, 1)
    assert span_probabilities(tokens, text, answers.spans) == [pytest.approx(0.75)]
    # keyed answers: the key's digits are not taken for answers
    text = '{"1": 0, "2": 1}'
    pieces = ['{"', "1", '":', " 0", ",", ' "', "2", '":', " 1", "}"]
    lp = [TokenLogprob(p, -0.1, ((p, -0.1), ("1" if "0" in p else "0", -2.4))) for p in pieces]
    probs = span_probabilities(lp, text, parse_keyed(text, 2).spans)
    assert probs is not None
    assert probs[0] == pytest.approx(math.exp(-2.4) / (math.exp(-0.1) + math.exp(-2.4)))
    assert probs[1] == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.4)))
    # tokens that do not spell the reply cannot be matched
    assert span_probabilities([TokenLogprob("1", -0.1)], text, [(0, 1)]) is None
