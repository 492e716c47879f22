"""autointerp: automated interpretability of language models, built from plugins.

A plugin module needs two names, both importable from here::

    from autointerp import Register, hookimpl

``hookimpl`` marks hook implementations (:mod:`autointerp.hookspecs`); ``Register`` is the type of
the ``register`` callback that registration hooks receive (:mod:`autointerp.plugins`), loaded on
first use so that ``import autointerp`` stays cheap.

Notebooks and scripts run a pipeline and read its results as DataFrames (:mod:`autointerp.api`,
docs/python-api.md), also loaded on first use::

    run = autointerp.run("my.toml")            # or autointerp.open_run("runs/my-run")
    run.scores().merge(run.explanations(), on=["source", "latent", "explainer"])
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from autointerp.hookspecs import hookimpl

if TYPE_CHECKING:
    from autointerp.api import Run, open_run, run
    from autointerp.plugins import Register

try:
    __version__ = version("autointerp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Register", "Run", "__version__", "hookimpl", "open_run", "run"]

#: names loaded from :mod:`autointerp.api` on first use
_API = ("Run", "open_run", "run")


def __getattr__(name: str) -> Any:
    if name == "Register":
        from autointerp.plugins import Register

        return Register
    if name in _API:
        from autointerp import api

        return getattr(api, name)
    raise AttributeError(f"module 'autointerp' has no attribute {name!r}")
