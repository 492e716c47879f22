"""The component contracts inside `autointerp run`: what is refused while planning (before any
model loads), and what a misbehaving component costs (one latent, never the run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autointerp import hookimpl
from autointerp.components import NEED_DOCS, Need
from autointerp.config import EmptyConfig
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config
from autointerp.types import Score

respond = scripted_answers()


def config(tmp_path: Path, server: ScriptedLLMServer, **kw: Any) -> Path:
    model = tmp_path / "model"
    if not model.exists():
        save_tiny(tiny_model("gpt2"), model)
    return write_run_config(
        tmp_path / "run.toml", base_url=server.openai_base_url, model=model, concurrency=2, **kw
    )


class WrongType:
    needs = frozenset({"llm"})

    def __init__(self, config: Any) -> None:
        pass

    async def score(self, explanation, examples, negatives, llm, **_: Any):
        if explanation.latent.index % 2:
            return {"value": 1.0}  # not a Score
        return Score(explanation.latent, "impostor", "someone", 0.5)  # another name stamped


class Raising:
    needs = frozenset()

    def __init__(self, config: Any) -> None:
        pass

    async def score(self, explanation, examples, negatives, llm, **_: Any):
        raise KeyError("a bug in this plugin")


class UnknownNeed:
    needs = frozenset({"telepathy"})

    def __init__(self, config: Any) -> None:
        pass


class Misbehaving:
    @hookimpl
    def autointerp_register_scorers(self, register):
        register("wrongtype", WrongType, config=EmptyConfig)
        register("raising", Raising, config=EmptyConfig)
        register("telepath", UnknownNeed, config=EmptyConfig)
        register("missing", "autointerp_no_such_module:Scorer", config=EmptyConfig)


def test_wrong_types_and_raises_fail_latents_and_names_are_stamped(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, autointerp_plugins, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = respond
    autointerp_plugins.register(Misbehaving(), "misbehaving")
    scorers = ("detection", "wrongtype", "raising")
    path = config(tmp_path, autointerp_llm_server, scorers=scorers, top="max_failure_rate = 1.0")
    result = autointerp_cli("run", str(path), "--no-report")
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert len(store.scores(run.id, "detection")) == 4  # the good scorer was untouched
        stamped = store.scores(run.id, "wrongtype")
        assert stamped and all(s.scorer == "wrongtype" for s in stamped)
        assert all(s.explainer == "default" for s in stamped)
        assert not store.scores(run.id, "impostor")
        failures = store.failures(run.id, "score")
    reasons = {c: r for (_, c), r in failures.items()}
    assert reasons["wrongtype/default"] == "scorer 'wrongtype' returned dict, not a Score"
    assert reasons["raising/default"].startswith("scorer 'raising' raised KeyError:")
    assert all("\n" not in r for r in reasons.values())


@pytest.mark.parametrize(
    ("scorer", "expected"),
    [
        ("telepath", "scorer 'telepath' needs 'telepathy', which no run supplies"),
        ("missing", "cannot build scorer 'missing' from plugin 'misbehaving'"),
    ],
)
def test_plan_refuses_unknown_needs_and_factories_that_do_not_import(
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli,
    autointerp_plugins,
    tmp_path: Path,
    scorer: str,
    expected: str,
) -> None:
    autointerp_plugins.register(Misbehaving(), "misbehaving")
    path = config(tmp_path, autointerp_llm_server, scorers=(scorer,))
    for command in (("config", "validate", str(path)), ("run", str(path))):
        result = autointerp_cli(*command)
        assert result.exit_code != 0
        assert expected in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()  # nothing loaded, cached or paid


def test_a_missing_api_key_is_refused_before_the_model_loads(
    autointerp_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AUTOINTERP_KEYS_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write_run_config(
        tmp_path / "run.toml", base_url="http://127.0.0.1:9/v1", model=tmp_path / "no-model"
    )
    text = path.read_text().replace('name = "openai-compatible"', 'name = "openai"')
    path.write_text(text)
    result = autointerp_cli("run", str(path))
    assert result.exit_code != 0
    assert "llm: openai: no API key; set $OPENAI_API_KEY" in result.stderr
    assert not (tmp_path / "run").exists()  # the model (which does not even exist) never loaded


def test_the_output_side_explainer_gets_promoted_tokens_in_a_run(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = respond
    path = config(tmp_path, autointerp_llm_server)
    path.write_text(path.read_text().replace('name = "default"', 'name = "output_side"', 1))
    result = autointerp_cli("run", str(path), "--no-report")
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        explanations = store.explanations(run.id)
        assert len(explanations) == 4 and not store.failures(run.id)
        assert all(len(e.meta["promoted"]) > 0 for e in explanations)
    prompts = [r.prompt_text for r in autointerp_llm_server.requests]
    shown = explanations[0].meta["promoted"]
    assert any(", ".join(shown) in p for p in prompts)


def test_every_need_is_documented() -> None:
    assert set(NEED_DOCS) == set(Need)
    reference = (Path(__file__).parents[1] / "docs" / "contracts.md").read_text()
    for need in Need:
        assert f"`{need.value}`" in reference, need


def test_every_hook_is_documented() -> None:
    from autointerp import hookspecs

    reference = (Path(__file__).parents[1] / "docs" / "contracts.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("autointerp_")]
    assert hooks
    for name in hooks:
        assert f"`{name}`" in reference, name
