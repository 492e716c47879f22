"""autointerp: automated interpretability of language models, built from plugins."""

from importlib.metadata import PackageNotFoundError, version

from autointerp.hookspecs import hookimpl

try:
    __version__ = version("autointerp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "hookimpl"]
