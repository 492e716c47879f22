"""Intervention on tiny GPT-2: steering along the unembedding row of "z" makes the steered text
all z's; a judge that picks the z-heavy text scores 1, an inverted judge 0; no effect, no asking."""

from __future__ import annotations

import re
from typing import Any

import pytest

from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.types import Explanation, LatentRef

torch = pytest.importorskip("torch")
pytest.importorskip("autointerp_transformers")

from autointerp_scorers.common import ScoringFailedError  # noqa: E402
from autointerp_scorers.intervention import choice_probability, parse_choice  # noqa: E402
from autointerp_transformers.adapter import TransformersAdapter  # noqa: E402

from autointerp.llm import TokenLogprob  # noqa: E402
from autointerp.testing.adapters import tiny_model, tiny_tokenizer  # noqa: E402

EXPLANATION = Explanation(LatentRef("sae/resid_post.1", 5), "the letter z", "output_side")


@pytest.fixture(scope="module")
def adapter() -> TransformersAdapter:
    return TransformersAdapter(tiny_model("gpt2", seed=0), tiny_tokenizer())


@pytest.fixture(scope="module")
def z_direction(adapter) -> Any:
    z = adapter.tokenizer.convert_tokens_to_ids("z")
    return adapter.model.get_output_embeddings().weight[z].detach().numpy()


def judging(invert: bool = False) -> Any:
    def respond(request: Any) -> str:
        turn = request.messages[-1]["content"]
        a = re.search(r"^Text A: (.*)$", turn, re.M).group(1)
        b = re.search(r"^Text B: (.*)$", turn, re.M).group(1)
        steered = "A" if a.count("z") > b.count("z") else "B"
        return f"Answer: { ({'A': 'B', 'B': 'A'}[steered] if invert else steered) }"

    return respond


def score(score_with, build_scorer, adapter, direction, **options: Any):
    scorer = build_scorer("intervention", new_tokens=6, **options)
    return score_with(scorer, EXPLANATION, [], [], adapter=adapter, direction=direction)


def test_a_judge_that_finds_the_steered_text_scores_one(
    autointerp_llm_server: ScriptedLLMServer, score_with, build_scorer, adapter, z_direction
) -> None:
    autointerp_llm_server.responder = judging()
    result = score(score_with, build_scorer, adapter, z_direction)
    assert result.value == 1.0 and result.metrics["accuracy"] == 1.0 and result.n_failures == 0
    assert autointerp_llm_server.count() == 4 and len(result.predictions) == 8
    assert all(c["steered"] == "zzzzzz" for c in result.meta["continuations"])
    assert result.meta["site"] == "resid_post.1"
    positions = {
        r.messages[-1]["content"].count("Text A: zzzzzz") for r in autointerp_llm_server.requests
    }
    assert positions == {0, 1}  # the steered text is shown first in some prompts, second in others


def test_an_inverted_judge_scores_zero(
    autointerp_llm_server: ScriptedLLMServer, score_with, build_scorer, adapter, z_direction
) -> None:
    autointerp_llm_server.responder = judging(invert=True)
    result = score(score_with, build_scorer, adapter, z_direction)
    assert result.value == 0.0 and result.metrics["accuracy"] == 0.0


def test_no_visible_effect_means_no_llm_call_and_a_tie(
    autointerp_llm_server: ScriptedLLMServer, score_with, build_scorer, adapter, z_direction
) -> None:
    result = score(score_with, build_scorer, adapter, z_direction * 0)
    assert autointerp_llm_server.count() == 0
    assert result.value == 0.5 and result.metrics["n_identical"] == 4


def test_unparseable_judgements_are_counted(
    autointerp_llm_server: ScriptedLLMServer, score_with, build_scorer, adapter, z_direction
) -> None:
    autointerp_llm_server.default_text = "Both look fine to me."
    result = score(score_with, build_scorer, adapter, z_direction, max_reasks=0)
    assert result.value is None and result.n_failures == 8
    assert result.metrics["exclusion_rate"] == 1.0


def test_missing_inputs_fail_the_latent(
    autointerp_llm_server: ScriptedLLMServer, score_with, build_scorer, adapter, z_direction
) -> None:
    with pytest.raises(ScoringFailedError, match="decoder direction"):
        score(score_with, build_scorer, adapter, None)
    with pytest.raises(ScoringFailedError, match="width"):
        score(score_with, build_scorer, adapter, z_direction[:5])
    with pytest.raises(ScoringFailedError, match="resid_postt"):
        score(score_with, build_scorer, adapter, z_direction, site="resid_postt.1")
    assert build_scorer("intervention").needs == frozenset({"llm", "adapter", "direction"})


def test_choice_parsing_and_probability() -> None:
    assert parse_choice("Answer: B") == "B" and parse_choice("**Answer:** a.") == "A"
    assert parse_choice("B") == "B"
    with pytest.raises(Exception, match="Answer: A"):
        parse_choice("neither")
    top = (("A", -0.2), ("B", -1.8))
    p = choice_probability([TokenLogprob("Answer:", -0.01), TokenLogprob(" A", -0.2, top)])
    assert p == pytest.approx(1 / (1 + 2.718281828 ** (-1.6)), rel=1e-6)
