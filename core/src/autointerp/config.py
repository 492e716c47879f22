"""Run configuration: a TOML file validated by pydantic, with command-line overrides.

A run config selects one component per stage by name; every other key in a component's table is an
option validated against that component's own config model (see :class:`ComponentConfig`)::

    [explainer]
    name = "default"
    temperature = 0.3

Any value can be overridden with ``--set explainer.temperature=0.3`` (the value is read as TOML,
falling back to a plain string). Errors name the file, the field path and what was expected.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticUndefined, to_jsonable_python

from autointerp.errors import KEY_PATTERN, ConfigError, redact_keys

DEFAULTS_RESOURCE = "defaults.toml"


class ComponentConfig(BaseModel):
    """Base class of every component's options: unknown fields are errors, instances are frozen.

    The field defaults are the ``parity`` mode. ``presets`` maps another mode to the values it
    changes; a preset only fills fields the user did not set (see :func:`with_preset`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}


class EmptyConfig(ComponentConfig):
    """Options of a component that takes none."""


class Selection(BaseModel):
    """A component chosen by ``name`` plus its options (validated later, by the component)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="registered component name")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_options(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, Mapping) and "options" not in data:
            rest = {k: v for k, v in data.items() if k != "name"}
            return {"name": data.get("name"), "options": rest} if "name" in data else data
        return data

    def as_table(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


class CorpusSettings(BaseModel):
    """The text the subject model reads while its activations are cached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        "builtin:python-docs",
        description="txt/jsonl/parquet file or folder, hf:NAME[:SPLIT], or builtin:python-docs",
    )
    text_field: str = Field("text", description="field or column holding the text")
    ctx_len: int = Field(64, ge=2, description="tokens per context")
    batch_size: int = Field(8, ge=1, description="contexts per forward pass")
    n_tokens: int = Field(16384, ge=1, description="tokens to cache")
    bos: bool = Field(False, description="start every context with BOS")


