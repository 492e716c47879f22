"""Registers ``autointerp steer`` (light: no torch import here)."""

from __future__ import annotations

from typing import Any

from autointerp import hookimpl

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


@hookimpl
def autointerp_register_commands(cli: Any) -> None:
    from autointerp_steering.commands import app

    cli.add_typer(app, name="steer")
