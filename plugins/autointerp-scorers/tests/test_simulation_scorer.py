"""Simulation: a simulator that knows the pattern correlates 1, an inverted one -1; failures are
excluded (never zeros); expected values from logprobs."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import pytest
from autointerp_scorers.simulation import expected_activations, parse_activations

from autointerp.llm import (
    ChatResponse,
    EndpointConfig,
    LLMClient,
    Message,
    ParseError,
    Pricing,
    SamplingParams,
    Scheduler,
    TokenLogprob,
)
from autointerp.testing.llm_server import ScriptedLLMServer

WEEKDAY = re.compile(r"^\s*(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\s*$")


def token_lines(request: Any) -> list[str]:
    """The tokens listed in the last turn (``<i> "<token>"`` lines)."""
    for message in reversed(request.messages):
        if message["role"] == "user" and message["content"].startswith("Explanation:"):
            lines = message["content"].splitlines()
            return [json.loads(ln.split(" ", 1)[1]) for ln in lines if re.match(r"^\d+ \"", ln)]
    return []


def simulating(invert: bool = False, garbage_if: str = "") -> Any:
    def respond(request: Any) -> str:
        tokens = token_lines(request)
        if garbage_if and garbage_if in "".join(tokens):
            return "Hard to say."
        values = [10 * (bool(WEEKDAY.match(t)) ^ invert) for t in tokens]
        return f"Answer: [{', '.join(map(str, values))}]"

    return respond


def test_a_simulator_that_knows_the_pattern_correlates_one(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = simulating()
    score = score_with(build_scorer("simulation"), explanation, activating, negatives)
    assert score.value == pytest.approx(1.0) and score.scorer == "simulation"
    assert score.n_failures == 0 and len(score.predictions) == 16
    assert autointerp_llm_server.count() == 16  # one prompt per example
    assert score.predictions[0].predicted == 10.0 and score.predictions[0].actual == 10.0
    assert score.predictions[8].predicted == 0.0 and score.predictions[8].actual == 0.0
    assert score.meta["token_predictions"]["0"] == [0, 0, 0, 0, 10, 0]  # "... on Monday morning"
    turns = [r.body["messages"][-1]["content"] for r in autointerp_llm_server.requests]
    monday = next(t for t in turns if "morning" in t)
    assert '\n5 " Monday"\n' in monday and monday.endswith("6 tokens.")


def test_an_inverted_simulator_correlates_minus_one(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = simulating(invert=True)
    score = score_with(build_scorer("simulation"), explanation, activating, negatives)
    assert score.value == pytest.approx(-1.0)


def test_a_failed_simulation_is_excluded_never_zeros(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    explanation,
    activating,
    negatives,
) -> None:
    # the failing example is an activating one: as zeros it would pull the correlation below 1
    autointerp_llm_server.responder = simulating(garbage_if="Monday morning")
    score = score_with(build_scorer("simulation", max_reasks=1), explanation, activating, negatives)
    assert score.n_failures == 1 and score.predictions[0].predicted is None
    assert score.value == pytest.approx(1.0)
    assert "0" not in score.meta["token_predictions"]
    assert score.metrics["exclusion_rate"] == pytest.approx(1 / 16)
    assert score.meta["reasks"] == 1 and len(score.meta["parse_failures"]) == 1


def test_when_every_simulation_fails_there_is_no_value(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.default_text = "Answer: [3, 4]"
    score = score_with(build_scorer("simulation", max_reasks=0), explanation, activating, negatives)
    assert score.value is None and score.n_failures == 16 and "correlation" not in score.metrics


def test_constant_predictions_give_no_correlation(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = lambda r: f"Answer: [{', '.join('0' * len(token_lines(r)))}]"
    score = score_with(build_scorer("simulation"), explanation, activating, negatives)
    assert score.value is None and score.n_failures == 0 and "undefined" in score.meta


class LevelLogprobs:
    """A backend answering weekday tokens P(10)=0.8, P(0)=0.2 and others P(0)=0.9, P(1)=0.1."""

    name = "levels"
    model = "levels"
    endpoint = "levels"
    config = EndpointConfig()
    pricing = Pricing()

    def check(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def complete(
        self, messages: Sequence[Message], params: SamplingParams, *, timeout: float
    ) -> ChatResponse:
        lines = [ln for ln in messages[-1].content.splitlines() if re.match(r"^\d+ \"", ln)]
        tokens = [TokenLogprob("Answer: [", -0.01)]
        words = []
        for line in lines:
            if WEEKDAY.match(json.loads(line.split(" ", 1)[1])):
                top = (("10", math.log(0.8)), ("0", math.log(0.2)))
            else:
                top = (("0", math.log(0.9)), ("1", math.log(0.1)))
            words.append(top[0][0])
            tokens += [TokenLogprob(top[0][0], top[0][1], top), TokenLogprob(", ", -0.01)]
        return ChatResponse(text=f"Answer: [{', '.join(words)}]", logprobs=tuple(tokens))


def test_logprobs_give_expected_values(
    score_with, build_scorer, explanation, activating, negatives
) -> None:
    client = LLMClient(LevelLogprobs(), scheduler=Scheduler())
    score = score_with(
        build_scorer("simulation"), explanation, activating[:1], negatives[:1], llm=client
    )
    # "I met her on Monday morning": 0.1 everywhere but 0.8 * 10 on " Monday"
    assert score.meta["token_predictions"]["0"] == pytest.approx([0.1, 0.1, 0.1, 0.1, 8.0, 0.1])
    assert score.predictions[0].predicted == pytest.approx(8.0)
    assert score.value == pytest.approx(1.0)


def test_parsing() -> None:
    assert parse_activations("Answer: [0, 3, 10]", 3) == [0, 3, 10]
    assert parse_activations("[1] ... Answer: [0,0,7.5]", 3) == [0, 0, 7.5]
    for bad in ("Answer: [0, 3]", "Answer: [0, 11, 2]", "zero", "Answer: [0, x, 1]"):
        with pytest.raises(ParseError):
            parse_activations(bad, 3)
    top = (("2", math.log(0.5)), ("4", math.log(0.25)), ("word", math.log(0.25)))
    assert expected_activations([TokenLogprob("2", math.log(0.5), top)], 1) == [
        pytest.approx((2 * 0.5 + 4 * 0.25) / 0.75)
    ]
    assert expected_activations([TokenLogprob("2", -0.1)], 2) is None
