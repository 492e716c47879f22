"""Explainers through the OpenAI-compatible client and the scripted server: prompts, parsing,
re-asks, failures, contrastive exclusion, output side, best-of-k."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from autointerp_explainers.best_of_k import BestOfKExplainer
from autointerp_explainers.common import (
    ExplanationFailedError,
    cot_prompt_id,
    load_template,
    parse_explanation,
    parse_final_line,
)
from autointerp_explainers.default import DefaultExplainer
from autointerp_explainers.plugin import BestOfKConfig, ExplainerConfig
from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAICompatibleConfig

from autointerp.llm import LLMClient, ParseError, Scheduler
from autointerp.plugins import PluginManager
from autointerp.store import Store
from autointerp.testing.llm_server import ScriptedLLMServer, reply, server_error
from autointerp.types import Example, Explanation, LatentRef

LATENT = LatentRef("sae/resid_post.3", 7)


def ex(text: str, fire: str, value: float = 5.0) -> Example:
    """An example whose words equal to ``fire`` activate."""
    words = text.split(" ")
    toks = tuple(w if i == 0 else " " + w for i, w in enumerate(words))
    acts = tuple(value if w == fire else 0.0 for w in words)
    return Example(tokens=tuple(range(len(toks))), str_tokens=toks, activations=acts)


EXAMPLES = [
    ex("I met her on Monday morning", "Monday", 8.0),
    ex("the shop closes Friday at noon", "Friday", 6.0),
    ex("see you on Sunday then", "Sunday", 4.0),
]
NEGATIVES = [ex("the cat sat on the mat", "-"), ex("prices rose again this year", "-")]


def client_for(server: ScriptedLLMServer, store: Any = None, **options: Any) -> LLMClient:
    config = OpenAICompatibleConfig(
        base_url=server.openai_base_url, backoff_base_s=0.01, backoff_max_s=0.05, **options
    )
    return LLMClient(OpenAIClient(config), store=store, scheduler=Scheduler())


def explain(explainer: Any, server: ScriptedLLMServer, **kwargs: Any) -> Explanation:
    async def go() -> Explanation:
        client = client_for(server, kwargs.pop("store", None), **kwargs.pop("client", {}))
        try:
            return await explainer.explain(
                LATENT, kwargs.pop("examples", EXAMPLES), client, **kwargs
            )
        finally:
            await client.aclose()

    return asyncio.run(go())


def build(name: str, **options: Any) -> Any:
    return PluginManager().build("explainer", name, options)


def test_the_default_explainer_marks_firing_tokens_and_parses_the_answer(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    autointerp_llm_server.script(reply("Explanation: days of the week."))
    explanation = explain(build("default"), autointerp_llm_server)
    assert explanation.text == "days of the week"
    assert explanation.explainer == "default" and explanation.latent == LATENT
    assert explanation.meta["prompt"] == "default.v1" and explanation.meta["reasks"] == 0
    turn = autointerp_llm_server.requests[0].body["messages"][-1]["content"]
    assert "Example 1: I met her on <<Monday>> morning" in turn
    assert turn.endswith("Marked tokens: Monday, Friday, Sunday")


def test_special_tokens_of_the_subject_model_never_reach_the_prompt(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    # a chat server parses <|im_end|> inside a message as its own end-of-turn token
    boundary = Example((1, 2, 3), ("the end", "<|im_end|>", "Monday"), (0.0, 0.0, 5.0))
    explain(build("default"), autointerp_llm_server, examples=[boundary])
    turn = autointerp_llm_server.requests[0].body["messages"][-1]["content"]
    assert "<|im_end|>" not in turn and "Example 1: the end\\n<<Monday>>" in turn


def test_parity_shows_forty_examples_in_one_prompt_and_names_its_prompt_version(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    many = [ex(f"day {i} was a Monday again", "Monday", 1.0 + i) for i in range(45)]
    explainer = build("default")
    assert explainer.prompt_version == "default.v1"
    assert build("contrastive").prompt_version == "contrastive.v1"
    explain(explainer, autointerp_llm_server, examples=many)
    assert autointerp_llm_server.count() == 1
    turn = autointerp_llm_server.requests[0].body["messages"][-1]["content"]
    assert "Example 40:" in turn and "Example 41:" not in turn
    assert "day 44 was" in turn and "day 4 was" not in turn  # the strongest 40


def test_activation_values_can_be_shown(autointerp_llm_server: ScriptedLLMServer) -> None:
    explain(build("default", show_activations=True), autointerp_llm_server)
    turn = autointerp_llm_server.requests[0].body["messages"][-1]["content"]
    assert "Monday (10), Friday (8), Sunday (5)" in turn


def test_the_stable_prefix_is_byte_identical_between_latents(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    explainer = build("default")
    explain(explainer, autointerp_llm_server)
    explain(explainer, autointerp_llm_server, examples=[ex("a b c", "b")])
    first, second = (r.body["messages"] for r in autointerp_llm_server.requests)
    assert first[:-1] == second[:-1] and first[-1] != second[-1]
    assert first[0]["role"] == "system" and len(first) == 6  # system, 2 few-shot pairs, turn
    prefix = load_template("default.v1").prefix()
    assert prefix[-1].cache and not any(m.cache for m in prefix[:-1])


@pytest.mark.parametrize(
    ("reply_text", "expected"),
    [
        ("Explanation: days of the week", "days of the week"),
        ("Sure! Here it is.\n\n**Explanation:** `weekday names`", "weekday names"),
        ('explanation - "Weekdays".', "Weekdays"),
        ("weekday names", "weekday names"),
        ("Explanation: tokens inside {braces}", "tokens inside {braces}"),
        ("Explanation: <|endoftext|> separators", "<|endoftext|> separators"),
    ],
)
def test_parsing_is_tolerant(reply_text: str, expected: str) -> None:
    assert parse_explanation(reply_text) == expected


@pytest.mark.parametrize(
    "reply_text",
    [
        "",
        "Explanation:",
        "I'm sorry, I cannot determine a pattern.",
        "The tokens are all related to time.\nThey appear in sentences about plans.",
        "Explanation: " + "word " * 30,
        "}{ not what you asked for",
        "I am not sure what you mean.",
        "Answer: maybe",
        "Not sure what you mean",
        '{"explanation": null}',
        "Explanation: }{",
        "Explanation: 12 34 !!",
        "[1, 0, 1]",
    ],
)
def test_unusable_answers_are_parse_errors(reply_text: str) -> None:
    with pytest.raises(ParseError):
        parse_explanation(reply_text)


def test_a_malformed_answer_is_re_asked_quoting_the_error(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    server = autointerp_llm_server
    server.script(reply("These are\nmany lines of rambling"), reply("Explanation: weekdays"))
    explanation = explain(build("default"), server)
    assert explanation.text == "weekdays" and explanation.meta["reasks"] == 1
    reask = server.requests[1].body["messages"]
    assert reask[-2] == {"role": "assistant", "content": "These are\nmany lines of rambling"}
    assert 'no line starting with "Explanation:"' in reask[-1]["content"]


def test_a_latent_without_an_obtainable_explanation_fails_with_its_reason(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    autointerp_llm_server.script(*["I cannot tell."] * 3)
    with pytest.raises(ExplanationFailedError, match="could not parse the answer after 3") as info:
        explain(build("default", max_reasks=2), autointerp_llm_server)
    assert info.value.latent == LATENT and "does not describe a pattern" in info.value.reason
    import pickle

    again = pickle.loads(pickle.dumps(info.value))
    assert again.latent == LATENT and again.reason == info.value.reason


def test_a_transport_failure_is_an_explanation_failure_too(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    autointerp_llm_server.script(server_error(), reply("Explanation: weekdays"))
    assert explain(build("default"), autointerp_llm_server).text == "weekdays"
    with pytest.raises(ExplanationFailedError, match="no activating examples"):
        explain(build("default"), autointerp_llm_server, examples=[ex("a b", "-")])


def test_a_rerun_explains_from_the_cache(
    autointerp_llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    priced = {"price_prompt_per_mtok": 1.0, "price_completion_per_mtok": 2.0}
    with Store.open(tmp_path) as store:
        first = explain(build("default"), autointerp_llm_server, store=store, client=priced)
        again = explain(build("default"), autointerp_llm_server, store=store, client=priced)
        assert store.usage().calls == 1 and store.usage().cache_hits == 1  # the ledger knows
    assert first.text == again.text and autointerp_llm_server.count() == 1
    # the result is the same either way: its meta says what its answers cost, not who paid
    assert again.meta == first.meta and first.meta["cost_usd"] > 0


def test_the_contrastive_explainer_shows_negatives_and_excludes_them_from_scoring(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    explainer = build("contrastive")
    assert explainer.needs == {"negatives"}
    explanation = explain(explainer, autointerp_llm_server, negatives=NEGATIVES)
    turn = autointerp_llm_server.requests[0].body["messages"][-1]["content"]
    assert "Does not fire on:\nExample 4: the cat sat on the mat" in turn
    assert "<<" not in turn.split("Does not fire on:")[1]
    assert explanation.meta["exclude_from_scoring"] == [e.key for e in NEGATIVES]
    with pytest.raises(ExplanationFailedError, match="needs non-activating examples"):
        explain(explainer, autointerp_llm_server)


def test_the_output_side_explainer_uses_promoted_tokens(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    explainer = build("output_side", context_examples=1)
    promoted = [(" Monday", 3.2), (" Tuesday", 3.0), ("\n", 2.0)]
    explain(explainer, autointerp_llm_server, promoted=promoted)
    turn = autointerp_llm_server.requests[0].body["messages"][-1]["content"]
    assert turn.startswith("Promoted next tokens: Monday, Tuesday\n")
    assert "Example 1: I met her on <<Monday>> morning" in turn and "Example 2" not in turn
    with pytest.raises(ExplanationFailedError, match="promoted tokens"):
        explain(explainer, autointerp_llm_server)


def test_best_of_k_samples_k_distinct_requests_and_keeps_the_majority(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    server = autointerp_llm_server
    server.script("Explanation: weekdays", "Explanation: time", "Explanation: Weekdays")
    explainer = BestOfKExplainer(BestOfKConfig(k=3), base=DefaultExplainer(ExplainerConfig()))
    explanation = explain(explainer, server)
    assert explanation.text.lower() == "weekdays" and explanation.meta["selection"] == "majority"
    seeds = sorted(r.body["seed"] for r in server.requests)
    assert seeds == [0, 1, 2] and all(r.body["temperature"] == 0.7 for r in server.requests)


def test_best_of_k_keeps_the_candidate_the_judge_scores_highest(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    server = autointerp_llm_server
    server.responder = lambda r: ["Explanation: weekdays", "Explanation: day names"][
        r.body["seed"] % 2
    ]
    explainer = build("best_of_k", k=4, scorer="detection")
    judged: list[list[str]] = []

    async def judge(
        latent: LatentRef, candidates: Sequence[Explanation], examples: Any
    ) -> list[float]:
        judged.append([c.text for c in candidates])
        return [1.0 if c.text == "day names" else 0.0 for c in candidates]

    explainer.set_judge(judge)
    explanation = explain(explainer, server)
    assert explanation.text == "day names" and explanation.meta["selection"] == "scorer:detection"
    assert sorted(judged[0]) == ["day names", "weekdays"]  # duplicates judged once
    assert explanation.explainer == "best_of_k" and server.count() == 4


def test_explainers_are_registered_with_their_configs() -> None:
    manager = PluginManager()
    assert {"default", "contrastive", "output_side", "best_of_k"} <= set(manager.names("explainer"))
    from autointerp.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'max_examples'"):
        manager.get("explainer", "default").validate({"max_example": 3})


# -- chain of thought ------------------------------------------------------------------------------

REASONED = """The marked tokens are Monday, Friday and Sunday.
Each is the name of a day; the contexts are about plans and times.
Explanation: days of the week."""


def test_chain_of_thought_asks_for_reasoning_and_keeps_only_the_final_line(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    server = autointerp_llm_server
    server.script(reply(REASONED))
    explainer = build("default", chain_of_thought=True)
    explanation = explain(explainer, server)
    assert explanation.text == "days of the week"
    assert explanation.meta["prompt"] == explainer.prompt_version == "default_cot.v1"
    assert build("default").prompt_version == "default.v1"  # another version: another cache key
    body = server.requests[0].body
    assert "reason step by step" in body["messages"][0]["content"]
    assert body["max_tokens"] == 512  # room to reason, unless set
    assert build("default", chain_of_thought=True, max_tokens=200).config.max_tokens == 200
    assert build("default").config.max_tokens == 48
    few_shot = body["messages"][2]["content"]  # the worked examples reason, then answer
    assert len(few_shot.splitlines()) > 1 and few_shot.splitlines()[-1].startswith("Explanation:")


@pytest.mark.parametrize("name", ["default", "contrastive", "output_side"])
def test_every_prompt_based_explainer_has_a_reasoning_variant(name: str) -> None:
    explainer = build(name, chain_of_thought=True)
    assert explainer.template.id == f"{name}_cot.v1"
    plain = build(name).template
    assert explainer.template.turn.template == plain.turn.template  # the same inputs


def test_cot_prompt_ids() -> None:
    assert cot_prompt_id("default.v1") == "default_cot.v1"
    assert cot_prompt_id("default_cot.v1") == "default_cot.v1"
    assert cot_prompt_id("mine") == "mine_cot"
    with pytest.raises(Exception, match=r"no prompt template 'nothing_cot\.v1'"):
        build("default", chain_of_thought=True, prompt="nothing.v1")


@pytest.mark.parametrize(
    ("reply_text", "expected"),
    [
        (REASONED, "days of the week"),
        ("Thinking about it.\n**Explanation:** `weekday names`", "weekday names"),
        ("Explanation: maybe times\nNo: they are days.\nExplanation: day names", "day names"),
        ("They all name days.\nExplanation:\nday names", "day names"),  # marker on its own line
        ("They all name days.\n\nweekday names\n\n", "weekday names"),  # no marker: last line
        ("weekday names", "weekday names"),
    ],
)
def test_the_final_line_is_the_explanation(reply_text: str, expected: str) -> None:
    assert parse_final_line(reply_text) == expected


@pytest.mark.parametrize(
    "reply_text",
    [
        "",
        "   \n\n ",
        "Some reasoning.\nExplanation:",
        "Some reasoning.\nI'm not sure what the pattern is.",
        "Some reasoning.\n" + "word " * 30,
        "Some reasoning.\n[1, 0, 1]",
    ],
)
def test_a_reasoned_reply_without_a_usable_final_line_is_a_parse_error(reply_text: str) -> None:
    with pytest.raises(ParseError):
        parse_final_line(reply_text)


def test_an_empty_reasoned_reply_fails_the_latent_with_a_clear_reason(
    autointerp_llm_server: ScriptedLLMServer,
) -> None:
    server = autointerp_llm_server
    server.script(reply(""), reply(""), reply("  \n"))
    with pytest.raises(ExplanationFailedError, match="the reply was empty") as info:
        explain(build("default", chain_of_thought=True, max_reasks=2), server)
    assert info.value.latent == LATENT and server.count() == 3
    reask = server.requests[1].body["messages"][-1]["content"]
    assert "the reply was empty" in reask and "final line" in reask


def test_a_run_with_chain_of_thought_stores_only_the_final_line(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    """Inside `autointerp run`: the explainer reasons, the store keeps the final line as the
    explanation, provenance names the reasoning prompt, and scorers get that line; a latent the
    LLM answers with nothing is a recorded explainer failure."""
    from autointerp.testing.adapters import save_tiny, tiny_model
    from autointerp.testing.runs import scripted_answers, write_run_config

    answers = scripted_answers()
    silent_on: list[str] = []  # the first latent's prompt: answered with nothing, every time

    def respond(request: Any) -> str:
        messages = request.body["messages"]
        if "reason step by step" not in messages[0]["content"]:
            return answers(request)
        turn = next(m["content"] for m in messages[::-1] if "Marked tokens" in m["content"])
        silent_on[:] = silent_on or [turn]
        if turn == silent_on[0]:
            return ""
        return "Marked are keywords of code.\nThey recur in every excerpt.\nExplanation: code words"

    server = autointerp_llm_server
    server.responder = respond
    save_tiny(tiny_model("gpt2"), tmp_path / "model")
    path = write_run_config(
        tmp_path / "run.toml", base_url=server.openai_base_url, model=tmp_path / "model",
        n_latents=3, concurrency=1,
    )  # fmt: skip
    cot = ("--set", "explainer.chain_of_thought=true", "--set", "max_failure_rate=0.5")
    result = autointerp_cli("run", str(path), "--no-report", *cot)
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        explanations = store.explanations(run.id)
        scores = store.scores(run.id)
        failures = store.failures(run.id, "explain")
    assert len(explanations) == 2 and {e.text for e in explanations} == {"code words"}
    assert all(e.provenance["prompt_version"] == "default_cot.v1" for e in explanations)
    assert len(scores) == 2 and all(s.value is not None for s in scores)
    ((_, component), reason), *others = failures.items()
    assert not others and component == "default" and "the reply was empty" in reason
    scored_prompts = [r for r in server.requests if "reason step by step" not in r.prompt_text]
    assert scored_prompts and all(
        "Marked are keywords" not in r.prompt_text for r in scored_prompts
    )
