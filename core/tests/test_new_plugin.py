"""`autointerp new-plugin KIND NAME`: a ready package per component kind, whose tests pass.

Generated packages are never installed into this environment: their tests run in a child process
with the package's `src` on PYTHONPATH beside a minimal `dist-info` declaring its entry point
(read from the generated pyproject), and one package is pip-installed into a throwaway venv
layered on this one. CI (.ci/run) installs one package of every kind that way and runs all of its
tests, the run inside `autointerp run` included.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from autointerp.scaffold import KINDS, render

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PIP_NO_INPUT": "1",
       "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip


def generate(autointerp_cli, kind: str, name: str, where: Path) -> Path:
    result = autointerp_cli("new-plugin", kind, name, "--dir", str(where))
    assert result.exit_code == 0, result.stderr
    return where


def register_entry_point(package: Path, site_dir: Path) -> None:
    """A `dist-info` in `site_dir` declaring what the generated pyproject declares."""
    project = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist, version = project["name"], project["version"]
    info = site_dir / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    points = project["entry-points"]["autointerp"]
    lines = "".join(f"{k} = {v}\n" for k, v in points.items())
    (info / "entry_points.txt").write_text(f"[autointerp]\n{lines}", encoding="utf-8")


def run_tests(python: str, package: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:randomly", *args],
        cwd=package, capture_output=True, text=True, timeout=280, env={**ENV, **env},
    )  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_generates_a_package_whose_tests_pass(
    kind: str, autointerp_cli, tmp_path: Path
) -> None:
    name = f"my-{kind.split('-')[0]}"
    package = generate(autointerp_cli, kind, name, tmp_path / f"autointerp-{name}")
    module = f"autointerp_{name.replace('-', '_')}"
    assert {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()} >= {
        "pyproject.toml", "README.md", f"tests/test_{name.replace('-', '_')}.py",
        *(f"src/{module}/{f}" for f in ("__init__.py", "plugin.py", "py.typed")),
        f"src/{module}/{KINDS[kind].module}.py",
    }  # fmt: skip
    project = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == "0.1.0"
    assert project["entry-points"]["autointerp"] == {name: f"{module}.plugin"}
    assert project["dependencies"][0].startswith("autointerp>=")
    if shutil.which("ruff"):  # the generated code passes the project's lint as it is
        for check in (["check", "-q", "."], ["format", "--check", "-q", "."]):
            linted = subprocess.run(["ruff", *check], cwd=package, capture_output=True, text=True)
            assert linted.returncode == 0, linted.stdout + linted.stderr
    site_dir = tmp_path / "site"
    register_entry_point(package, site_dir)
    # the run inside `autointerp run` (e2e) takes ~10 s a kind: CI runs it, and the test below
    result = run_tests(
        sys.executable, package, "-m", "not e2e",
        PYTHONPATH=os.pathsep.join([str(package / "src"), str(site_dir)]),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_a_generated_plugin_installs_with_pip_and_runs_inside_autointerp_run(
    autointerp_cli, tmp_path: Path
) -> None:
    """pip builds the generated pyproject (entry point, package data) into a throwaway venv
    that sees this environment's packages; there, every test of the package passes, the run of
    the whole pipeline included."""
    package = generate(autointerp_cli, "scorer", "word-rule", tmp_path / "autointerp-word-rule")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = str(env_dir / "bin" / "python")
    (child_site,) = (env_dir / "lib").glob("python3*/site-packages")
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (child_site / "_parent_env.pth").write_text(  # this environment's packages, .pth files run
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents), encoding="utf-8"
    )
    installed = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
         str(package)],
        capture_output=True, text=True, timeout=240, env=ENV,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert (next(child_site.glob("autointerp_word_rule")) / "py.typed").is_file()
    assert not any(list(Path(p).glob("autointerp_word_rule*")) for p in parents)
    result = run_tests(python, package)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "7 passed" in result.stdout, result.stdout[-2000:]


def test_a_misspelt_kind_gets_a_suggestion(autointerp_cli, tmp_path: Path) -> None:
    result = autointerp_cli("new-plugin", "feature-sorce", "x", "--dir", str(tmp_path / "x"))
    assert result.exit_code == 1
    assert "unknown kind 'feature-sorce'; did you mean 'feature-source'?" in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("My_Scorer", "is not a component name"),
        ("two--dashes", "is not a component name"),
        ("autointerp-rule", "name the component, not the package: 'rule'"),
        ("a-name-much-too-long-to-fit", "longer than 16 characters"),
        ("detection", "a scorer named 'detection' is already installed"),
        ("scorers", "a distribution named autointerp-scorers is already installed"),
    ],
)
def test_names_are_checked(autointerp_cli, tmp_path: Path, name: str, says: str) -> None:
    result = autointerp_cli("new-plugin", "scorer", name, "--dir", str(tmp_path / "x"))
    assert result.exit_code == 1 and says in result.stderr


def test_a_non_empty_directory_needs_force(autointerp_cli, tmp_path: Path) -> None:
    where = tmp_path / "plugin"
    where.mkdir()
    (where / "notes.txt").write_text("mine", encoding="utf-8")
    refused = autointerp_cli("new-plugin", "executor", "pool", "--dir", str(where))
    assert refused.exit_code == 1 and "is not empty" in refused.stderr
    forced = autointerp_cli("new-plugin", "executor", "pool", "--dir", str(where), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert (where / "pyproject.toml").is_file()
    assert (where / "notes.txt").read_text(encoding="utf-8") == "mine"  # left alone


def test_the_default_directory_is_autointerp_name(
    autointerp_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert autointerp_cli("new-plugin", "llm_client", "my-server").exit_code == 0
    package = tmp_path / "autointerp-my-server"
    assert (package / "src" / "autointerp_my_server" / "client.py").is_file()


def test_every_template_is_filled(tmp_path: Path) -> None:
    """No placeholder is left in any generated file."""
    for kind in KINDS:
        plan = render(kind, "probe", tmp_path / kind)
        for path, text in plan.files.items():
            assert "${" not in text and "$name" not in text and "$module" not in text, path
