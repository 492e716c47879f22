"""Economy mode: a preset that only fills what the user left unset; every example of a latent in
one prompt answered as a JSON object; explain + detection + fuzzing in at most 5 LLM calls per
latent, counted by the scripted server; parse failures counted and excluded, never zeros."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from autointerp.config import load_config
from autointerp.pipeline import plan_run
from autointerp.plugins import PluginManager
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.types import Example, LatentRef

WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
WEEKDAY = re.compile(r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")
SPAN = re.compile(r"<<(.*?)>>")
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OTHER = ["cat", "river", "violin", "storm", "recipe", "fence", "phone", "garden"]


Sets = tuple[list[Example], list[Example], list[Example]]


def examples(make_example: Any, n_latents: int) -> dict[LatentRef, Sets]:
    """Per latent: train, test (activating on weekday names) and negatives, all distinct."""
    out = {}
    for k in range(n_latents):

        def sentence(i: int, word: str, k: int = k) -> str:
            return f"latent {k} line {i} we saw the {word} at noon"

        train = [make_example(sentence(i, DAYS[i % 7]), WEEKDAYS) for i in range(10)]
        test = [make_example(sentence(100 + i, DAYS[i % 7]), WEEKDAYS) for i in range(12)]
        negatives = [make_example(sentence(200 + i, OTHER[i % 8])) for i in range(12)]
        out[LatentRef("neurons/mlp_neurons.6", k)] = (train, test, negatives)
    return out


def lines(request: Any) -> list[str]:
    content = request.messages[-1]["content"]
    return [ln.split(": ", 1)[1] for ln in content.splitlines() if ln.startswith("Example ")]


def oracle(invert: bool = False) -> Any:
    """A judge that knows the truth: an explanation, then keyed JSON answers for detection
    (a weekday anywhere) and fuzzing (every marked span is a weekday)."""

    def respond(request: Any) -> str:
        system = request.messages[0]["content"]
        if "explain what a neuron" in system:
            return "Explanation: days of the week"
        answers = {}
        for i, line in enumerate(lines(request), 1):
            if "marked" in system:
                spans = SPAN.findall(line)
                right = bool(spans) and all(s.strip() in WEEKDAYS for s in spans)
            else:
                right = bool(WEEKDAY.search(line))
            answers[str(i)] = int(right ^ invert)
        return json.dumps(answers)

    return respond


def economy_components() -> tuple[Any, Any, Any]:
    manager = PluginManager()
    built = []
    for kind, name in (("explainer", "default"), ("scorer", "detection"), ("scorer", "fuzzing")):
        component = manager.get(kind, name)
        built.append(component.build(component.validate({}, mode="economy")))
    return built[0], built[1], built[2]


@pytest.fixture
def run_latents(autointerp_llm_server: ScriptedLLMServer, make_client, example_maker) -> Any:
    """``run_latents(n)``: explain and score ``n`` latents in economy mode; per latent the two
    scores and the LLM requests the server counted."""

    def run(n_latents: int) -> dict[LatentRef, tuple[list[Any], int]]:
        explainer, detection, fuzzing = economy_components()

        async def go() -> dict[LatentRef, tuple[list[Any], int]]:
            client = make_client()
            out = {}
            try:
                for ref, (train, test, negs) in examples(example_maker, n_latents).items():
                    before = autointerp_llm_server.count()
                    explanation = await explainer.explain(ref, train, client)
                    scores = [
                        await s.score(explanation, test, negs, client) for s in (detection, fuzzing)
                    ]
                    out[ref] = (scores, autointerp_llm_server.count() - before)
            finally:
                await client.aclose()
            return out

        return asyncio.run(go())

    return run


def test_the_preset_fills_only_what_the_user_did_not_set(tmp_path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[[scorers]]\nname = "detection"\n\n[[scorers]]\nname = "fuzzing"\n')
    overrides = ["mode=economy", "scorers.1.batch_size=7"]
    plan = plan_run(load_config(config, overrides), PluginManager())
    detection, fuzzing = plan.step("scorers[0]").options, plan.step("scorers[1]").options
    assert (detection.batch_size, detection.structured, detection.max_reasks) == (0, True, 0)
    assert (fuzzing.batch_size, fuzzing.structured) == (7, True)  # the user's 7 wins
    parity = plan_run(load_config(config), PluginManager()).step("scorers[0]").options
    assert (parity.batch_size, parity.structured, parity.max_reasks) == (5, False, 1)
    assert load_config(overrides=["mode=economy"]).as_table()["mode"] == "economy"
    assert "mode" not in load_config(config).as_table()  # parity runs keep their stored config


def test_parity_defaults_are_the_peer_tools_and_the_quickstart_stays_small(tmp_path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('name = "mine"\n', encoding="utf-8")
    lat = load_config(config).latents
    assert (lat.window, lat.n_train, lat.n_test, lat.n_negatives) == (32, 40, 50, 50)
    quick = load_config()
    lat = quick.latents
    assert (lat.n_train, lat.n_test, lat.n_negatives) == (10, 5, 5)
    assert quick.mode == "small-llm" and load_config(config).mode == "parity"
    small = plan_run(quick, PluginManager()).step("scorers[1]").options
    assert (small.batch_size, small.headline) == (1, "auroc")
    economy = plan_run(load_config(overrides=["mode=economy"]), PluginManager())
    assert economy.step("scorers[1]").options.batch_size == 0  # the quickstart in economy mode
    scorer = PluginManager().build("scorer", "detection", {})
    assert (scorer.config.batch_size, scorer.config.example_width) == (5, 32)
    explainer = PluginManager().build("explainer", "default", {})
    assert explainer.config.max_examples == 40


def test_economy_explains_and_scores_a_latent_in_three_calls(
    autointerp_llm_server: ScriptedLLMServer, run_latents
) -> None:
    autointerp_llm_server.responder = oracle()
    results = run_latents(3)
    for (detection, fuzzing), calls in results.values():
        assert calls == 3 <= 5  # one explanation, one prompt per scorer
        assert detection.value == 1.0 and fuzzing.value == 1.0
        assert detection.metrics["auroc"] == 1.0  # logprobs of keyed answers are found
        assert detection.meta["batches"] == 1 and len(detection.predictions) == 24
        assert fuzzing.meta["prompt"] == "fuzzing-json.v1"
    request = autointerp_llm_server.requests[1]
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == [str(i) for i in range(1, 25)]
    assert len(lines(request)) == 24  # all test examples and negatives in one prompt


def test_inverted_answers_score_zero_in_economy_mode(
    autointerp_llm_server: ScriptedLLMServer, run_latents
) -> None:
    autointerp_llm_server.responder = oracle(invert=True)
    (((detection, fuzzing), _),) = run_latents(1).values()
    assert detection.value == 0.0 and fuzzing.value == 0.0


def test_unparseable_answers_stay_within_five_calls_and_are_excluded(
    autointerp_llm_server: ScriptedLLMServer, run_latents
) -> None:
    # the explainer needs all its re-asks; both scorers answer nonsense
    autointerp_llm_server.script("I cannot tell", "I'm sorry, there is no clear pattern")
    autointerp_llm_server.responder = lambda r: (
        "Explanation: days of the week" if "explain what" in r.messages[0]["content"] else "no idea"
    )
    (((detection, fuzzing), calls),) = run_latents(1).values()
    assert calls == 5
    for score in (detection, fuzzing):
        assert score.value is None and score.n_failures == 24
        assert score.metrics["exclusion_rate"] == 1.0 and "accuracy" not in score.metrics
        assert all(p.predicted is None for p in score.predictions)


def test_examples_left_out_of_a_keyed_answer_are_failures_not_zeros(
    autointerp_llm_server: ScriptedLLMServer, run_latents
) -> None:
    right = oracle()

    def partial(request: Any) -> str:
        text = right(request)
        if text.startswith("{") and "marked" not in request.messages[0]["content"]:
            answers = json.loads(text)
            for key in ("3", "4"):
                del answers[key]
            return json.dumps(answers)
        return text

    autointerp_llm_server.responder = partial
    (((detection, fuzzing), _),) = run_latents(1).values()
    assert detection.n_failures == 2 and detection.metrics["exclusion_rate"] == pytest.approx(
        2 / 24
    )
    assert detection.value == 1.0 and detection.metrics["n_scored"] == 22
    assert "no answer for example(s) 3, 4 of 24" in detection.meta["parse_failures"]
    assert fuzzing.n_failures == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"1": 1, "2": 0, "3": 1}', (1, 0, 1)),
        ('```json\n{"1": "yes", "2": "no", "3": "1"}\n```', (1, 0, 1)),
        ("Example 1: 1\nExample 2: 0\nExample 3: 1", (1, 0, 1)),
        ("1 - yes, 3 - no", (1, None, 0)),
        ('{"1": 1, "2": 0, "3": 1, "9": 0}', (1, 0, 1)),  # a number out of range is ignored
    ],
)
def test_keyed_answers_are_parsed_from_json_or_text(text: str, expected: tuple) -> None:
    from autointerp_scorers.common import parse_keyed

    assert parse_keyed(text, 3).values == expected


@pytest.mark.parametrize("text", ["", "no idea", '{"1": 1, "1": 0}'])
def test_bad_keyed_answers_are_parse_errors(text: str) -> None:
    from autointerp_scorers.common import parse_keyed

    from autointerp.llm import ParseError

    with pytest.raises(ParseError):
        parse_keyed(text, 3)
