"""Fixtures of the ray executor's tests: a real local Ray cluster per test module, a tiny model."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from autointerp.testing.adapters import save_tiny, tiny_model


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ray: starts a local Ray cluster (tens of seconds); CI runs them with the suite"
    )


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local two-CPU cluster; its GCS address. The runs of a module attach to it (``address =
    "auto"`` and ``"local"`` keep this process's connection; a driver process uses the address)."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces it: later tests get it back
    ray.init(
        num_cpus=2, include_dashboard=False, object_store_memory=100 << 20,
        logging_level=logging.WARNING,
    )  # fmt: skip
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, sigterm)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tiny_model("gpt2"), tmp_path_factory.mktemp("model") / "gpt2")
