"""RWKV-5/6/7 from BlinkDL checkpoints: the module tree reproduces the ``rwkv`` package's own
outputs, and the adapter over it passes the shared conformance suite."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from autointerp_rwkv.blinkdl import RwkvLMAdapter
from autointerp_rwkv.lm import VERSIONS, build
from autointerp_rwkv.loading import load_state_dict
from autointerp_rwkv.tiny import tiny_state_dict

from autointerp.testing.adapters import AdapterConformance, random_ids, tiny_tokenizer


def _adapter(version: str) -> RwkvLMAdapter:
    return RwkvLMAdapter(build(tiny_state_dict(version, n_layers=3)), tiny_tokenizer())


class TestTinyRwkv5(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> RwkvLMAdapter:
        return _adapter("rwkv5")


class TestTinyRwkv6(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> RwkvLMAdapter:
        return _adapter("rwkv6")


class TestTinyRwkv7(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> RwkvLMAdapter:
        return _adapter("rwkv7")


# -- the rwkv package as the reference -------------------------------------------------------------


@contextlib.contextmanager
def _rwkv_env(v7: bool) -> Iterator[None]:
    """The ``rwkv`` package reads its switches from the environment (at import and when a model
    is built): RWKV-7 or RWKV-4..6, no TorchScript, no CUDA kernels. Restored afterwards."""
    keep = {k: os.environ.get(k) for k in ("RWKV_JIT_ON", "RWKV_V7_ON", "RWKV_CUDA_ON")}
    os.environ.update(RWKV_JIT_ON="0", RWKV_V7_ON="1" if v7 else "0", RWKV_CUDA_ON="0")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for k, v in keep.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _reference(version: str, path: Path) -> Any:
    """The ``rwkv`` package's model over ``path``, from a fresh copy of ``rwkv.model`` (the
    version switch is read at import time, so RWKV-7 and RWKV-5/6 each get their own)."""
    v7 = version == "rwkv7"
    spec = importlib.util.find_spec("rwkv.model")
    assert spec is not None and spec.origin
    with _rwkv_env(v7):
        copy = importlib.util.spec_from_file_location(f"_rwkv_reference_{int(v7)}", spec.origin)
        assert copy is not None and copy.loader is not None
        module = importlib.util.module_from_spec(copy)
        copy.loader.exec_module(module)
        if v7:
            return module.RWKV_x070(str(path.with_suffix("")), "cpu fp32")
        return module.RWKV(str(path), "cpu fp32", verbose=False)


@pytest.mark.parametrize("version", VERSIONS)
def test_logits_and_state_equal_the_rwkv_package(version: str, tmp_path: Path) -> None:
    """Sequence mode (40 tokens: more than one WKV chunk) and one-token mode of the reference
    both match the adapter: logits, and every layer's shift and WKV states."""
    path = tmp_path / f"{version}.pth"
    torch.save(tiny_state_dict(version, n_layers=3, seed=1), path)
    reference = _reference(version, path)
    ids = random_ids(1, 40, seed=3)
    with _rwkv_env(version == "rwkv7"):
        ref_logits, ref_state = reference.forward(ids[0].tolist(), None, full_output=True)
    adapter = RwkvLMAdapter(build(load_state_dict(path)), tiny_tokenizer())
    out = adapter.forward(ids, return_state=True)
    assert out.logits is not None and out.state is not None
    torch.testing.assert_close(out.logits[0], ref_logits, atol=5e-5, rtol=1e-4)
    for i in range(3):
        names = (f"time_mix_shift.{i}", f"wkv_state.{i}", f"channel_mix_shift.{i}")
        for name, ref in zip(names, ref_state[3 * i : 3 * i + 3], strict=True):
            torch.testing.assert_close(out.state[name][0], ref, atol=5e-5, rtol=1e-4)
    # the reference's one-token path, continued from its own state
    with _rwkv_env(version == "rwkv7"):
        ref_step, _ = reference.forward([int(ids[0, -1])], list(ref_state))
    mine = adapter.step(ids[:, -1], out.state)
    assert mine.logits is not None
    torch.testing.assert_close(mine.logits[0, 0], ref_step, atol=5e-5, rtol=1e-4)


def test_state_carries_information() -> None:
    """The tiny models' recurrent state matters: a different prefix changes later logits."""
    adapter = _adapter("rwkv7")
    a, b = random_ids(1, 6, seed=1), random_ids(1, 6, seed=2)
    tail = random_ids(1, 4, seed=3)
    la = adapter.forward(tail, state=adapter.forward(a, return_state=True).state).logits
    lb = adapter.forward(tail, state=adapter.forward(b, return_state=True).state).logits
    assert la is not None and lb is not None
    assert (la[:, -1] - lb[:, -1]).abs().max() > 1e-3
