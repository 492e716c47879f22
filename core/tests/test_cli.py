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


# -- describing components, hooks, install, misspellings (issue #20) ------------------------------


def test_plugins_name_describes_a_component_without_importing_model_libraries() -> None:
    result = autointerp("plugins", "detection", "--json", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    (info,) = json.loads(result.stdout)
    assert info["kind"] == "scorer" and info["distribution"] == "autointerp-scorers"
    assert info["description"] and info["version"]
    options = {o["name"]: o for o in info["options"]}
    assert options["example_width"]["type"] == "int" and options["example_width"]["default"] == 32
    assert all(o["description"] for o in info["options"])
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & {"torch", "transformers", "numpy", "openai", "anthropic"}


def test_plugins_name_prints_a_table_of_options(autointerp_cli) -> None:
    result = autointerp_cli("plugins", "default")
    assert result.exit_code == 0, result.stderr
    assert "explainer 'default'" in result.stdout and "autointerp-explainers" in result.stdout
    for word in ("option", "type", "default", "description", "temperature", "max_examples"):
        assert word in result.stdout


def test_plugins_unknown_name_suggests(autointerp_cli) -> None:
    result = autointerp_cli("plugins", "detecton")
    assert result.exit_code == 1
    assert "no component or plugin named 'detecton'; did you mean 'detection'?" in result.stderr


def test_plugins_hooks_say_which_plugin_implements_what_from_where(autointerp_cli) -> None:
    result = autointerp_cli("plugins", "--hooks", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["plugin"]: row for row in json.loads(result.stdout)}
    report = next(r for r in rows.values() if r["distribution"] == "autointerp-report")
    assert "autointerp_register_commands" in report["hooks"]
    assert "autointerp_run_finished" in report["hooks"]
    assert report["path"].endswith(".py") and Path(report["path"]).is_file()
    table = autointerp_cli("plugins", "--hooks")
    assert table.exit_code == 0 and "register_scorers" in table.stdout


def test_allow_list_from_the_environment(autointerp_install_plugin) -> None:
    site = autointerp_install_plugin("ai_cmd_allowed", COMMAND_PLUGIN)
    env = {"AUTOINTERP_LOAD_PLUGINS": "ai_cmd_allowed"}
    rows = json.loads(autointerp("plugins", "--json", pythonpath=site, env=env).stdout)
    status = {row["plugin"]: row["status"] for row in rows}
    assert status["ai_cmd_allowed"] == "ok"
    assert {s for p, s in status.items() if p not in ("ai_cmd_allowed", "executors")} == {
        "disabled"
    }
    assert autointerp("hello", pythonpath=site, env=env).stdout == "hello world\n"


def test_config_show_full_prints_every_default_of_the_selected_components(autointerp_cli) -> None:
    result = autointerp_cli("config", "show", "--full", "--set", "explainer.temperature=0.3")
    assert result.exit_code == 0, result.stderr
    data = tomllib.loads(result.stdout)
    assert data["explainer"]["name"] == "default" and data["explainer"]["temperature"] == 0.3
    assert data["explainer"]["max_examples"] == 40  # a default, not in the config
    assert data["scorers"][0]["name"] == "detection" and "example_width" in data["scorers"][0]
    assert data["scorers"][0]["batch_size"] == 1  # the quickstart's small-llm mode preset
    short = tomllib.loads(autointerp_cli("config", "show").stdout)
    assert short["explainer"] == {"name": "default"}


def test_config_validate_reports_every_problem_one_line_each(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        "sead = 1\n[explainer]\ntemprature = 0.3\n[[scorers]]\nname = 'detecton'\n"
        "[[scorers]]\nname = 'fuzzing'\nexample_widht = 8\n",
        encoding="utf-8",
    )
    result = autointerp("config", "validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"error: {path}: sead: unknown field; did you mean 'seed'? (got 1)" in lines
    assert (
        f"error: {path}: explainer.temprature: unknown field; did you mean 'temperature'? (got 0.3)"
        in lines
    )
    assert any(
        line.startswith(f"error: {path}: scorers[0].name: no scorer named 'detecton'; did you mean")
        for line in lines
    )
    assert any(f"{path}: scorers[1].example_widht: unknown field" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_a_misspelt_component_flag_is_blamed_on_the_flag(only_every_kind, autointerp_cli) -> None:
    result = autointerp_cli("run", "--scorer", "fuzing", "--explainer", "defualt")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert any(
        line.startswith("error: --scorer: scorers[0].name: no scorer named 'fuzing'; did you mean "
                        "'fuzzing'?")
        for line in lines
    )  # fmt: skip
    assert any(
        line.startswith("error: --explainer: explainer.name: no explainer") for line in lines
    )


CHOICE_PLUGIN = """
from typing import Literal

from autointerp import hookimpl


@hookimpl
def autointerp_register_commands(cli):
    @cli.command("pick")
    def pick(fmt: Literal["jsonl", "parquet"] = "jsonl") -> None:
        print(fmt)
"""


def test_a_misspelt_choice_value_gets_a_suggestion(autointerp_install_plugin) -> None:
    site = autointerp_install_plugin("ai_choice", CHOICE_PLUGIN)
    assert autointerp("pick", "--fmt", "parquet", pythonpath=site).stdout == "parquet\n"
    result = autointerp("pick", "--fmt", "jsonll", pythonpath=site)
    assert result.returncode == 2
    assert "Did you mean 'jsonl'?" in " ".join(result.stderr.replace("│", " ").split())


def test_install_builds_the_pip_command_and_passes_options_through(
    autointerp_cli, monkeypatch
) -> None:
    from autointerp import cli

    calls = []

    def record(cmd, check):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 3 if "fail" in cmd else 0)

    monkeypatch.setattr(cli.subprocess, "run", record)
    ok = autointerp_cli("install", "-U", "--pre", "-e", "./mine", "pkg", "--no-index", "-f", "d")
    assert ok.exit_code == 0
    assert calls[-1] == [
        sys.executable, "-m", "pip", "install", "--upgrade", "--pre", "-e", "./mine",
        "pkg", "--no-index", "-f", "d",
    ]  # fmt: skip
    assert autointerp_cli("uninstall", "-y", "pkg").exit_code == 0
    assert calls[-1] == [sys.executable, "-m", "pip", "uninstall", "-y", "pkg"]
    assert autointerp_cli("install", "fail").exit_code == 3  # pip's exit status
    nothing = autointerp_cli("install")
    assert nothing.exit_code == 1 and "name a package" in nothing.stderr


PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "ai-installed"
version = "0.3.0"

[project.entry-points.autointerp]
ai_installed = "ai_installed"

[tool.setuptools]
py-modules = ["ai_installed"]
"""


def test_install_and_uninstall_a_plugin_into_the_environment_autointerp_runs_in(tmp_path) -> None:
    """One real pip install and uninstall (a few seconds): a throwaway venv that sees this
    environment's packages, a local plugin project built without the network."""
    import site
    import venv

    project = tmp_path / "ai-installed"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project / "ai_installed.py").write_text(
        "from autointerp import hookimpl\n\n\n@hookimpl\ndef autointerp_register_scorers(register):"
        "\n    register('installed', lambda c: c)\n",
        encoding="utf-8",
    )
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    (child_site,) = (env_dir / "lib").glob("python3*/site-packages")
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (child_site / "_parent_env.pth").write_text(  # this environment's packages, .pth files run
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents), encoding="utf-8"
    )

    def child(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), "-m", "autointerp", *args],
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
            env={**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )  # fmt: skip

    installed = child("install", str(project), "--no-index", "--no-build-isolation")
    assert installed.returncode == 0, installed.stderr
    assert list(child_site.glob("ai_installed*"))  # in the venv autointerp runs in ...
    assert not any(  # ... not in this one
        list(Path(p).glob("ai_installed*")) for p in parents
    )
    rows = json.loads(child("plugins", "--json").stdout)
    row = next(r for r in rows if r["plugin"] == "ai_installed")
    assert (row["name"], row["distribution"], row["version"]) == (
        "installed",
        "ai-installed",
        "0.3.0",
    )

    removed = child("uninstall", "-y", "ai-installed")
    assert removed.returncode == 0, removed.stderr
    rows = json.loads(child("plugins", "--json").stdout)
    assert all(r["plugin"] != "ai_installed" for r in rows)


