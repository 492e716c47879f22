"""``autointerp new-plugin KIND NAME``: write a ready plugin package for one component kind.

The package is ``autointerp-NAME`` (import name ``autointerp_NAME``): a pyproject with its entry
point in the ``autointerp`` group, a plugin module registering the component with a pydantic
config, a small working component, a test suite using the ``autointerp.testing`` fixtures (one test
runs the component inside ``autointerp run``), and a README. The files are templates shipped in
``autointerp/templates``: ``common/`` for every kind, ``<kind>/`` for one; a ``.tmpl`` file is a
:class:`string.Template`, a path part ``package`` becomes the import name and ``NAME`` in a file
name the component's name with underscores.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from importlib import metadata
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from autointerp.errors import ConfigError

#: a component name: lowercase letters and digits, words joined by single dashes
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
#: longer names would push generated lines past the 100 columns the project's lint allows
MAX_NAME = 16


@dataclass(frozen=True)
class Kind:
    """What differs between the kinds besides their template folder."""

    kind: str  #: the plugin manager's kind (``feature_source``)
    table: str  #: the run config table that selects the component
    summary: str  #: what the generated component does, for its README
    module: str  #: the component's module in the package
    requires: tuple[str, ...] = ()  #: distributions the package needs besides autointerp


KINDS: dict[str, Kind] = {
    "scorer": Kind(
        "scorer",
        "[[scorers]]",
        "a scorer without an LLM: an example is predicted to activate when it contains a word of "
        "the explanation; the score is the balanced accuracy of that rule",
        "scorer",
    ),
    "explainer": Kind(
        "explainer",
        "[explainer]",
        "an explainer that shows the LLM the activating examples with their strongest tokens "
        "marked, and reads back one `Explanation:` line (re-asking when there is none)",
        "explainer",
    ),
    "feature-source": Kind(
        "feature_source",
        "[feature_source]",
        "a feature source of random directions at one site: each latent is a seeded random unit "
        "vector, its activation the positive projection on it, the top k per token kept",
        "source",
        ("torch",),
    ),
    "model-adapter": Kind(
        "model_adapter",
        "[model]",
        "a model adapter for GPT-2-style Hugging Face models, built on the hook machinery of "
        "autointerp-transformers: the module paths of each site are spelled out, to change for "
        "another architecture",
        "adapter",
        ("autointerp-transformers", "torch", "transformers"),
    ),
    "llm-client": Kind(
        "llm_client",
        "[llm]",
        "an LLM client for a local OpenAI-compatible server (llama.cpp, vLLM, Ollama) at "
        "`base_url`, with nothing but the standard library",
        "client",
    ),
    "executor": Kind(
        "executor",
        "[executor]",
        "an executor running the pipeline's work units in a pool of threads, in order and a "
        "bounded number of units ahead",
        "executor",
    ),
}


@dataclass(frozen=True)
class Plan:
    """Where each generated file goes, and its text."""

    root: Path
    files: dict[Path, str]


def resolve_kind(kind: str) -> str:
    """The CLI spelling of ``kind`` (``feature_source`` is accepted for ``feature-source``), or
    an error with the closest kind."""
    spelled = kind.strip().lower().replace("_", "-")
    if spelled in KINDS:
        return spelled
    known = ", ".join(KINDS)
    close = difflib.get_close_matches(spelled, list(KINDS), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"new-plugin: unknown kind '{kind}'{hint} (kinds: {known})")


def check_name(name: str) -> str:
    """``name`` if it is a component name (lowercase letters, digits, single dashes), else an
    error saying what is expected."""
    if name.startswith("autointerp-"):
        short = name.removeprefix("autointerp-")
        raise ConfigError(
            f"new-plugin: name the component, not the package: '{short}' makes the package {name}"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"new-plugin: '{name}' is not a component name: use lowercase letters, digits and "
            "single dashes, starting with a letter (e.g. keyword-hits)"
        )
    if len(name) > MAX_NAME:
        raise ConfigError(f"new-plugin: '{name}' is longer than {MAX_NAME} characters")
    return name


def requirement(dist: str) -> str:
    """``dist`` with the range of versions compatible with the one installed here: the same
    minor version below 1.0 (where a minor release may break plugins), the same major after."""
    try:
        installed = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return dist
    match = re.match(r"(\d+)\.(\d+)", installed)
    if match is None:
        return dist
    major, minor = int(match.group(1)), int(match.group(2))
    if major == 0:
        return f"{dist}>=0.{minor},<0.{minor + 1}"
    return f"{dist}>={major}.{minor},<{major + 1}"


def variables(kind: str, name: str) -> dict[str, str]:
    """What the templates of ``kind`` are filled with for the component ``name``."""
    spec = KINDS[kind]
    snake = name.replace("-", "_")
    deps = [requirement("autointerp"), *(requirement(d) for d in spec.requires)]
    return {
        "name": name,
        "snake": snake,
        "module": f"autointerp_{snake}",
        "dist": f"autointerp-{name}",
        "cls": "".join(part.capitalize() for part in name.split("-")),
        "kind": spec.kind,
        "kind_label": kind.replace("-", " ").replace("llm ", "LLM "),
        "cli_kind": kind,
        "table": spec.table,
        "summary": spec.summary,
        "component_module": spec.module,
        "dependencies": ", ".join(f'"{d}"' for d in deps),
    }


def _walk(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    out: list[tuple[tuple[str, ...], str]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            out += _walk(entry, (*prefix, entry.name))
        else:
            out.append(((*prefix, entry.name), entry.read_text(encoding="utf-8")))
    return out


def render(kind: str, name: str, root: Path) -> Plan:
    """The files of the ``kind`` plugin ``name`` to write below ``root`` (nothing is written)."""
    kind, name = resolve_kind(kind), check_name(name)
    values = variables(kind, name)
    templates = files("autointerp") / "templates"
    out: dict[Path, str] = {}
    for folder in ("common", kind):
        for parts, text in _walk(templates / folder):
            *dirs, filename = parts
            dirs = [values["module"] if d == "package" else d for d in dirs]
            if filename.endswith(".tmpl"):
                filename = filename.removesuffix(".tmpl")
                text = Template(text).substitute(values)
            filename = filename.replace("NAME", values["snake"])
            out[root.joinpath(*dirs, filename)] = text
    return Plan(root, out)


def installed_clash(kind: str, name: str) -> str | None:
    """Why ``name`` would clash with something installed here (a component of the same kind
    and name, or a distribution ``autointerp-NAME``), or None."""
    spec = KINDS[resolve_kind(kind)]
    try:
        dist = metadata.distribution(f"autointerp-{name}")
    except metadata.PackageNotFoundError:
        pass
    else:
        where = dist.metadata["Name"]
        return f"a distribution named {where} is already installed"
    try:
        from autointerp.plugins import get_plugin_manager

        if name in get_plugin_manager().names(spec.kind):
            return f"a {spec.kind.replace('_', ' ')} named '{name}' is already installed"
    except Exception:  # a broken plugin elsewhere must not stop a new one being written
        return None
    return None


def write(plan: Plan, *, force: bool = False) -> list[Path]:
    """Write ``plan``'s files; refuses a non-empty target directory unless ``force`` (which
    overwrites the generated files and leaves every other file alone)."""
    root = plan.root
    if root.exists() and not root.is_dir():
        raise ConfigError(f"new-plugin: {root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise ConfigError(f"new-plugin: {root} is not empty; choose another --dir or pass --force")
    written = []
    for path, text in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def new_plugin(kind: str, name: str, root: Path | None = None, *, force: bool = False) -> Plan:
    """Render and write the ``kind`` plugin ``name`` into ``root`` (default
    ``./autointerp-NAME``); returns what was written."""
    kind, name = resolve_kind(kind), check_name(name)
    clash = installed_clash(kind, name)
    if clash is not None:
        raise ConfigError(f"new-plugin: {clash}; choose another name")
    plan = render(kind, name, root if root is not None else Path(f"autointerp-{name}"))
    write(plan, force=force)
    return plan
