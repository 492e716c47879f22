"""Command-line options shared by plugin commands that build a model adapter (-a, -m, -o, --threads)
and parse layer or number lists."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from autointerp.errors import ConfigError

AdapterOpt = Annotated[
    str, typer.Option("--adapter", "-a", help="Model adapter: transformers, mamba, rwkv ...")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="The adapter's `model` option: hub name or local path."),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", metavar="KEY=VALUE", help="Another adapter option (repeat)."),
]
ThreadsOpt = Annotated[int | None, typer.Option(help="torch threads (default: torch's choice).")]


def parse_options(options: list[str] | None, flag: str = "--option") -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict, values read as TOML (``3``, ``true``, ``"x"``)."""
    from autointerp.config import parse_value

    opts: dict[str, Any] = {}
    for item in options or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        opts[key.strip()] = parse_value(value)
    return opts


def load_adapter(
    adapter: str, model: str | None, options: list[str] | None, threads: int | None = None
) -> Any:
    """Build ``adapter`` with ``model`` and ``KEY=VALUE`` options (values read as TOML)."""
    from autointerp.plugins import get_plugin_manager

    opts = parse_options(options)
    if model is not None:
        opts["model"] = model
    if threads:
        import torch

        torch.set_num_threads(threads)
    return get_plugin_manager().build("model_adapter", adapter, opts)


def parse_floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from None


def parse_layers(text: str | None, n_layers: int) -> list[int]:
    """``all`` / None, ``0,2,5``, ``2-6`` or negative indices (``-1`` = last layer)."""
    if text is None or text.strip() == "all":
        return list(range(n_layers))
    layers: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part[0] + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1]
                layers.extend(range(int(lo), int(hi) + 1))
            elif part:
                layers.append(int(part))
    except ValueError:
        raise ConfigError(f"--layers: expected 'all', '0,2,5' or '2-6', got {text!r}") from None
    layers = [x + n_layers if x < 0 else x for x in layers]
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise ConfigError(f"--layers: {bad} out of range for a model of {n_layers} layers")
    return layers
