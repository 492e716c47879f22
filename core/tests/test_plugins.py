"""The plugin manager: loading entry points, per-plugin errors, name clashes, lookups."""

from __future__ import annotations

import pytest

from autointerp import hookimpl
from autointerp.config import ComponentConfig
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