class LatentSettings(BaseModel):
    """Which latents to explain and score, and their examples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(5, ge=1, description="latents to explain (the first that fire often enough)")
    indices: list[int] | None = Field(None, description="explicit latent indices instead of n")
    min_activations: int = Field(10, ge=1, description="skip latents firing fewer times")
    window: int = Field(32, ge=2, description="tokens per example (divides ctx_len)")
    # parity with the peer tools (delphi): 40 train, 50 test, 50 negatives of 32 tokens; the
    # quickstart (no config file) uses smaller numbers, from defaults.toml's [quickstart.latents]
    n_train: int = Field(40, ge=1, description="examples shown to the explainer")
    n_test: int = Field(50, ge=0, description="held-out activating examples for scoring")
    n_negatives: int = Field(50, ge=0, description="non-activating examples for scoring")
    negatives: Literal["random", "similar", "mixed"] = Field(
        "random",
        description="negatives: random silent windows, similar (hold the latent's top tokens), "
        "or mixed (half each)",
    )
    similar_neighbours: int = Field(
        0,
        ge=0,
        description="similar negatives may hold, instead of a top token, one of its N nearest "
        "neighbours in the model's token-embedding space (cosine; 0: top tokens only)",
    )
    test_sampler: Literal["stratified", "quantile-v1"] = Field(
        "stratified",
        description="test examples: stratified (n_test spread over all activation quantiles) or "
        "quantile-v1 (the sampler of runs made before it; a run keeps the sampler it began with)",
    )
    n_quantiles: int = Field(
        10,
        ge=1,
        description="activation quantiles (by window peak) that test examples, and train "
        "examples drawn by quantile, are spread over; every such example records its quantile "
        "(0 = weakest)",
    )
    train_sampler: Literal["top", "quantiles", "random", "mixed"] = Field(
        "top",
        description="examples shown to the explainer: top (the n_train strongest windows); "
        "quantiles (n_train spread evenly over the n_quantiles quantiles of all activating "
        "windows: n_train = k x n_quantiles gives k per quantile); random (uniformly among "
        "activating windows); mixed (the round(train_top_share x n_train) strongest, the rest "
        "spread over the quantiles of the other activating windows)",
    )
    train_top_share: float = Field(
        0.5, ge=0, le=1, description="share of top windows in a mixed train sample"
    )


class RunConfig(BaseModel):
    """Everything a run needs. Stages select components by name; see ``autointerp plugins``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        "quickstart", min_length=1, description="run name; default run dir runs/<name>"
    )
    run_dir: Path | None = Field(None, description="where the cache, store and report go")
    seed: int = Field(0, description="seed for sampling, shuffling and initialisation")
    mode: Literal["parity", "economy", "small-llm"] = Field(
        "parity",
        description="parity: peer-tool defaults; economy: many examples per LLM call with "
        "structured output; small-llm: one example per call, scored by logprobs (the "
        "quickstart's); a mode fills only options you did not set",
    )
    threads: int | None = Field(
        None, ge=1, description="torch threads for the subject model (default: all cores)"
    )
    model: Selection = Field(description="the model adapter and its options")
    feature_source: Selection = Field(
        description="SAE, transcoder or neurons turning sites into latents"
    )
    explainer: Selection = Field(description="the explainer")
    llm: Selection = Field(description="the LLM client used by the explainer and LLM-based scorers")
    scorers: list[Selection] = Field(default_factory=list, description="scorers, run in order")
    executor: Selection | None = Field(None, description="where work runs; default: in process")
    corpus: CorpusSettings = Field(default_factory=CorpusSettings, description="cached text")
    latents: LatentSettings = Field(
        default_factory=LatentSettings, description="latents to explain"
    )
    concurrency: int = Field(
        256, ge=1, description="latents in flight in the LLM stages (batch clients: more)"
    )
    max_failure_rate: float = Field(
        0.1,
        ge=0,
        le=1,
        description="a stage whose share of failed latents exceeds this makes the run exit 1",
    )

    @property
    def resolved_run_dir(self) -> Path:
        return self.run_dir if self.run_dir is not None else Path("runs") / self.name

    def as_table(self) -> dict[str, Any]:
        """The config as plain TOML-able data, in the file's own shape."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        if self.mode != "parity":
            out["mode"] = self.mode
        if self.run_dir is not None:
            out["run_dir"] = str(self.run_dir)
        if self.threads is not None:
            out["threads"] = self.threads
        for key in ("model", "feature_source", "explainer", "llm", "executor"):
            sel = getattr(self, key)
            if sel is not None:
                out[key] = sel.as_table()
        out["scorers"] = [s.as_table() for s in self.scorers]
        out["concurrency"] = self.concurrency
        out["max_failure_rate"] = self.max_failure_rate
        out["corpus"] = self.corpus.model_dump(exclude_none=True)
        out["latents"] = self.latents.model_dump(exclude_none=True)
        if not out["latents"]["similar_neighbours"]:  # the default: runs recorded before the
            del out["latents"]["similar_neighbours"]  # option existed keep their identity
        return out

    def selections(self) -> list[tuple[str, str, Selection]]:
        """(field path, component kind, selection) for every component the run selects."""
        out = [
            ("model", "model_adapter", self.model),
            ("feature_source", "feature_source", self.feature_source),
            ("explainer", "explainer", self.explainer),
            ("llm", "llm_client", self.llm),
        ]
        out += [(f"scorers[{i}]", "scorer", s) for i, s in enumerate(self.scorers)]
        if self.executor is not None:
            out.append(("executor", "executor", self.executor))
        return out


#: the run config's fields that select one component each, with the component kind
SELECTION_KINDS: dict[str, str] = {
    "model": "model_adapter",
    "feature_source": "feature_source",
    "explainer": "explainer",
    "llm": "llm_client",
    "executor": "executor",
}


def raw_selections(data: Mapping[str, Any]) -> list[tuple[str, str, Selection]]:
    """(field path, kind, selection) for every selection of raw config data that is well formed
    on its own, so a config with other errors still has its components checked."""
    found: list[tuple[str, str, Any]] = [
        (key, kind, data[key]) for key, kind in SELECTION_KINDS.items() if key in data
    ]
    scorers = data.get("scorers")
    if isinstance(scorers, list):
        found += [(f"scorers[{i}]", "scorer", s) for i, s in enumerate(scorers)]
    out = []
    for where, kind, raw in found:
        try:
            out.append((where, kind, Selection.model_validate(raw)))
        except ValidationError:
            continue  # reported by RunConfig's own validation
    return out


# -- describing options ----------------------------------------------------------------------------

_BOUNDS = {
    "ge": ">=",
    "gt": ">",
    "le": "<=",
    "lt": "<",
    "min_length": "min length",
    "max_length": "max length",
}


def type_name(annotation: Any) -> str:
    """A short readable name of a field's type: ``int``, ``str | None``, ``'a' | 'b'``."""
    if annotation is None or annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    return getattr(annotation, "__name__", str(annotation))


