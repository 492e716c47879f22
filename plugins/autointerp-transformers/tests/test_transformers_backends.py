"""Alternative backends: nnsight and TransformerLens pass the conformance suite and capture what
the hooks backend captures on the same weights."""

from __future__ import annotations

import pytest
from autointerp_transformers.adapter import TransformersAdapter

from autointerp.adapter import UnsupportedModelError
from autointerp.testing.adapters import (
    AdapterConformance,
    assert_same_activations,
    tiny_model,
    tiny_tokenizer,
)

pytest.importorskip("nnsight")


def _adapter_class(arch: str) -> type:
    if arch in ("mamba", "mamba2"):
        from autointerp_mamba.adapter import MambaAdapter

        return MambaAdapter
    if arch == "rwkv":
        from autointerp_rwkv.adapter import RwkvAdapter

        return RwkvAdapter
    return TransformersAdapter


class TestNNsightGPT2(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> TransformersAdapter:
        return TransformersAdapter.wrap(tiny_model("gpt2"), tiny_tokenizer(), backend="nnsight")


class TestNNsightMamba(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> TransformersAdapter:
        return _adapter_class("mamba").wrap(
            tiny_model("mamba"), tiny_tokenizer(), backend="nnsight"
        )


class TestNNsightRwkv(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> TransformersAdapter:
        return _adapter_class("rwkv").wrap(tiny_model("rwkv"), tiny_tokenizer(), backend="nnsight")


class TestTransformerLensLlama(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> TransformersAdapter:
        return TransformersAdapter.wrap(
            tiny_model("llama"), tiny_tokenizer(), backend="transformer_lens"
        )


class TestTransformerLensMamba2(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> TransformersAdapter:
        return _adapter_class("mamba2").wrap(
            tiny_model("mamba2"), tiny_tokenizer(), backend="transformer_lens"
        )


class TestTransformerLensRwkv(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> TransformersAdapter:
        return _adapter_class("rwkv").wrap(
            tiny_model("rwkv"), tiny_tokenizer(), backend="transformer_lens"
        )


ARCHS = ["gpt2", "llama", "mamba", "mamba2", "rwkv"]


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
@pytest.mark.parametrize("arch", ARCHS)
def test_backend_captures_what_hooks_capture(arch: str, backend: str) -> None:
    if backend == "transformer_lens":
        pytest.importorskip("transformer_lens")
    cls = _adapter_class(arch)
    model = tiny_model(arch)
    hooks = cls.wrap(model, tiny_tokenizer())
    other = cls.wrap(model, tiny_tokenizer(), backend=backend)
    assert other.backend == backend
    assert_same_activations(hooks, other)


def test_unknown_backend_is_explained() -> None:
    with pytest.raises(UnsupportedModelError, match="choose one of: hooks, nnsight"):
        TransformersAdapter.wrap(tiny_model("gpt2"), tiny_tokenizer(), backend="tl")
