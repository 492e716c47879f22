"""Each plugin is a distribution of its own: everything its code imports is declared in its
pyproject (directly, through a declared autointerp package, or as an optional extra), and it
declares the plugin API range it was written for."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "core", *sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir())]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0])


@cache
def _installed_requires(dist: str) -> frozenset[str]:
    """``dist``'s own requirements (no extras), as installed."""
    try:
        lines = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return frozenset()
    return frozenset(_req_name(r) for r in lines if ";" not in r)


def _closure(names: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _installed_requires(name)
    return seen


def _imports(src: Path) -> dict[str, str]:
    """Top-level module imported -> the first file importing it, over every module in ``src``."""
    found: dict[str, str] = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_every_import_is_declared(package: Path) -> None:
    project = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_req_name(r) for r in project.get("dependencies", [])}
    optional = {
        _req_name(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs
    }
    reachable = _closure(declared | {_norm(project["name"])}) | _closure(optional)
    owners = metadata.packages_distributions()
    own = {p.name for p in (package / "src").iterdir() if p.is_dir()}
    missing = []
    for module, where in _imports(package / "src").items():
        if module in sys.stdlib_module_names or module in own or module == "__future__":
            continue
        dists = {_norm(d) for d in owners.get(module, [])}
        if not dists and _norm(module) in declared | optional:
            continue  # an optional extra that is not installed here
        if not dists:
            missing.append(f"{where}: imports {module}, which no installed distribution provides")
        elif not dists & reachable:
            missing.append(f"{where}: imports {module} ({', '.join(sorted(dists))}), undeclared")
    assert not missing, f"{project['name']}:\n" + "\n".join(missing)


@pytest.mark.parametrize("package", PACKAGES[1:], ids=lambda p: p.name)
def test_every_plugin_declares_its_plugin_api(package: Path) -> None:
    from autointerp.plugins import incompatibility

    project = tomllib.loads((package / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    modules = project["entry-points"]["autointerp"].values()
    for value in modules:
        path = package / "src" / (value.split(":")[0].replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        declared = [
            node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["PLUGIN_API"]
            and isinstance(node.value, ast.Constant)
        ]
        assert declared, f"{path.relative_to(ROOT)}: no PLUGIN_API = '>=1,<2' declared"

        class Module:
            PLUGIN_API = declared[0]

        assert incompatibility(Module) is None, f"{path.relative_to(ROOT)}: {declared[0]}"
