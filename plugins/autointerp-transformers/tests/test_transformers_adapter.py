"""The transformers adapter passes the shared conformance suite on tiny GPT-2 and Llama models."""

from __future__ import annotations

import pytest
import torch
from autointerp_transformers.adapter import TransformersAdapter

from autointerp.adapter import Add, UnsupportedModelError
from autointerp.testing.adapters import AdapterConformance, random_ids, tiny_model, tiny_tokenizer


class TestTinyGPT2(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> TransformersAdapter:
        return TransformersAdapter(tiny_model("gpt2"), tiny_tokenizer())


class TestTinyLlama(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> TransformersAdapter:
        return TransformersAdapter(tiny_model("llama", n_layers=3), tiny_tokenizer())


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_resid_post_equals_the_models_own_hidden_states(arch: str) -> None:
    model = tiny_model(arch, n_layers=3)
    adapter = TransformersAdapter(model, tiny_tokenizer())
    ids = random_ids(2, 7)
    names = [f"resid_post.{i}" for i in range(3)]
    out = adapter.forward(ids, capture=names)
    with torch.no_grad():
        ref = model(ids, output_hidden_states=True)
    # hidden_states = (embeddings, block 0, ..., block L-2, final norm(block L-1))
    for i in range(2):
        assert torch.equal(out.captures[names[i]], ref.hidden_states[i + 1])
    assert torch.equal(out.logits, ref.logits)


@pytest.mark.parametrize("arch", ["mamba", "rwkv"])
def test_recurrent_models_are_refused_with_a_pointer(arch: str) -> None:
    with pytest.raises(UnsupportedModelError, match="recurrent"):
        TransformersAdapter(tiny_model(arch), tiny_tokenizer())


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedModelError, match="backend 'bogus'"):
        TransformersAdapter.wrap(tiny_model("gpt2"), tiny_tokenizer(), backend="bogus")


def test_hooks_are_removed_even_when_a_call_fails() -> None:
    model = tiny_model("gpt2")
    adapter = TransformersAdapter(model, tiny_tokenizer())
    ids = random_ids(1, 5)
    adapter.forward(ids, capture=["resid_pre.1", "attn_out.0"])
    with pytest.raises(RuntimeError):
        adapter.forward(ids, capture=["resid_post.0"], interventions=[_unbroadcastable_add()])
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def _unbroadcastable_add() -> Add:
    """An Add whose vector cannot broadcast: fails inside the model's forward pass."""
    return Add("resid_post.0", vector=torch.zeros(3, 32))
