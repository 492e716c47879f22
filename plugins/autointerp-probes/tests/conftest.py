"""Probe tests: offline, one torch thread, tiny models built through the plugin manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autointerp.testing.adapters import build_tiny as build
from autointerp.testing.adapters import save_tiny, torch_threads

ARCHS = ("gpt2", "mamba", "rwkv")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Every test here runs on tiny tensors with one torch thread."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: Any) -> dict[str, Path]:
    from autointerp.testing.adapters import tiny_model

    return {
        arch: save_tiny(tiny_model(arch), tmp_path_factory.mktemp(f"tiny-{arch}")) for arch in ARCHS
    }


@pytest.fixture(scope="session", params=ARCHS)
def tiny(request: Any, tiny_dirs: dict[str, Path]) -> Any:
    return build(request.param, tiny_dirs[request.param])
