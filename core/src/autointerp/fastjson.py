"""JSON on the LLM hot path through pydantic-core's Rust parser and writer (about twice as fast as
:mod:`json` on logprob-laden responses), with :mod:`json`'s own behaviour kept wherever it matters.

Not for request hashes: :func:`autointerp.store.request_hash` needs ``json.dumps``'s exact bytes
(sorted keys, Python float repr). The text :func:`dumps` writes differs from ``json.dumps``'s only
in spacing, key order and float spelling (``1e-05`` is ``0.00001``); any JSON reader, older
versions of this package included, reads the same values back.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import from_json, to_json


def loads(data: str | bytes) -> Any:
    """``json.loads(data)``: the same values (floats exact, NaN/Infinity accepted). Text the fast
    parser refuses (malformed, a lone surrogate escape, not UTF-8) goes to ``json.loads``, so
    errors are ``json``'s own."""
    try:
        return from_json(data)
    except ValueError:
        return json.loads(data)


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (dicts with string keys, lists, tuples, str, numbers, bool,
    None), in the dicts' own key order. An object neither writer knows raises ``json.dumps``'s
    ``TypeError`` (pydantic-core also writes sets and bytes, as lists and text)."""
    try:
        return to_json(value).decode()
    except Exception:  # an object to_json refuses (e.g. a cycle): json's error, or its text
        return json.dumps(value)
