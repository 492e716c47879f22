"""Fuzzing: correctly and incorrectly marked examples; a judge that checks the marks scores 1,
an inverted one 0; marking rules."""

from __future__ import annotations

import random
import re
from typing import Any

from autointerp_scorers.common import render
from autointerp_scorers.fuzzing import firing, random_marks

from autointerp.testing.llm_server import ScriptedLLMServer

WEEKDAY = re.compile(r"^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)$")


def judging(example_lines: Any, invert: bool = False) -> Any:
    """Answers 1 when every marked span is a weekday name."""

    def respond(request: Any) -> str:
        answers = []
        for line in example_lines(request):
            spans = re.findall(r"<<(.*?)>>", line)
            right = bool(spans) and all(WEEKDAY.match(s.strip()) for s in spans)
            answers.append(str(int(right ^ invert)))
        return f"Answer: [{', '.join(answers)}]"

    return respond


def test_a_judge_that_checks_the_marks_scores_one(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = judging(example_lines)
    score = score_with(build_scorer("fuzzing"), explanation, activating, negatives)
    assert score.value == 1.0 and score.metrics["auroc"] == 1.0 and score.n_failures == 0
    lines = [line for r in autointerp_llm_server.requests for line in example_lines(r)]
    assert len(lines) == 16 and all("<<" in line for line in lines)
    right = [p for p in score.predictions if p.actual == 1.0]
    wrong_activating = [p for p in score.predictions if p.example_id < 8 and p.actual == 0.0]
    assert right and wrong_activating  # both kinds of activating example were shown
    assert all(p.actual == 0.0 for p in score.predictions if p.example_id >= 8)


def test_an_inverted_judge_scores_zero(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = judging(example_lines, invert=True)
    score = score_with(build_scorer("fuzzing"), explanation, activating, negatives)
    assert score.value == 0.0 and score.metrics["accuracy"] == 0.0


def test_without_negatives_and_wrong_marks_only_activating_examples_are_shown(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = judging(example_lines)
    scorer = build_scorer("fuzzing", include_negatives=False, incorrect_fraction=0.0)
    score = score_with(scorer, explanation, activating, negatives)
    assert len(score.predictions) == 8 and all(p.actual == 1.0 for p in score.predictions)
    assert score.value == 1.0 and "auroc" not in score.metrics  # one class: AUROC undefined
    lines = [line for r in autointerp_llm_server.requests for line in example_lines(r)]
    assert "I met her on <<Monday>> morning" in lines


def test_the_same_seed_shows_the_same_marks(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
) -> None:
    autointerp_llm_server.responder = judging(example_lines)
    for seed in (1, 1, 2):
        score_with(build_scorer("fuzzing"), explanation, activating, negatives, seed=seed)
    texts = [
        sorted(
            line
            for r in autointerp_llm_server.requests[i * 4 : i * 4 + 4]
            for line in example_lines(r)
        )
        for i in range(3)
    ]
    assert texts[0] == texts[1] != texts[2]


def test_marking_rules() -> None:
    assert firing([0.0, 1.0, 10.0, 2.9, 3.0], 0.3) == [False, False, True, False, True]
    assert firing([0.0, 0.0], 0.3) == [False, False]
    marks = random_marks(6, 2, [True, False, False, True, False, False], random.Random(0))
    assert sum(marks) == 2 and not marks[0] and not marks[3]
    assert random_marks(2, 5, [True, False], random.Random(0)) == [False, True]


def test_marks_are_rendered_as_runs() -> None:
    assert render(["a", " b", " c", " d"], [False, True, True, False]) == "a <<b c>> d"
    assert render(["x\n", " y"], [True, False]) == "<<x\\n>> y"


def test_special_tokens_of_the_subject_model_never_reach_the_prompt() -> None:
    # a chat server parses <|im_end|> in a message as its own end-of-turn token
    tokens = ["end", "<|im_end|>", "The", " </s>", " <|endoftext|>"]
    assert render(tokens, [False, True, False, False, False]) == "end<<\\n>>The \\n \\n"


def test_the_prompt_version_names_the_template(build_scorer) -> None:
    assert build_scorer("fuzzing").prompt_version == "fuzzing.v1"
    assert build_scorer("fuzzing", structured=True).prompt_version == "fuzzing-json.v1"
    assert build_scorer("fuzzing", prompt="fuzzing-json.v1").prompt_version == "fuzzing-json.v1"
    assert build_scorer("detection").prompt_version == "detection.v1"


def test_random_marks_draw_as_the_set_based_version_did() -> None:
    """The same marks from the same seeded draws as the earlier set-and-scan implementation (so
    runs scored before keep their prompts and request hashes)."""

    def before(n: int, count: int, avoid: list[bool], rng: random.Random) -> list[bool]:
        free = [i for i in range(n) if not avoid[i]]
        chosen = set(rng.sample(free, min(count, len(free))))
        return [i in chosen for i in range(n)]

    pick = random.Random(3)
    for _ in range(500):
        n = pick.randrange(0, 40)
        avoid = [pick.random() < 0.3 for _ in range(n)] if pick.random() < 0.5 else [False] * n
        count, seed = pick.randrange(0, 45), pick.randrange(1000)
        a, b = random.Random(seed), random.Random(seed)
        assert random_marks(n, count, avoid, a) == before(n, count, avoid, b)
        assert a.random() == b.random()  # the generator moved on identically
