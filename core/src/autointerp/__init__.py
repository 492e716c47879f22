"""autointerp: automated interpretability of language models, built from plugins.

A plugin module needs two names, both importable from here::

    from autointerp import Register, hookimpl

``hookimpl`` marks hook implementations (:mod:`autointerp.hookspecs`); ``Register`` is the type of
the ``register`` callback that registration hooks receive (:mod:`autointerp.plugins`), loaded on
first use so that ``import autointerp`` stays cheap.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from autointerp.hookspecs import hookimpl

if TYPE_CHECKING:
    from autointerp.plugins import Register

try:
    __version__ = version("autointerp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Register", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name == "Register":
        from autointerp.plugins import Register

        return Register
    raise AttributeError(f"module 'autointerp' has no attribute {name!r}")
