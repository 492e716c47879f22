"""Pytest fixtures for plugin authors, loaded automatically when autointerp is installed.

- ``autointerp_plugins``: a fresh plugin manager (installed entry points loaded), also the one the
  CLI uses for the duration of the test; ``autointerp_plugins.register(obj)`` adds a plugin.
- ``autointerp_run_dir``: an empty run directory.
- ``autointerp_install_plugin``: install a throw-away plugin distribution (a real ``dist-info``
  with an entry point) on ``sys.path``; returns the directory, usable as ``PYTHONPATH``.
- ``autointerp_cli``: run the ``autointerp`` command in process; returns exit code, stdout, stderr.
- ``autointerp_llm_server``: a scripted LLM server on 127.0.0.1 speaking the OpenAI and Anthropic
  protocols, with faults on demand (see :mod:`autointerp.testing.llm_server`).
- ``autointerp_tiny_dirs``: a saved tiny random-weight model per architecture (gpt2, mamba, rwkv).
- ``autointerp_tiny_adapter``: each installed adapter over its tiny model (parametrized: a test
  runs once per architecture; skipped where that adapter plugin is not installed).

Helpers: :mod:`autointerp.testing.adapters` (tiny random models, the adapter conformance suite)
and :mod:`autointerp.testing.runs` (a small offline run config and scripted answers that parse,
for tests of a whole ``autointerp run``).
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from autointerp.plugins import ENTRY_POINT_GROUP, PluginManager, set_plugin_manager


@pytest.fixture
def autointerp_plugins() -> Iterator[PluginManager]:
    """A fresh plugin manager, installed as the process-wide one for this test."""
    manager = PluginManager()
    previous = set_plugin_manager(manager)
    try:
        yield manager
    finally:
        set_plugin_manager(previous)


@pytest.fixture
def autointerp_run_dir(tmp_path: Path) -> Path:
    """An empty run directory."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return run_dir


InstallPlugin = Callable[..., Path]


@pytest.fixture
def autointerp_install_plugin(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> InstallPlugin:
    """Install a plugin distribution from source text into a temporary site directory.

    ``install(module, source, entry_point=None, dist=None, version="0.1.0", requires=())``
    writes ``module.py`` and ``<dist>-<version>.dist-info`` declaring ``entry_point = module``
    in the ``autointerp`` group (and a ``Requires-Dist`` line per ``requires`` entry), and puts
    the directory on ``sys.path``.
    """

    def install(
        module: str,
        source: str,
        entry_point: str | None = None,
        dist: str | None = None,
        version: str = "0.1.0",
        requires: Sequence[str] = (),
    ) -> Path:
        site = tmp_path_factory.mktemp("site")
        dist = dist or module.replace("_", "-")
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires),
            encoding="utf-8",
        )
        (info / "entry_points.txt").write_text(
            f"[{ENTRY_POINT_GROUP}]\n{entry_point or module} = {module}\n", encoding="utf-8"
        )
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.delitem(sys.modules, module, raising=False)
        importlib.invalidate_caches()
        return site

    return install


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def autointerp_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``autointerp ARGS...`` in process: ``autointerp_cli("plugins", "--json")``."""
    from autointerp.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


# fixtures defined in helper modules: the scripted OpenAI/Anthropic-protocol server (LLM client and
# explainer plugins) and tiny models behind the installed adapters (lens, probe, steering tests)
from autointerp.testing.adapters import autointerp_tiny_adapter, autointerp_tiny_dirs  # noqa: E402, F401
from autointerp.testing.llm_server import autointerp_llm_server  # noqa: E402, F401