def describe_options(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One dict per field of ``model``: name, type, default (JSON data; absent when required),
    required, bounds (``>= 1``), description and, for a component config, the value each mode
    preset gives it."""
    presets = getattr(model, "presets", {}) or {}
    out = []
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        bounds = [
            f"{sign} {getattr(meta, attr)}"
            for meta in field.metadata
            for attr, sign in _BOUNDS.items()
            if getattr(meta, attr, None) is not None
        ]
        row: dict[str, Any] = {
            "name": name,
            "type": type_name(field.annotation),
            "required": default is PydanticUndefined,
            "default": None if default is PydanticUndefined else to_jsonable_python(default),
            "bounds": bounds,
            "description": field.description or "",
        }
        modes = {mode: to_jsonable_python(p[name]) for mode, p in presets.items() if name in p}
        if modes:
            row["modes"] = modes
        out.append(row)
    return out


# -- errors ----------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(
    exc: ValidationError, source: str, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """One line per problem: ``source: field.path: what was expected (got value)``."""
    lines = []
    for err in exc.errors():
        parts = [p for p in err["loc"] if p not in ("options",)]
        loc = _loc(parts)
        loc = f"{prefix}.{loc}" if prefix and parts else (prefix or loc)
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            known = _known_fields(model, parts)
            close = difflib.get_close_matches(str(parts[-1]), known, n=1) if known else []
            if close:
                msg += f"; did you mean '{close[0]}'?"
            elif known:
                msg += f"; expected one of: {', '.join(known)}"
        elif err["type"] == "missing":
            lines.append(f"{source}: {loc}: field required")
            continue
        else:
            msg = err["msg"]
        lines.append(f"{source}: {loc}: {msg} (got {redact_keys(_short(err.get('input')))})")
    return "\n".join(lines)


def _known_fields(model: type[BaseModel] | None, parts: Sequence[Any]) -> list[str]:
    """The field names beside the unknown one at ``parts`` (nested tables included, such as
    ``latents.n_trian``), for a suggestion."""
    for part in parts[:-1]:
        field = model.model_fields.get(str(part)) if model is not None else None
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields) if model is not None else []


def with_preset(
    model: type[ComponentConfig], options: Mapping[str, Any], mode: str = "parity"
) -> dict[str, Any]:
    """``options`` with the ``mode`` preset of ``model`` filled in where the user set nothing."""
    preset = getattr(model, "presets", {}).get(mode, {})
    return {**preset, **options}


def validate_options(
    model: type[ComponentConfig],
    options: Mapping[str, Any],
    *,
    where: str,
    mode: str = "parity",
) -> Any:
    """Validate a component's options (after filling in the ``mode`` preset); ``where`` is
    ``"file: field.path"`` for error messages."""
    try:
        return model.model_validate(with_preset(model, options, mode))
    except ValidationError as exc:
        source, _, prefix = where.rpartition(": ")
        raise ConfigError(
            format_validation_error(exc, source or "options", prefix, model)
        ) from None


# -- loading ---------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """Read an override value as TOML (``3``, ``0.3``, ``true``, ``[1, 2]``), else as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` to raw config data; list items by index (``scorers.0.n=5``)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set {assignment!r}: expected FIELD.PATH=VALUE, e.g. explainer.temperature=0.3"
        )
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"--set {key}: '{'.'.join(parts[:i])}' has {len(node)} items; "
                    f"'{part}' is not a valid index"
                )
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
            if isinstance(node, str):  # `model = "transformers"` shorthand, now getting options
                node = data_replace(data, parts[: i + 1], {"name": node})
        if not isinstance(node, dict | list):
            raise ConfigError(f"--set {key}: '{'.'.join(parts[: i + 1])}' is not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {key}: '{last}' is not a valid index")
        node[int(last)] = parse_value(raw.strip())
    else:
        node[last] = parse_value(raw.strip())


def data_replace(data: dict[str, Any], path: Sequence[str], value: Any) -> Any:
    node: Any = data
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value
    return value


def default_data(quickstart: bool = False) -> dict[str, Any]:
    """The embedded defaults as raw TOML data; with ``quickstart``, its ``[quickstart.*]`` tables
    (the small sizes of a run without a config file) laid over the tables they name."""
    text = files("autointerp").joinpath(DEFAULTS_RESOURCE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    overlay = data.pop("quickstart", {})
    if quickstart:
        for key, value in overlay.items():  # a table is merged, anything else replaced
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def merge_file(data: dict[str, Any], file_data: Mapping[str, Any]) -> None:
    """Lay a config file's data over the defaults: a table is merged into the default table of
    the same key when it keeps its component (no ``name``, or the same one), so
    ``[explainer] temperature = 0.3`` keeps the default explainer; a table naming another
    component, and anything that is not a table, replaces the default."""
    for key, value in file_data.items():
        current = data.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            same = value.get("name", current.get("name")) == current.get("name")
            data[key] = {**current, **value} if same else value
        else:
            data[key] = value


def load_data(
    path: Path | None = None,
    overrides: Sequence[str] = (),
    selections: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The raw config data :func:`load_config` validates: the defaults (with the quickstart's
    sizes when there is no file), the file laid over them table by table (:func:`merge_file`),
    ``selections`` and ``--set`` overrides. Raises on an unreadable file, bad TOML or a bad
    override; everything else is for validation."""
    data = default_data(quickstart=path is None)
    if path is not None:
        merge_file(data, read_toml(path))
    for key, value in (selections or {}).items():
        if key == "scorers":
            data[key] = [{"name": v} for v in value]
        elif value is not None:
            current = data.get(key)
            same = isinstance(current, dict) and current.get("name") == value
            data[key] = current if same else {"name": value}
    for assignment in overrides:
        apply_override(data, assignment)
    return data


def check_config(data: Mapping[str, Any], source: str) -> tuple[RunConfig | None, list[str]]:
    """Validate raw config data: the config (None when it is invalid) and every problem found,
    one line each (API keys anywhere, then the fields, all at once)."""
    problems = key_problems(data, source)
    try:
        config: RunConfig | None = RunConfig.model_validate(data)
    except ValidationError as exc:
        config = None
        problems += format_validation_error(exc, source, model=RunConfig).splitlines()
    return config, problems


def load_config(
    path: Path | None = None,
    overrides: Sequence[str] = (),
    selections: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Read ``path`` (or, without one, the embedded defaults with the quickstart's small sizes),
    apply selections and ``--set`` overrides, validate; every problem is reported at once, one
    line each.

    A file is laid over the defaults table by table: a file that only sets ``[explainer]`` keeps
    the default model, source, LLM and scorers, and a component table without ``name`` (or with
    the default's) keeps the default component and adds options to it. ``selections`` maps a
    stage to a component name (``{"explainer": "default", "scorers": ["detection"]}``); choosing
    a new name drops the previous component's options, which belonged to the other component.
    """
    data = load_data(path, overrides, selections)
    config, problems = check_config(data, str(path) if path is not None else "defaults")
    if problems or config is None:
        raise ConfigError("\n".join(problems))
    return config


def key_problems(data: Any, source: str, path: str = "") -> list[str]:
    """A line for every API key anywhere in a config (it would be written to config.toml and the
    store), naming the field, never the value."""
    if isinstance(data, Mapping):
        return [
            line
            for key, value in data.items()
            for line in key_problems(value, source, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(data, list):
        return [
            line
            for i, value in enumerate(data)
            for line in key_problems(value, source, f"{path}[{i}]")
        ]
    if isinstance(data, str) and KEY_PATTERN.search(data):
        return [
            f"{source}: {path}: holds what looks like an API key; never put keys in a config (it "
            "is saved with the run): set the provider's variable (e.g. $OPENAI_API_KEY) or add it "
            "to ~/.config/autointerp/keys.toml"
        ]
    return []


def refuse_keys(data: Any, source: str, path: str = "") -> None:
    """Raise ConfigError naming every field that holds an API key (see :func:`key_problems`)."""
    problems = key_problems(data, source, path)
    if problems:
        raise ConfigError("\n".join(problems))


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write plain config data (scalars, lists, tables, lists of tables) as TOML."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, table in tables:
        lines += ["", f"[{_key(key)}]", *(f"{_key(k)} = {_value(v)}" for k, v in table.items())]
    for key, items in arrays:
        for item in items:
            lines += [
                "",
                f"[[{_key(key)}]]",
                *(f"{_key(k)} = {_value(v)}" for k, v in item.items()),
            ]
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        raise ConfigError("TOML has no null: remove the field instead of setting it to None")
    return _value(str(value))
