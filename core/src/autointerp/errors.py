"""Exceptions whose message is one actionable line; the CLI prints them without a traceback."""

from __future__ import annotations

import re

#: strings shaped like an API key (OpenAI/Anthropic ``sk-...``, Hugging Face ``hf_...``, Google
#: ``AIza...``): redacted from every message, and refused anywhere in a config
KEY_PATTERN = re.compile(
    r"\b(sk-[A-Za-z0-9_\-]{6}|hf_[A-Za-z0-9]{4}|AIza[0-9A-Za-z_\-]{4})[A-Za-z0-9_\-]{10,}"
)


def redact_keys(text: str) -> str:
    """``text`` with anything shaped like an API key cut to its first characters."""
    return KEY_PATTERN.sub(r"\1…[REDACTED]", text)


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
