"""The v2 keyed-JSON prompts (no few-shot turn): small local models copied the v1 few-shot answer
into every economy answer (issue 21). v2 is opt-in by ``prompt``; v1 stays the default, so runs
begun with it resume with the same prompt and cache keys."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from autointerp.testing.llm_server import ScriptedLLMServer

WEEKDAY = re.compile(r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")
MARKED_WEEKDAY = re.compile(r"<<\s*(?:" + WEEKDAY.pattern + ")")


@pytest.mark.parametrize("name", ["detection", "fuzzing"])
def test_v2_is_zero_shot_keyed_json_and_scores(
    name: str,
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    def respond(request: Any) -> str:
        lines = example_lines(request)
        if name == "detection":
            answers = [int(bool(WEEKDAY.search(line))) for line in lines]
        else:  # right marks: the marked span is a weekday
            answers = [int(bool(MARKED_WEEKDAY.search(line))) for line in lines]
        return json.dumps({str(i): a for i, a in enumerate(answers, 1)})

    autointerp_llm_server.responder = respond
    scorer = build_scorer(name, structured=True, batch_size=0, prompt=f"{name}-json.v2")
    score = score_with(scorer, explanation, activating, negatives)
    (request,) = autointerp_llm_server.requests
    roles = [m["role"] for m in request.body["messages"]]
    assert roles == ["system", "user"]  # no few-shot answer to copy
    assert '"1":' not in request.body["messages"][0]["content"]  # nor an answer pattern
    n = len(example_lines(request))
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == [str(i) for i in range(1, n + 1)]
    assert score.value == 1.0 and score.n_failures == 0
    assert score.meta["prompt"] == f"{name}-json.v2" == scorer.prompt_version


@pytest.mark.parametrize("name", ["detection", "fuzzing"])
def test_v1_stays_the_default_structured_prompt(name: str, build_scorer) -> None:
    assert build_scorer(name, structured=True).prompt_version == f"{name}-json.v1"
