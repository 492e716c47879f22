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


#: how a full disk (or quota, or file-size limit) reads in errors of the OS, SQLite, safetensors
_DISK_FULL = ("no space left on device", "database or disk is full", "disk quota exceeded",
              "file too large")  # fmt: skip


def disk_full(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s chain (itself, its cause or context) saying the disk is full."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (
            errno.ENOSPC, errno.EDQUOT, errno.EFBIG
        ):  # fmt: skip
            return current
        text = str(current).lower()
        if any(s in text for s in _DISK_FULL) or ("disk i/o error" in text and file_size_limited()):
            return current
        current = current.__cause__ or current.__context__
    return None


def file_size_limited() -> bool:
    """Whether this process has a file-size limit (``ulimit -f``): SQLite reports hitting it as a
    plain "disk I/O error"."""
    try:
        import resource
    except ImportError:  # not on Windows
        return False
    return resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY


def disk_full_message(exc: BaseException) -> str:
    """One line for a write that failed on a full disk: where, and what to do."""
    where = getattr(exc, "filename", None)
    detail = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    return (
        f"the disk is full{f' writing {where}' if where else ''} ({detail}): free some space and "
        "rerun the same command; finished work is kept"
    )
