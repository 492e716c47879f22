"""Probe tests: offline, one torch thread, tiny models built through the plugin manager."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path
from typing import Any

import pytest

ARCHS = ("gpt2", "mamba", "rwkv")
ADAPTER_FOR = {"gpt2": "transformers", "mamba": "mamba", "rwkv": "rwkv"}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Tiny tensors: one torch thread is several times faster than two on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(arch: str, model_dir: Path) -> Any:
    from autointerp.plugins import PluginManager

    pm = PluginManager()
    name = ADAPTER_FOR[arch]
    if name not in pm.names("model_adapter"):
        pytest.skip(f"the '{name}' adapter plugin is not installed")
    return pm.build("model_adapter", name, {"model": str(model_dir)})


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: Any) -> dict[str, Path]:
    from autointerp.testing.adapters import tiny_model, tiny_tokenizer

    dirs = {}
    for arch in ARCHS:
        where = tmp_path_factory.mktemp(f"tiny-{arch}")
        tiny_model(arch).save_pretrained(where)
        tiny_tokenizer().save_pretrained(where)
        dirs[arch] = where
    return dirs


@pytest.fixture(scope="session", params=ARCHS)
def tiny(request: Any, tiny_dirs: dict[str, Path]) -> Any:
    return build(request.param, tiny_dirs[request.param])
