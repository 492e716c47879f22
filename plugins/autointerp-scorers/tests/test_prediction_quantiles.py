"""Every per-example prediction carries its example's activation quantile (None for negatives),
so accuracy per quantile can be computed from scores alone; the store keeps it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from autointerp.store import Store
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.types import Example

WEEKDAY = re.compile(r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")


def with_quantiles(activating: list[Example], negatives: list[Example]) -> list[Example]:
    """Test examples labelled with quantiles 0..3 (as the example builder labels them), and
    negatives labelled as random non-activating windows."""
    test = [dataclasses.replace(e, kind=f"quantile:{i % 4}") for i, e in enumerate(activating)]
    return test + [dataclasses.replace(e, kind="random") for e in negatives]


def answer_all(example_lines: Any) -> Any:
    def respond(request: Any) -> str:
        lines = example_lines(request)
        if lines:
            answers = [str(int(bool(WEEKDAY.search(line)))) for line in lines]
            return f"Answer: [{', '.join(answers)}]"
        n = len(re.findall(r"^\d+ \"", request.messages[-1]["content"], flags=re.MULTILINE))
        return "Answer: [" + ", ".join(["3"] * n) + "]"  # simulation: one value per token

    return respond


@pytest.mark.parametrize("scorer", ["detection", "fuzzing", "simulation"])
def test_predictions_carry_the_quantile_of_their_example(
    autointerp_llm_server: ScriptedLLMServer,
    score_with,
    build_scorer,
    example_lines,
    explanation,
    activating,
    negatives,
    tmp_path: Path,
    scorer: str,
) -> None:
    autointerp_llm_server.responder = answer_all(example_lines)
    examples = with_quantiles(activating, negatives)
    test, negs = examples[: len(activating)], examples[len(activating) :]
    score = score_with(build_scorer(scorer), explanation, test, negs)
    assert len(score.predictions) == len(examples)
    for p in score.predictions:
        assert p.quantile == examples[p.example_id].quantile, (scorer, p)
    assert {p.quantile for p in score.predictions} == {0, 1, 2, 3, None}
    assert all(p.quantile is None for p in score.predictions if p.example_id >= len(test))

    with Store.open(tmp_path) as store:  # kept by the results store, read back as they were
        run = store.start_run("r", {})
        store.put_score(run, score)
        (back,) = store.scores(run)
    assert [p.quantile for p in back.predictions] == [p.quantile for p in score.predictions]
