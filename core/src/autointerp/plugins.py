"""The plugin manager: loads entry points, records each plugin's errors, finds components by name.

Standard plugins and third-party plugins load the same way: every entry point of the ``autointerp``
group names a module of hook implementations. Importing or registering a plugin never raises here;
a failure is recorded on that plugin and raised only when a run asks for something it might provide.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import (
    Distribution,
    EntryPoint,
    PackageNotFoundError,
    entry_points,
)
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, Literal, Protocol

import pluggy

from autointerp import hookspecs
from autointerp.config import (
    ComponentConfig,
    EmptyConfig,
    Selection,
    describe_options,
    validate_options,
)
from autointerp.errors import AutointerpError, ConfigError, PluginError, UnknownComponentError
from autointerp.hookspecs import PLUGIN_API
from autointerp.types import COMPONENT_KINDS, kind_label

ENTRY_POINT_GROUP = "autointerp"
DISABLE_ENV = "AUTOINTERP_DISABLE_PLUGINS"
LOAD_ENV = "AUTOINTERP_LOAD_PLUGINS"

#: registration hook name for each component kind
REGISTRATION_HOOKS: dict[str, str] = {
    kind: f"autointerp_register_{kind}s" for kind in COMPONENT_KINDS
}
COMMANDS_HOOK = "autointerp_register_commands"
RUN_FINISHED_HOOK = "autointerp_run_finished"
_SPEC_NAMES = frozenset(n for n in dir(hookspecs) if n.startswith("autointerp_"))

Status = Literal["ok", "error", "disabled", "incompatible"]


class Register(Protocol):
    """The callback a registration hook receives."""

    def __call__(
        self,
        name: str,
        factory: str | Callable[[Any], Any],
        config: type[ComponentConfig] | None = None,
        description: str = "",
    ) -> None: ...


@dataclass(frozen=True)
class Component:
    """A registered component: enough to list it, validate its options and build it lazily."""

    kind: str
    name: str
    factory: str | Callable[[Any], Any]
    config: type[ComponentConfig]
    description: str
    plugin: str
    distribution: str
    version: str

    def validate(
        self, options: Mapping[str, Any] | None = None, *, where: str = "", mode: str = "parity"
    ) -> Any:
        """Validate ``options`` (with the ``mode`` preset filled in) against this component's
        config model (raises ConfigError)."""
        return validate_options(self.config, options or {}, where=where or self.name, mode=mode)

    def load_factory(self) -> Callable[[Any], Any]:
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # import errors of heavy dependencies surface here, at build time
            raise PluginError(
                f"cannot build {kind_label(self.kind)} '{self.name}' from plugin '{self.plugin}' "
                f"({self.distribution}): {type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def build(self, options: Mapping[str, Any] | ComponentConfig | None = None) -> Any:
        """Validate the options and call the factory with the config instance."""
        config = options if isinstance(options, ComponentConfig) else self.validate(options)
        return self.load_factory()(config)

    def describe(self) -> dict[str, Any]:
        """Kind, plugin, version, description and every option (type, default, bounds,
        description, preset values) as JSON data; imports nothing beyond the config class."""
        doc = (self.config.__doc__ or "").strip() if self.config is not EmptyConfig else ""
        return {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "description": self.description or doc.split("\n\n")[0].replace("\n", " "),
            "config": f"{self.config.__module__}.{self.config.__qualname__}",
            "options": describe_options(self.config),
        }


@dataclass
class PluginInfo:
    """What is known about one plugin: where it came from and whether it loaded."""

    name: str
    distribution: str
    version: str
    module: str
    status: Status = "ok"
    error: str | None = None
    traceback: str | None = None
    path: str | None = None  # where it was loaded from: the module's file
    hooks: list[str] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.status = "error"
        self.error = self.error + "; " + message if self.error else message


def _names(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def disabled_from_env() -> frozenset[str]:
    """The deny-list: ``$AUTOINTERP_DISABLE_PLUGINS``, comma-separated plugin or distribution
    names."""
    return _names(os.environ.get(DISABLE_ENV, ""))


def allowed_from_env() -> frozenset[str] | None:
    """The allow-list: ``$AUTOINTERP_LOAD_PLUGINS`` (comma-separated plugin or distribution
    names; set but empty loads none but autointerp's own), or None when it is not set (every
    plugin loads)."""
    raw = os.environ.get(LOAD_ENV)
    return None if raw is None else _names(raw)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return text[0] if text else type(exc).__name__


class PluginManager:
    """Loads plugins and answers "which component is called X?".

    ``entry_points=False`` gives an empty manager (tests register plugin objects directly).
    ``disabled`` names plugins (entry-point or distribution names) to skip; defaults to
    ``$AUTOINTERP_DISABLE_PLUGINS``. ``load``, when not None, names the only plugins to load
    (an allow-list; the plugins of the ``autointerp`` distribution itself always load); defaults
    to ``$AUTOINTERP_LOAD_PLUGINS`` when that is set. A plugin on both lists is skipped.
    """

    def __init__(
        self,
        *,
        entry_points: bool = True,
        disabled: Iterable[str] | None = None,
        load: Iterable[str] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.disabled = frozenset(disabled) if disabled is not None else disabled_from_env()
        self.allowed = frozenset(load) if load is not None else allowed_from_env()
        self.plugins: dict[str, PluginInfo] = {}
        self._components: dict[str, dict[str, list[Component]]] = {k: {} for k in COMPONENT_KINDS}
        if entry_points:
            self.load_entry_points()

    # -- loading -------------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Import and register every ``autointerp`` entry point, recording failures per plugin."""
        seen: set[str] = set()
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen or ep.name in self.plugins:
                continue  # the same distribution visible twice on sys.path
            seen.add(ep.name)
            self._load_entry_point(ep)

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else ""
        info = PluginInfo(name=ep.name, distribution=dist, version=version, module=ep.value)
        self.plugins[ep.name] = info
        if ep.name in self.disabled or dist in self.disabled:
            info.status = "disabled"
            info.error = f"disabled by {DISABLE_ENV}"
            return
        core = dist == ENTRY_POINT_GROUP  # autointerp's own plugins (executors) always load
        if self.allowed is not None and not core and not {ep.name, dist} & self.allowed:
            info.status = "disabled"
            info.error = f"not in {LOAD_ENV}"
            return
        try:
            module = ep.load()
        except BaseException as exc:  # a plugin's import must never take the CLI down
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.fail(f"import failed: {_one_line(exc)}")
            info.traceback = traceback.format_exc()
            return
        reason = incompatibility(module, ep.dist)
        if reason is not None:
            info.status = "incompatible"
            info.error = reason
            return
        self._register(module, info)

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str = "(in process)",
        version: str = "",
    ) -> PluginInfo:
        """Register a plugin object (a module or any object with hook implementations)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self.plugins:
            raise PluginError(f"a plugin named '{name}' is already registered")
        info = PluginInfo(name=name, distribution=distribution, version=version, module=name)
        self.plugins[name] = info
        reason = incompatibility(plugin)
        if reason is not None:
            info.status, info.error = "incompatible", reason
            return info
        self._register(plugin, info)
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin and every component it registered."""
        info = self.plugins.pop(name)
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        for by_name in self._components.values():
            for comp_name in list(by_name):
                by_name[comp_name] = [c for c in by_name[comp_name] if c.plugin != info.name]
                if not by_name[comp_name]:
                    del by_name[comp_name]

    def _register(self, plugin: object, info: PluginInfo) -> None:
        unknown = [n for n in dir(plugin) if n.startswith("autointerp_") and n not in _SPEC_NAMES]
        for hook in unknown:
            close = difflib.get_close_matches(hook, _SPEC_NAMES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            info.fail(f"unknown hook '{hook}'{hint}")
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            info.fail(f"registration failed: {_one_line(exc)}")
            return
        info.hooks = sorted(
            caller.name for caller in self.pm.get_hookcallers(plugin) or () if caller.name
        )
        module = plugin if hasattr(plugin, "__file__") else sys.modules.get(type(plugin).__module__)
        info.path = getattr(module, "__file__", None)
        for kind, hook_name in REGISTRATION_HOOKS.items():
            self._call_plugin_hook(info, hook_name, register=self._registrar(kind, info))

    def _call_plugin_hook(self, info: PluginInfo, hook_name: str, **kwargs: Any) -> None:
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.plugin_name != info.name:
                continue
            try:
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:
                info.fail(f"{hook_name} failed: {_one_line(exc)}")

    def _registrar(self, kind: str, info: PluginInfo) -> Register:
        def register(
            name: str,
            factory: str | Callable[[Any], Any],
            config: type[ComponentConfig] | None = None,
            description: str = "",
        ) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(
                    f"{kind_label(kind)} names must be non-empty strings, got {name!r}"
                )
            if config is not None and not (
                isinstance(config, type) and issubclass(config, ComponentConfig)
            ):
                raise PluginError(
                    f"{kind_label(kind)} '{name}': config must subclass "
                    f"autointerp.config.ComponentConfig, got {config!r}"
                )
            comp = Component(
                kind=kind,
                name=name,
                factory=factory,
                config=config or EmptyConfig,
                description=description,
                plugin=info.name,
                distribution=info.distribution,
                version=info.version,
            )
            self._components[kind].setdefault(name, []).append(comp)
            info.components.append(comp)

        return register

    def add_commands(self, cli: Any) -> None:
        """Let every loaded plugin add its sub-commands to ``cli`` (failures are recorded)."""
        for info in self.plugins.values():
            if info.status != "disabled":
                self._call_plugin_hook(info, COMMANDS_HOOK, cli=cli)

    # -- lookup --------------------------------------------------------------------------------

    def components(self, kind: str | None = None) -> list[Component]:
        """Every registered component (of one kind), duplicates included, by kind and name."""
        kinds = [kind] if kind else list(COMPONENT_KINDS)
        return [
            c
            for k in kinds
            for name in sorted(self._components[k])
            for c in self._components[k][name]
        ]

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def duplicates(self) -> list[list[Component]]:
        """Groups of components of one kind registered under one name by several plugins."""
        return [
            comps
            for k in COMPONENT_KINDS
            for comps in self._components[k].values()
            if len(comps) > 1
        ]

    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.status == "error"]

    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``, or an error that says what to do instead."""
        if kind not in self._components:
            raise ValueError(f"unknown component kind {kind!r}; expected one of {COMPONENT_KINDS}")
        found = self._components[kind].get(name)
        if found and len(found) == 1:
            return found[0]
        label = kind_label(kind)
        if found:
            owners = " and ".join(f"{c.distribution} (plugin '{c.plugin}')" for c in found)
            raise PluginError(
                f"two plugins register the {label} '{name}': {owners}; uninstall one or set "
                f"{DISABLE_ENV}={found[-1].plugin}"
            )
        available = self.names(kind)
        message = f"no {label} named '{name}'"
        close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
        if close:
            message += f"; did you mean '{close[0]}'?"
        else:
            message += "."
        message += (
            f" Available: {', '.join(available)}." if available else f" No {label}s are installed."
        )
        broken = [p.name for p in self.broken()]
        disabled = [p.name for p in self.plugins.values() if p.status == "disabled"]
        incompatible = [
            f"{p.name} ({p.error})" for p in self.plugins.values() if p.status == "incompatible"
        ]
        if broken:
            message += (
                f" Plugins that failed to load (see `autointerp plugins`): {', '.join(broken)}."
            )
        if incompatible:
            message += f" Incompatible plugins: {'; '.join(incompatible)}."
        if disabled:
            message += f" Disabled plugins: {', '.join(disabled)}."
        raise UnknownComponentError(message)

    def build(self, kind: str, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """Look up, validate options and build a component in one step."""
        return self.get(kind, name).build(options)

    def find(self, name: str) -> list[Component]:
        """Every component called ``name`` (of any kind), else every component of the plugin or
        distribution ``name``; an error with the closest names when nothing matches."""
        found = [c for c in self.components() if c.name == name]
        if not found:
            found = [c for c in self.components() if name in (c.plugin, c.distribution)]
        if found:
            return found
        info = self.plugins.get(name) or next(
            (p for p in self.plugins.values() if p.distribution == name), None
        )
        if info is not None:  # a plugin that registers no component
            why = f": {info.error}" if info.error else ""
            raise UnknownComponentError(
                f"plugin '{info.name}' ({info.distribution}) registers no component"
                + (why or " (it may add commands: see `autointerp --help`)")
            )
        known = sorted(
            {c.name for c in self.components()}
            | set(self.plugins)
            | {p.distribution for p in self.plugins.values()}
        )
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UnknownComponentError(
            f"no component or plugin named '{name}'{hint} (`autointerp plugins` lists them)"
        )

    def selection_problems(
        self, selections: Iterable[tuple[str, str, Selection]], source: str, mode: str = "parity"
    ) -> list[str]:
        """A line per unknown component or bad option among ``selections`` ((field path, kind,
        selection), as ``RunConfig.selections`` gives them)."""
        problems = []
        for where, kind, selection in selections:
            try:
                self.get(kind, selection.name).validate(
                    selection.options, where=f"{source}: {where}", mode=mode
                )
            except ConfigError as exc:
                problems += str(exc).splitlines()
            except AutointerpError as exc:
                problems.append(f"{source}: {where}.name: {exc}")
        return problems

    # -- reporting -----------------------------------------------------------------------------

    def hook_rows(self) -> list[dict[str, Any]]:
        """A row per plugin: where it was loaded from, its status and the hooks it implements."""
        return [
            {
                "plugin": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "module": info.module,
                "path": info.path,
                "status": info.status,
                "error": info.error,
                "hooks": info.hooks,
            }
            for info in sorted(self.plugins.values(), key=lambda p: p.name)
        ]

    def rows(self) -> list[dict[str, Any]]:
        """A row per component, and one per plugin providing none (broken, disabled, CLI-only)."""
        dup_keys = {(c.kind, c.name) for group in self.duplicates() for c in group}
        rows: list[dict[str, Any]] = []
        for info in sorted(self.plugins.values(), key=lambda p: p.name):
            base = {
                "plugin": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "status": info.status,
                "error": info.error,
            }
            for comp in info.components:
                row = {
                    "name": comp.name,
                    "kind": comp.kind,
                    **base,
                    "description": comp.description,
                }
                if (comp.kind, comp.name) in dup_keys and row["status"] == "ok":
                    others = [
                        c.distribution
                        for c in self._components[comp.kind][comp.name]
                        if c.plugin != comp.plugin
                    ]
                    row["status"] = "error"
                    row["error"] = f"name clash with {', '.join(others)}"
                rows.append(row)
            if not info.components:
                kind = "commands" if COMMANDS_HOOK in info.hooks else None
                rows.append({"name": info.name, "kind": kind, **base, "description": ""})
        return rows


#: a requirement line naming core (not autointerp-something)
_CORE_REQUIREMENT = re.compile(rf"{ENTRY_POINT_GROUP}(?![\w.-])")


def _core_version() -> str | None:
    try:
        return dist_version(ENTRY_POINT_GROUP)
    except PackageNotFoundError:
        return None


def incompatibility(plugin: object, dist: Distribution | None = None) -> str | None:
    """Why ``plugin`` cannot work with this core, or None: its ``PLUGIN_API`` range excludes
    :data:`autointerp.hookspecs.PLUGIN_API`, or its distribution ``dist`` requires a version of
    ``autointerp`` other than the one installed (possible after ``pip install --no-deps``)."""
    declared = getattr(plugin, "PLUGIN_API", None)
    if declared is not None:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            spec = SpecifierSet(str(declared))
        except InvalidSpecifier:
            return (
                f"PLUGIN_API = {declared!r} is not a version range; expected e.g. "
                f"'>={PLUGIN_API.split('.')[0]},<{int(PLUGIN_API.split('.')[0]) + 1}'"
            )
        if not spec.contains(PLUGIN_API, prereleases=True):
            return (
                f"written for plugin API {declared}, this autointerp provides {PLUGIN_API}: "
                "upgrade the plugin (or autointerp)"
            )
    core = _core_version()
    if dist is None or core is None or dist.name == ENTRY_POINT_GROUP:
        return None
    for line in dist.requires or ():
        if ";" in line or not _CORE_REQUIREMENT.match(line):  # extras-only needs don't count
            continue
        if not line[len(ENTRY_POINT_GROUP) :].strip(" []"):
            continue  # any version (packaging is imported only for a real range: it costs)
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name == ENTRY_POINT_GROUP and not req.specifier.contains(core, prereleases=True):
            return (
                f"{dist.name} requires {req}, installed: autointerp {core}: "
                f"pip install '{req}' (or a version of {dist.name} made for autointerp {core})"
            )
    return None


def run_finished(
    plugins: PluginManager, run_dir: Path, run_id: int, status: str, skip: Iterable[str] = ()
) -> list[str]:
    """Call every plugin's ``autointerp_run_finished`` once; the lines they return, in plugin
    order. An implementation that raises gives a line ``a run-finished hook failed: ...`` naming
    its plugin, and the others still run (the run's results are stored already)."""
    caller = getattr(plugins.pm.hook, RUN_FINISHED_HOOK)
    kwargs: dict[str, Any] = {
        "run_dir": Path(run_dir),
        "run_id": run_id,
        "status": status,
        "skip": frozenset(skip),
    }
    lines: list[str] = []
    for impl in caller.get_hookimpls():
        try:
            line = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            lines.append(
                f"a run-finished hook failed: plugin '{impl.plugin_name}': {_one_line(exc)}"
            )
            continue
        if line is not None:
            lines.append(str(line))
    return lines


_current: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded from entry points on first use."""
    global _current
    if _current is None:
        _current = PluginManager()
    return _current


def set_plugin_manager(manager: PluginManager | None) -> PluginManager | None:
    """Swap the process-wide manager (tests do this); returns the previous one."""
    global _current
    previous, _current = _current, manager
    return previous
