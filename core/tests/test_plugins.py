"""The plugin manager: loading entry points, per-plugin errors, name clashes, lookups."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field

from autointerp import hookimpl
from autointerp.config import ComponentConfig, Selection
from autointerp.errors import ConfigError, PluginError, UnknownComponentError
from autointerp.plugins import PluginManager

SCORER_PLUGIN = """
from autointerp import hookimpl
from autointerp.config import ComponentConfig


class Options(ComponentConfig):
    threshold: float = 0.5


@hookimpl
def autointerp_register_scorers(register):
    register("{name}", "{module}:build", config=Options, description="test scorer")


def build(config):
    return ("built", config.threshold)
"""


def scorer_source(name: str, module: str) -> str:
    return SCORER_PLUGIN.replace("{name}", name).replace("{module}", module)


def test_entry_point_plugin_registers_lazily_and_builds(autointerp_install_plugin) -> None:
    autointerp_install_plugin("ai_good", scorer_source("toy-detection", "ai_good"), dist="ai-good")
    pm = PluginManager(disabled=())
    comp = pm.get("scorer", "toy-detection")
    assert (comp.plugin, comp.distribution, comp.version) == ("ai_good", "ai-good", "0.1.0")
    assert comp.description == "test scorer"
    assert pm.build("scorer", "toy-detection", {"threshold": 0.25}) == ("built", 0.25)
    assert pm.plugins["ai_good"].hooks == ["autointerp_register_scorers"]


def test_broken_plugin_is_recorded_and_other_plugins_still_load(autointerp_install_plugin) -> None:
    autointerp_install_plugin("ai_broken", "raise RuntimeError('boom at import')\n")
    autointerp_install_plugin("ai_fine", scorer_source("toy-fuzzing", "ai_fine"))
    pm = PluginManager(disabled=())
    broken = pm.plugins["ai_broken"]
    assert broken.status == "error"
    assert "RuntimeError: boom at import" in (broken.error or "")
    assert "Traceback" in (broken.traceback or "")
    assert pm.get("scorer", "toy-fuzzing").plugin == "ai_fine"
    # selecting something the broken plugin may have provided points at it
    with pytest.raises(UnknownComponentError, match=r"failed to load.*ai_broken"):
        pm.get("scorer", "toy-simulation")


def test_duplicate_names_error_names_both_distributions(autointerp_install_plugin) -> None:
    autointerp_install_plugin("ai_one", scorer_source("detection", "ai_one"), dist="pkg-one")
    autointerp_install_plugin("ai_two", scorer_source("detection", "ai_two"), dist="pkg-two")
    pm = PluginManager(disabled=())
    with pytest.raises(PluginError) as info:
        pm.get("scorer", "detection")
    assert "pkg-one" in str(info.value) and "pkg-two" in str(info.value)
    statuses = {r["plugin"]: (r["status"], r["error"]) for r in pm.rows() if r["kind"] == "scorer"}
    assert statuses["ai_one"][0] == "error" and "pkg-two" in statuses["ai_one"][1]
    assert statuses["ai_two"][0] == "error" and "pkg-one" in statuses["ai_two"][1]


def test_unknown_name_lists_available_and_suggests_closest() -> None:
    class Scorers:
        @hookimpl
        def autointerp_register_scorers(self, register):
            for name in ("detection", "fuzzing", "simulation"):
                register(name, lambda config: None)

    pm = PluginManager(entry_points=False)
    pm.register(Scorers(), "scorers")
    with pytest.raises(UnknownComponentError) as info:
        pm.get("scorer", "detecton")
    message = str(info.value)
    assert "did you mean 'detection'?" in message
    assert "Available: detection, fuzzing, simulation." in message
    with pytest.raises(UnknownComponentError, match="No explainers are installed"):
        pm.get("explainer", "default")


@pytest.mark.parametrize("by", ["entry point", "distribution"])
def test_disabled_plugins_are_skipped(autointerp_install_plugin, monkeypatch, by) -> None:
    autointerp_install_plugin("ai_off", scorer_source("toy-off", "ai_off"), dist="ai-off-dist")
    monkeypatch.setenv(
        "AUTOINTERP_DISABLE_PLUGINS", "other, ai_off" if by == "entry point" else "ai-off-dist"
    )
    pm = PluginManager()
    assert pm.plugins["ai_off"].status == "disabled"
    assert "ai_off" not in __import__("sys").modules  # never imported
    with pytest.raises(UnknownComponentError, match="Disabled plugins: ai_off"):
        pm.get("scorer", "toy-off")


def test_lazy_factory_import_error_surfaces_only_at_build() -> None:
    class Lazy:
        @hookimpl
        def autointerp_register_explainers(self, register):
            register("heavy", "autointerp_no_such_module.heavy:Explainer")

    pm = PluginManager(entry_points=False)
    pm.register(Lazy(), "lazy", distribution="lazy-dist")
    comp = pm.get("explainer", "heavy")  # listing and lookup never import the factory
    with pytest.raises(PluginError, match=r"cannot build explainer 'heavy'.*lazy-dist.*No module"):
        comp.build()


def test_failing_registration_hook_and_unknown_hook_are_recorded() -> None:
    class Bad:
        @hookimpl
        def autointerp_register_scorers(self, register):
            register("ok-before-failure", lambda c: c)
            raise ValueError("bad registration")

        def autointerp_register_scorer(self, register):  # typo: not a hook
            pass

    pm = PluginManager(entry_points=False)
    info = pm.register(Bad(), "bad")
    assert info.status == "error"
    assert "autointerp_register_scorers failed: ValueError: bad registration" in info.error
    assert "unknown hook 'autointerp_register_scorer'" in info.error
    assert "did you mean 'autointerp_register_scorers'" in info.error


def test_options_are_validated_against_component_config() -> None:
    class Options(ComponentConfig):
        k: int = 3

    class Plugin:
        @hookimpl
        def autointerp_register_scorers(self, register):
            register("s", lambda config: config, config=Options)

    pm = PluginManager(entry_points=False)
    pm.register(Plugin(), "p")
    assert pm.build("scorer", "s", {"k": 5}).k == 5
    with pytest.raises(ConfigError, match=r"run.toml: scorers\[0\]\.k: .*integer.*'many'"):
        pm.get("scorer", "s").validate({"k": "many"}, where="run.toml: scorers[0]")
    with pytest.raises(ConfigError, match=r"scorers\[0\]\.kk: unknown field; did you mean 'k'\?"):
        pm.get("scorer", "s").validate({"kk": 1}, where="run.toml: scorers[0]")


def test_register_rejects_non_config_classes() -> None:
    class Plugin:
        @hookimpl
        def autointerp_register_scorers(self, register):
            register("s", lambda c: c, config=dict)

    pm = PluginManager(entry_points=False)
    info = pm.register(Plugin(), "p")
    assert (
        info.status == "error" and "must subclass autointerp.config.ComponentConfig" in info.error
    )


def test_fixture_registers_plugin_for_one_test(autointerp_plugins, autointerp_cli) -> None:
    class Plugin:
        @hookimpl
        def autointerp_register_llm_clients(self, register):
            register("echo", lambda c: c, description="echoes")

    autointerp_plugins.register(Plugin(), "echo-plugin")
    result = autointerp_cli("plugins", "--json")
    assert result.exit_code == 0
    assert '"name": "echo"' in result.stdout and '"kind": "llm_client"' in result.stdout


# -- allow-list, descriptions, hooks (issue #20) ---------------------------------------------------


def test_allow_list_loads_only_the_plugins_it_names(autointerp_install_plugin, monkeypatch) -> None:
    autointerp_install_plugin("ai_allowed", scorer_source("allowed", "ai_allowed"))
    autointerp_install_plugin("ai_left_out", scorer_source("left-out", "ai_left_out"))
    monkeypatch.setenv("AUTOINTERP_LOAD_PLUGINS", "ai_allowed")
    pm = PluginManager()
    assert pm.plugins["ai_allowed"].status == "ok"
    assert pm.plugins["ai_left_out"].status == "disabled"
    assert pm.plugins["ai_left_out"].error == "not in AUTOINTERP_LOAD_PLUGINS"
    assert "left-out" not in pm.names("scorer")
    assert all(  # autointerp's own plugins (the executors) load whatever the list says
        p.status == "ok" for p in pm.plugins.values() if p.distribution == "autointerp"
    )
    monkeypatch.setenv("AUTOINTERP_LOAD_PLUGINS", "")  # set but empty: no plugin of others loads
    assert PluginManager().plugins["ai_allowed"].status == "disabled"
    monkeypatch.setenv("AUTOINTERP_DISABLE_PLUGINS", "ai_allowed")  # both lists: the deny wins
    monkeypatch.setenv("AUTOINTERP_LOAD_PLUGINS", "ai_allowed")
    assert PluginManager().plugins["ai_allowed"].status == "disabled"


class Described:
    class Options(ComponentConfig):
        """Options of a described scorer.

        More text that is not the summary."""

        presets: ClassVar[dict[str, dict[str, Any]]] = {"economy": {"n": 1}}

        n: int = Field(3, ge=1, le=9, description="how many")
        style: Literal["terse", "long"] = Field("terse", description="answer style")
        label: str | None = Field(None, description="optional label")
        tags: list[str] = Field(default_factory=list, description="tags")

    @hookimpl
    def autointerp_register_scorers(self, register):
        register("described", lambda c: c, config=self.Options)
        register("plain", lambda c: c, description="takes no options")


def test_a_component_describes_every_option_from_its_config_class() -> None:
    pm = PluginManager(entry_points=False)
    pm.register(Described(), "described-plugin", distribution="ai-described", version="1.2")
    info = pm.get("scorer", "described").describe()
    assert info["kind"] == "scorer" and info["plugin"] == "described-plugin"
    assert info["distribution"] == "ai-described" and info["version"] == "1.2"
    assert info["description"] == "Options of a described scorer."  # the docstring's summary
    options = {o["name"]: o for o in info["options"]}
    assert options["n"] == {
        "name": "n",
        "type": "int",
        "required": False,
        "default": 3,
        "bounds": [">= 1", "<= 9"],
        "description": "how many",
        "modes": {"economy": 1},
    }
    assert options["style"]["type"] == "'terse' | 'long'"
    assert options["label"]["type"] == "str | None" and options["label"]["default"] is None
    assert options["tags"]["type"] == "list[str]" and options["tags"]["default"] == []
    plain = pm.get("scorer", "plain").describe()
    assert plain["description"] == "takes no options" and plain["options"] == []


def test_find_matches_components_then_plugins_and_suggests() -> None:
    pm = PluginManager(entry_points=False)
    pm.register(Described(), "described-plugin", distribution="ai-described")
    assert [c.name for c in pm.find("plain")] == ["plain"]
    assert {c.name for c in pm.find("ai-described")} == {"described", "plain"}
    with pytest.raises(UnknownComponentError, match="did you mean 'described'"):
        pm.find("descibed")


def test_hook_rows_say_which_hooks_and_where_from(autointerp_install_plugin) -> None:
    site = autointerp_install_plugin("ai_hooked", scorer_source("hooked", "ai_hooked"))
    (row,) = [r for r in PluginManager().hook_rows() if r["plugin"] == "ai_hooked"]
    assert row["hooks"] == ["autointerp_register_scorers"]
    assert row["path"] == str(site / "ai_hooked.py") and row["status"] == "ok"
    assert row["distribution"] == "ai-hooked" and row["module"] == "ai_hooked"


def test_selection_problems_are_one_line_each() -> None:
    pm = PluginManager(entry_points=False)
    pm.register(Described(), "described-plugin")
    selections = [
        ("scorers[0]", "scorer", Selection(name="described", options={"nn": 2})),
        ("scorers[1]", "scorer", Selection(name="plian")),
    ]
    problems = pm.selection_problems(selections, "my.toml")
    assert problems[0] == "my.toml: scorers[0].nn: unknown field; did you mean 'n'? (got 2)"
    assert problems[1].startswith("my.toml: scorers[1].name: no scorer named 'plian'; did you mean")
    assert len(problems) == 2


@pytest.mark.parametrize(
    ("api", "compatible"), [(">=1,<2", True), (">=1.0", True), (">=2,<3", False), ("<1", False)]
)
def test_plugin_api_range_is_checked_before_registering(
    autointerp_install_plugin, api: str, compatible: bool
) -> None:
    source = f"PLUGIN_API = {api!r}\n" + scorer_source("toy-ranged", "ai_ranged")
    autointerp_install_plugin("ai_ranged", source, dist="ai-ranged")
    autointerp_install_plugin("ai_plain", scorer_source("toy-plain", "ai_plain"))
    pm = PluginManager(disabled=())
    assert pm.get("scorer", "toy-plain").plugin == "ai_plain"  # undeclared: assumed compatible
    info = pm.plugins["ai_ranged"]
    if compatible:
        assert info.status == "ok" and pm.get("scorer", "toy-ranged").plugin == "ai_ranged"
        return
    assert info.status == "incompatible" and not info.components
    assert f"written for plugin API {api}, this autointerp provides 1.0" in (info.error or "")
    row = next(r for r in pm.rows() if r["plugin"] == "ai_ranged")
    assert (row["status"], row["kind"]) == ("incompatible", None)
    # a run that selects its component is told why it is missing
    with pytest.raises(UnknownComponentError, match=r"Incompatible plugins: ai_ranged \(written"):
        pm.get("scorer", "toy-ranged")


def test_a_bad_plugin_api_value_is_named(autointerp_install_plugin) -> None:
    source = "PLUGIN_API = 'version one'\n" + scorer_source("toy-bad", "ai_badapi")
    autointerp_install_plugin("ai_badapi", source)
    info = PluginManager(disabled=()).plugins["ai_badapi"]
    assert info.status == "incompatible"
    assert "PLUGIN_API = 'version one' is not a version range" in (info.error or "")


def test_a_distribution_requiring_another_core_is_incompatible(autointerp_install_plugin) -> None:
    autointerp_install_plugin(
        "ai_future", scorer_source("toy-future", "ai_future"), requires=["autointerp>=9"]
    )
    autointerp_install_plugin(
        "ai_now",
        scorer_source("toy-now", "ai_now"),
        requires=["autointerp>=0.1", "autointerp[dataframes]>=99; extra == 'tables'"],
    )
    pm = PluginManager(disabled=())
    future = pm.plugins["ai_future"]
    assert future.status == "incompatible"
    assert "ai-future requires autointerp>=9, installed: autointerp 0.1.0" in (future.error or "")
    assert pm.plugins["ai_now"].status == "ok"  # an extra's requirement does not count


def test_cli_lists_incompatible_plugins_with_the_reason(
    autointerp_install_plugin, autointerp_cli
) -> None:
    autointerp_install_plugin(
        "ai_old", "PLUGIN_API = '<1'\n" + scorer_source("toy-old", "ai_old"), dist="ai-old"
    )
    from autointerp.plugins import set_plugin_manager

    previous = set_plugin_manager(PluginManager(disabled=()))  # one that sees the new plugin
    try:
        result = autointerp_cli("plugins", "--json")
    finally:
        set_plugin_manager(previous)
    assert result.exit_code == 0
    rows = {r["plugin"]: r for r in json.loads(result.stdout)}
    assert rows["ai_old"]["status"] == "incompatible"
    assert rows["ai_old"]["error"].startswith("written for plugin API <1, this autointerp")
