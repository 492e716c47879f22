"""The `autointerp` command, run as a user runs it (subprocesses) and in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from autointerp import __version__, hookimpl
from autointerp.errors import AutointerpError
from autointerp.plugins import PluginManager, set_plugin_manager
from autointerp.store import Store

BROKEN = "raise ImportError('this plugin is broken on purpose')\n"

COMMAND_PLUGIN = """
from autointerp import hookimpl


@hookimpl
def autointerp_register_commands(cli):
    @cli.command("hello")
    def hello(name: str = "world") -> None:
        print(f"hello {name}")
"""


def autointerp(*args: str, pythonpath: Path | None = None, env: dict | None = None):
    full_env = {**os.environ, **(env or {})}
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), full_env.get("PYTHONPATH", "")) if p
        )
    return subprocess.run(
        [sys.executable, "-m", "autointerp", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def test_version_and_plugins_survive_a_broken_plugin(autointerp_install_plugin) -> None:
    site = autointerp_install_plugin("ai_broken_cli", BROKEN, dist="ai-broken-cli")
    version = autointerp("--version", pythonpath=site)
    assert version.returncode == 0 and version.stdout.strip() == f"autointerp {__version__}"

    listing = autointerp("plugins", "--json", pythonpath=site)
    assert listing.returncode == 0, listing.stderr
    rows = {row["plugin"]: row for row in json.loads(listing.stdout)}
    row = rows["ai_broken_cli"]
    assert row["status"] == "error"
    assert row["distribution"] == "ai-broken-cli" and row["version"] == "0.1.0"
    assert "ImportError: this plugin is broken on purpose" in row["error"]
    assert set(row) >= {"name", "kind", "distribution", "version", "status", "error"}

    table = autointerp("plugins", pythonpath=site)
    assert table.returncode == 0
    assert "error" in table.stdout
    assert "ai_broken_cli: import failed: ImportError: this plugin is broken on purpose" in (
        table.stderr
    )


def test_listing_plugins_imports_no_model_library() -> None:
    result = autointerp("plugins", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "pluggy" in imported  # the profile really ran
    heavy = {"torch", "transformers", "transformer_lens", "nnsight", "numpy", "openai", "anthropic"}
    assert not imported & heavy


def test_plugin_adds_a_subcommand(autointerp_install_plugin) -> None:
    site = autointerp_install_plugin("ai_hello", COMMAND_PLUGIN)
    result = autointerp("hello", "--name", "researcher", pythonpath=site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello researcher"
    listing = json.loads(autointerp("plugins", "--json", pythonpath=site).stdout)
    assert {"name": "ai_hello", "kind": "commands"}.items() <= next(
        r for r in listing if r["plugin"] == "ai_hello"
    ).items()


def test_bad_config_is_one_line_without_traceback(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('seed = "x"\n[explainer]\nname = "default"\n', encoding="utf-8")
    result = autointerp("config", "validate", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"error: {path}: seed: Input should be a valid integer")

    syntax = tmp_path / "syntax.toml"
    syntax.write_text("name = \n", encoding="utf-8")
    result = autointerp("config", "validate", str(syntax))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {syntax}: invalid TOML")

    debug = autointerp("--debug", "config", "validate", str(syntax))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_usage_errors_come_from_click() -> None:
    result = autointerp("run", "--no-such-flag")
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_config_show_applies_overrides(autointerp_cli) -> None:
    result = autointerp_cli("config", "show", "--set", "explainer.temperature=0.3")
    assert result.exit_code == 0
    data = tomllib.loads(result.stdout)
    assert data["explainer"] == {"name": "default", "temperature": 0.3}


def _no_model(config):
    raise AutointerpError("this test has no model")


class EveryKind:
    """Registers one trivial component of every kind under the quickstart's default names."""

    @hookimpl
    def autointerp_register_model_adapters(self, register):
        register("transformers", _no_model)

    @hookimpl
    def autointerp_register_feature_sources(self, register):
        register("neurons", lambda c: c)

    @hookimpl
    def autointerp_register_explainers(self, register):
        register("default", lambda c: c)

    @hookimpl
    def autointerp_register_llm_clients(self, register):
        register("local", lambda c: c)

    @hookimpl
    def autointerp_register_scorers(self, register):
        register("detection", lambda c: c)
        register("fuzzing", lambda c: c)


@pytest.fixture
def only_every_kind():
    """A manager holding just EveryKind, whatever else is installed."""
    manager = PluginManager(entry_points=False)
    manager.register(EveryKind(), "every-kind")
    previous = set_plugin_manager(manager)
    yield manager
    set_plugin_manager(previous)


def test_run_validates_everything_before_work(only_every_kind, autointerp_cli, tmp_path) -> None:
    run_dir = tmp_path / "run"
    stopped = autointerp_cli("run", "--run-dir", str(run_dir))
    assert stopped.exit_code == 1 and stopped.stderr.strip() == "error: this test has no model"
    recorded = tomllib.loads((run_dir / "config.toml").read_text())
    assert recorded["run_dir"] == run_dir.as_posix()
    with Store.open(run_dir) as store:
        (run,) = store.runs()
    assert run.config == recorded and run.status == "failed"  # an error, not Ctrl-C

    bad = autointerp_cli("run", "--scorer", "detecton", "--explainer", "nope")
    assert bad.exit_code == 1
    lines = bad.stderr.strip().splitlines()
    assert any("explainer.name: no explainer named 'nope'" in line for line in lines)
    assert any("did you mean 'detection'?" in line for line in lines)