def test_report_open_without_a_display_says_where_the_report_is(tmp_path, monkeypatch, capsys):
    import webbrowser

    commands = pytest.importorskip("autointerp_report.commands")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(webbrowser, "open", lambda uri: False)  # what it answers with no browser
    index = tmp_path / "report" / "index.html"
    assert commands.open_in_browser(index) is False
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot open a browser here (no display)" in err and str(index) in err
    monkeypatch.setenv("DISPLAY", ":0")
    assert commands.open_in_browser(index) is False
    assert "(no browser found)" in capsys.readouterr().err


def _python(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by this interpreter in a child process (output captured, 60 s at most)."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )


def test_sigterm_during_an_import_interrupts_once_the_import_is_done(tmp_path: Path) -> None:
    """An exception raised inside an import can abort the process (torch's C++ import hooks
    terminate on it): SIGTERM waits for the import to finish, then stops the command."""
    (tmp_path / "slowmod.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(0.5)\n"
        "DONE = True\n"
    )
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from autointerp.cli import _sigterm_as_ctrl_c\n"
        "with _sigterm_as_ctrl_c() as seen:\n"
        "    try:\n"
        "        import slowmod\n"
        "        time.sleep(10)\n"
        "        print('not interrupted')\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', getattr(sys.modules.get('slowmod'), 'DONE', None),\n"
        "              seen.signal_name)\n"
    )
    done = _python(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["interrupted", "True", "SIGTERM"]


def test_a_second_sigterm_stops_a_process_that_lost_the_first() -> None:
    """The first SIGTERM's interrupt can be swallowed (raised inside a finaliser); the second
    then ends the process at once, with the SIGTERM exit code."""
    script = (
        "import os, signal, time\n"
        "from autointerp.cli import _sigterm_as_ctrl_c\n"
        "with _sigterm_as_ctrl_c():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(2)\n"
        "    except KeyboardInterrupt:\n"
        "        print('first lost', flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "    print('still running')\n"
    )
    done = _python(script)
    assert done.returncode == 143, done.stderr
    assert done.stdout.split("\n")[0] == "first lost" and "still running" not in done.stdout


@pytest.mark.parametrize(
    "command", [["run"], ["status"], ["export"], ["plugins"], ["sae", "train"]]
)
def test_help_reads_at_80_columns(command: list[str]) -> None:
    """Whole lines at 80 columns, paragraphs reflowed (not broken where the docstring broke
    them), type words instead of typer's ``<str>``/``<list[str]>``, and no type for flags."""
    import re

    result = autointerp(*command, "--help", env={"COLUMNS": "80", "TERM": "dumb"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    assert not re.search(r"<(str|bool|int|float|path|list\[\w+\])>", result.stdout)
    help_row = next(line for line in lines if "--help" in line)
    assert re.search(r"--help\s+Show this", help_row)  # a flag shows no type
    if command == ["run"]:
        prose = " ".join(line.strip(" │") for line in lines)
        assert "Exits 1 when a stage's" in re.sub(r"\s+", " ", prose)
        assert re.search(r"--scorer\s+TEXT", result.stdout)


def test_third_party_progress_bars_are_silenced(tmp_path: Path) -> None:
    from autointerp.testing.adapters import save_tiny, tiny_model

    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    result = subprocess.run(
        [sys.executable, "-m", "autointerp", "sites", str(model)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "resid_post.0" in result.stdout
    assert "Loading weights" not in result.stderr and "it/s]" not in result.stderr


def test_building_the_cli_again_does_not_pile_up_plugin_commands(autointerp_install_plugin) -> None:
    from autointerp import cli

    autointerp_install_plugin("ai_hello", COMMAND_PLUGIN)
    previous = set_plugin_manager(PluginManager(disabled=()))
    try:
        first = cli.build_cli()
        sizes = (len(cli.app.registered_commands), len(cli.app.registered_groups))
        again = cli.build_cli()
        assert (len(cli.app.registered_commands), len(cli.app.registered_groups)) == sizes
        assert sorted(first.commands) == sorted(again.commands) and "hello" in again.commands
    finally:
        set_plugin_manager(previous)
        cli.build_cli()  # the app as the next test's manager makes it
