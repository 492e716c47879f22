"""Exceptions whose message is one actionable line; the CLI prints them without a traceback."""

from __future__ import annotations


class AutointerpError(Exception):
    """Base class: the message alone tells the user what is wrong and what to do."""


class ConfigError(AutointerpError):
    """A config file or override is invalid: names the file, the field path, what was expected."""


class PluginError(AutointerpError):
    """A plugin failed to import or register, or two plugins claim one component name."""


class UnknownComponentError(AutointerpError):
    """No installed plugin provides the requested component."""


class StoreError(AutointerpError):
    """The results store cannot be opened or is from an incompatible version."""
