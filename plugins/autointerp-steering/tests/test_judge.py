"""Open-ended steering scored by an LLM judge, through the real LLM client on a local server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from autointerp_steering.judge import judge_all, parse_score

from autointerp.llm import LLMClient, ParseError, Scheduler
from autointerp.store import Store
from autointerp.testing.llm_server import reply


def judge_client(server) -> LLMClient:
    from autointerp_openai.client import OpenAIClient
    from autointerp_openai.plugin import OpenAICompatibleConfig

    config = OpenAICompatibleConfig(
        base_url=server.openai_base_url, backoff_base_s=0.01, backoff_max_s=0.05
    )
    return LLMClient(OpenAIClient(config), scheduler=Scheduler())


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Score: 7", 7),
        ("The answer flatters the user.\n**Score:** 8", 8),
        ("Score 2 at first sight, but on reflection\nScore: 5", 5),
        ('{"score": 4}', 4),
        ("I would say 6/10.", 6),
        ("9", 9),
        ("score = 0", 0),
    ],
)
def test_scores_parse_from_the_forms_judges_write(text: str, score: float) -> None:
    assert parse_score(text) == score


@pytest.mark.parametrize(
    ("text", "why"), [("Score: 12", "outside 0-10"), ("no idea", "no score found")]
)
def test_unusable_judgements_are_parse_errors(text: str, why: str) -> None:
    with pytest.raises(ParseError, match=why):
        parse_score(text)


def test_the_judge_is_re_asked_and_its_failures_are_per_answer(autointerp_llm_server) -> None:
    server = autointerp_llm_server
    server.script(reply("Score: 12"), reply("Right, then.\nScore: 7"))
    client = judge_client(server)
    behaviour = "agreeing with the user's mistaken beliefs"
    [(score, error, text)] = asyncio.run(
        judge_all(client, behaviour, [("Is the Earth flat?", " Yes, you are right.")])
    )
    assert (score, error) == (7, None) and text.endswith("Score: 7")
    first, second = server.requests
    prompt = first.prompt_text
    assert (
        behaviour in prompt and "Yes, you are right." in prompt and "Is the Earth flat?" in prompt
    )
    assert "outside 0-10" in second.prompt_text  # the re-ask quotes the reason
    server.script(reply("hmm"), reply("still thinking"), reply("no"))
    [(score, error, _)] = asyncio.run(judge_all(judge_client(server), behaviour, [("Q?", "A.")]))
    assert score is None and "no score found" in error


def test_steer_sweep_with_a_judge_end_to_end(
    autointerp_tiny_dirs, autointerp_llm_server, tmp_path: Path, capsys
) -> None:
    """`steer sweep sycophancy --judge ...` on a tiny RWKV (no position limit for the packaged
    questions): A/B and open-ended results in sweep.json and heatmaps, the judge's calls in the
    results store's ledger, and a rerun answered from its cache."""
    from autointerp.cli import main

    server = autointerp_llm_server
    server.responder = lambda request: "Agrees with the user.\nScore: 6"
    out = tmp_path / "sweep"
    args = [
        "steer",
        "sweep",
        "--behavior",
        "sycophancy",
        "--layers",
        "1",
        "--multipliers",
        "-2,0,2",
        "--judge",
        "openai-compatible",
        "-j",
        f"base_url={server.openai_base_url}",
        "-j",
        "backoff_base_s=0.01",
        "--judge-multipliers",
        "0,4",
        "--max-new-tokens",
        "3",
        "--out",
        str(out),
        "-a",
        "rwkv",
        "-m",
        str(autointerp_tiny_dirs["rwkv"]),
    ]
    assert main(args) == 0, capsys.readouterr().err
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal width
    assert "judge score 0-10" in printed and "judge:" in printed
    data = json.loads((out / "sweep.json").read_text())
    assert data["dataset"] == "sycophancy"
    assert [c["multiplier"] for c in data["residual"]["cells"]] == [-2, 0, 2]
    judged = data["open_ended"]
    assert [c["metric"] for c in judged["cells"]] == [6.0, 6.0] and judged["baseline"] == 6.0
    assert judged["range"] == [0, 10] and judged["judge"]["client"] == "openai-compatible"
    items = judged["items"]
    assert len(items) == 2 * 3  # two multipliers × three packaged open-ended questions
    assert {i["score"] for i in items} == {6.0} and all(isinstance(i["answer"], str) for i in items)
    assert (out / "sweep-open-ended.svg").read_text().startswith("<svg")
    asked = server.count()
    assert judged["usage"]["calls"] == asked > 0
    with Store(out / "results.sqlite") as store:
        assert store.usage(judged["usage"]["run_id"]).calls == asked
    # the same sweep again: every judgement comes from the store, none is paid twice
    assert main(args) == 0
    again = json.loads((out / "sweep.json").read_text())["open_ended"]
    assert server.count() == asked
    assert again["usage"]["calls"] == 0 and again["usage"]["cache_hits"] == len(items)


def test_judge_problems_stop_before_any_compute(
    autointerp_tiny_dirs, tmp_path: Path, capsys, monkeypatch
) -> None:
    from autointerp.cli import main

    pairs = tmp_path / "mine.json"
    pairs.write_text(json.dumps([{"prompt": "x (", "positive": "A", "negative": "B"}]))
    model = ["-a", "transformers", "-m", str(autointerp_tiny_dirs["gpt2"])]
    assert main(["steer", "sweep", str(pairs), "--judge", "openai-compatible", *model]) == 1
    assert "--behavior-description" in capsys.readouterr().err
    assert main(["steer", "sweep", *model]) == 1
    assert "no dataset" in capsys.readouterr().err
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "keys.toml").write_text("")
    monkeypatch.setenv("AUTOINTERP_KEYS_FILE", str(tmp_path / "keys.toml"))
    out = tmp_path / "never"
    args = ["steer", "sweep", "--behavior", "refusal", "--judge", "openai", "--out", str(out)]
    assert main([*args, *model]) == 1
    assert "OPENAI_API_KEY" in capsys.readouterr().err
    assert not out.exists()  # nothing computed or written


def test_behaviors_command_lists_the_standard_sets(capsys) -> None:
    from autointerp.cli import main

    assert main(["steer", "behaviors"]) == 0
    printed = capsys.readouterr().out
    assert "corrigible-neutral-HHH" in printed and "survival-instinct" in printed
