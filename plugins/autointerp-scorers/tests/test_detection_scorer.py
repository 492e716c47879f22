"""Detection through the OpenAI-compatible client and the scripted server: right answers score 1,
inverted ones 0, batches, re-asks, counted parse failures, AUROC from logprobs, exclusions."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import pytest
from autointerp_scorers.common import ScoringFailedError, parse_binary

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
from autointerp.testing.llm_server import ScriptedLLMServer, reject
from autointerp.types import Explanation

WEEKDAY = re.compile(r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")


def answering(example_lines: Any, invert: bool = False, garbage_if: str = "") -> Any:
    def respond(request: Any) -> str:
        lines = example_lines(request)
        if garbage_if and any(garbage_if in line for line in lines):
            return "I am not sure about these."
        answers = [int(bool(WEEKDAY.search(line))) ^ invert for line in lines]
        return f"Answer: [{', '.join(map(str, answers))}]"

    return respond


def test_right_answers_score_one_and_use_logprobs(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = answering(example_lines)
    score = score_with(build_scorer("detection"), explanation, activating, negatives)
    assert score.value == 1.0 and score.scorer == "detection" and score.n_failures == 0
    for name in ("accuracy", "precision", "recall", "f1", "auroc"):
        assert score.metrics[name] == 1.0, name
    assert score.metrics["exclusion_rate"] == 0.0
    assert [p.example_id for p in score.predictions] == list(range(16))
    assert all(p.predicted == p.actual for p in score.predictions)
    assert all(p.probability == p.actual for p in score.predictions)  # scripted logprobs: certain
    assert autointerp_llm_server.requests[0].body["logprobs"] is True


def test_inverted_answers_score_zero(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = answering(example_lines, invert=True)
    score = score_with(build_scorer("detection"), explanation, activating, negatives)
    assert score.value == 0.0 and score.metrics["auroc"] == 0.0 and score.metrics["recall"] == 0.0


def test_examples_are_batched_and_mixed_with_a_stable_prefix(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = answering(example_lines)
    score = score_with(build_scorer("detection", batch_size=6), explanation, activating, negatives)
    requests = autointerp_llm_server.requests
    assert len(requests) == 3 and score.meta["batches"] == 3  # 16 examples, 6 per prompt
    assert sorted(len(example_lines(r)) for r in requests) == [4, 6, 6]
    prefixes = [r.body["messages"][:-1] for r in requests]
    assert prefixes[0] == prefixes[1] == prefixes[2]
    turn = requests[0].body["messages"][-1]["content"]
    assert turn.startswith("Explanation: days of the week")
    mixed = [sum(bool(WEEKDAY.search(line)) for line in example_lines(r)) for r in requests]
    sizes = [len(example_lines(r)) for r in requests]
    assert any(0 < m < n for m, n in zip(mixed, sizes, strict=True))  # both kinds in a prompt


def test_parse_failures_are_counted_excluded_and_reported(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = answering(example_lines, garbage_if="violin")
    score = score_with(
        build_scorer("detection", batch_size=4, max_reasks=1), explanation, activating, negatives
    )
    failed = [p for p in score.predictions if p.predicted is None]
    assert len(failed) == 4 == score.n_failures  # the whole batch holding the violin example
    assert NEGATIVE_ID_VIOLIN in {p.example_id for p in failed}
    assert score.metrics["exclusion_rate"] == pytest.approx(4 / 16)
    assert score.metrics["n_scored"] == 12 and score.value == 1.0  # the rest is still right
    assert len(score.meta["parse_failures"]) == 1
    assert autointerp_llm_server.count() == 5  # 4 prompts + 1 re-ask of the failing one
    assert score.meta["reasks"] == 1


NEGATIVE_ID_VIOLIN = 8 + 2  # "she plays the violin well" is the third negative


def test_all_parse_failures_give_no_value(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.default_text = "no idea"
    score = score_with(build_scorer("detection", max_reasks=0), explanation, activating, negatives)
    assert score.value is None and score.n_failures == 16
    assert score.metrics["exclusion_rate"] == 1.0 and "accuracy" not in score.metrics
    # the unparseable answers were paid for: their calls and tokens are in the score's meta
    requests = autointerp_llm_server.count()
    assert score.meta["llm_requests"] == requests == len(score.meta["llm_calls"]) > 0
    assert score.meta["prompt_tokens"] > 0 and score.meta["reasks"] == 0
    assert score.meta["headline"] == "balanced_accuracy"  # as configured, nothing to fall back on


def test_a_reask_quotes_the_error_and_recovers(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    right = answering(example_lines)
    autointerp_llm_server.script("Answer: [1, 0]")
    autointerp_llm_server.responder = right
    score = score_with(build_scorer("detection", batch_size=16), explanation, activating, negatives)
    assert score.value == 1.0 and score.n_failures == 0 and score.meta["reasks"] == 1
    reask = autointerp_llm_server.requests[1].body["messages"][-1]["content"]
    assert "expected 16 answers, one per example, but got 2" in reask and "16 numbers" in reask


def test_an_unanswered_request_fails_the_latent_instead_of_scoring(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.script(reject(400))
    with pytest.raises(ScoringFailedError, match=r"detection on sae/resid_post\.1:3"):
        score_with(build_scorer("detection"), explanation, activating, negatives)


def test_examples_shown_to_the_explainer_are_skipped(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    activating,
    negatives,
    explanation,
) -> None:
    autointerp_llm_server.responder = answering(example_lines)
    shown = Explanation(
        explanation.latent,
        explanation.text,
        "contrastive",
        meta={"exclude_from_scoring": [activating[0].key, negatives[0].key]},
    )
    score = score_with(build_scorer("detection"), shown, activating, negatives)
    ids = {p.example_id for p in score.predictions}
    assert len(ids) == 14 and 0 not in ids and 8 not in ids
    assert score.metrics["n_skipped_shown"] == 2 and score.explainer == "contrastive"
    prompts = "\n".join(r.prompt_text for r in autointerp_llm_server.requests)
    assert "I met her on Monday morning" not in prompts


class KnownLogprobs:
    """A backend answering each example with a fixed P(1), as token logprobs."""

    name = "known"
    model = "known-logprobs"
    endpoint = "known"
    config = EndpointConfig()
    pricing = Pricing()

    def __init__(self, p_yes: dict[str, float]) -> None:
        self.p_yes = p_yes

    def check(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def complete(
        self, messages: Sequence[Message], params: SamplingParams, *, timeout: float
    ) -> ChatResponse:
        lines = [ln for ln in messages[-1].content.splitlines() if ln.startswith("Example ")]
        tokens = [TokenLogprob("Answer", -0.01), TokenLogprob(": [", -0.01)]
        answers = []
        for i, line in enumerate(lines):
            p = next(v for k, v in self.p_yes.items() if k in line)
            answer = "1" if p >= 0.5 else "0"
            answers.append(answer)
            top = (("1", math.log(p)), ("0", math.log(1 - p)))
            tokens.append(TokenLogprob(answer, math.log(max(p, 1 - p)), top))
            tokens.append(TokenLogprob(", " if i < len(lines) - 1 else "]", -0.01))
        return ChatResponse(text=f"Answer: [{', '.join(answers)}]", logprobs=tuple(tokens))


def test_auroc_from_known_logprobs_matches_a_hand_computation(
    score_with, build_scorer, explanation, activating, negatives
) -> None:
    pos = {"Monday morning": 0.9, "Friday at noon": 0.6, "Sunday then": 0.4}
    neg = {"cat sat": 0.7, "prices rose": 0.2, "violin": 0.1}
    client = LLMClient(KnownLogprobs(pos | neg), scheduler=Scheduler())
    score = score_with(
        build_scorer("detection", batch_size=2),
        explanation,
        activating[:3],
        negatives[:3],
        llm=client,
    )
    # 7 of 9 (positive, negative) pairs ordered right; hard answers: recall 2/3, specificity 2/3
    assert score.metrics["auroc"] == pytest.approx(7 / 9)
    assert score.value == pytest.approx(2 / 3)
    assert {p.example_id: round(p.probability, 6) for p in score.predictions} == {
        0: 0.9,
        1: 0.6,
        2: 0.4,
        3: 0.7,
        4: 0.2,
        5: 0.1,
    }


def test_the_headline_can_be_the_auroc_of_the_answer_probabilities(
    score_with, build_scorer, explanation, activating, negatives
) -> None:
    # every answer is 1 (balanced accuracy 0.5), but P(1) ranks the examples perfectly
    p_yes = {t: 0.9 for t in ("Monday morning", "Friday at noon", "Sunday then")}
    p_yes |= {t: 0.6 for t in ("cat sat", "prices rose", "violin")}
    client = LLMClient(KnownLogprobs(p_yes), scheduler=Scheduler())
    scorer = build_scorer("detection", batch_size=1, headline="auroc")
    score = score_with(scorer, explanation, activating[:3], negatives[:3], llm=client)
    assert score.metrics["balanced_accuracy"] == 0.5 and score.metrics["auroc"] == 1.0
    assert score.value == 1.0 and score.meta["headline"] == "auroc"


def test_an_auroc_headline_without_logprobs_falls_back_to_balanced_accuracy(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = answering(example_lines)
    scorer = build_scorer("detection", headline="auroc", logprobs=False)
    score = score_with(scorer, explanation, activating, negatives)
    assert "auroc" not in score.metrics and score.value == 1.0
    assert score.meta["headline"] == "balanced_accuracy"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: [1, 0, 1]", [1, 0, 1]),
        ('{"answers": [1,0,1]}', [1, 0, 1]),
        ("Sure.\n**Answer:** [yes, no, yes]", [1, 0, 1]),
        ("1 0 1", [1, 0, 1]),
        ("Answer: [0, 0] oops [1, 0, 1]", [1, 0, 1]),
    ],
)
def test_answers_are_parsed_tolerantly(text: str, expected: list[int]) -> None:
    assert parse_binary(text, 3) == expected


@pytest.mark.parametrize("text", ["", "Answer: [1, 0]", "Answer: [1, maybe, 0]", "no idea"])
def test_bad_answers_are_parse_errors(text: str) -> None:
    with pytest.raises(ParseError):
        parse_binary(text, 3)


def test_structured_output_asks_for_a_json_schema(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    def respond(request: Any) -> str:
        answers = [int(bool(WEEKDAY.search(line))) for line in example_lines(request)]
        return json.dumps({str(i): a for i, a in enumerate(answers, 1)})

    autointerp_llm_server.responder = respond
    scorer = build_scorer("detection", structured=True, batch_size=8)
    score = score_with(scorer, explanation, activating, negatives)
    assert score.value == 1.0 and score.metrics["auroc"] == 1.0
    schema = autointerp_llm_server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == [str(i) for i in range(1, 9)]
    assert schema["properties"]["8"] == {"type": "integer", "enum": [0, 1]}
    assert scorer.prompt_version == "detection-json.v1" == score.meta["prompt"]
