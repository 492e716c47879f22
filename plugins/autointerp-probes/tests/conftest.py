"""Probe tests: offline, one torch thread, tiny models built through the plugin manager.

The tiny models come from the ``autointerp`` pytest plugin: ``autointerp_tiny_adapter`` (each
installed adapter over its tiny model) and ``autointerp_tiny_dirs`` (their saved directories).
"""

from __future__ import annotations

from typing import Any

import pytest

from autointerp.testing.adapters import torch_threads


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Every test here runs on tiny tensors with one torch thread."""
    with torch_threads(1):
        yield
