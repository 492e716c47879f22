"""Steering tests: offline, one torch thread; tiny models with a planted direction.

Plain tiny models behind their adapters come from the ``autointerp`` pytest plugin:
``autointerp_tiny_dirs`` (a saved tiny model per architecture) and ``autointerp_tiny_adapter``.
"""

from __future__ import annotations

from typing import Any

import pytest

from autointerp.testing.adapters import ADAPTER_FOR_ARCH, build_tiny, save_tiny, torch_threads

DAMP = 0.6


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Every test here runs on tiny tensors with one torch thread."""
    with torch_threads(1):
        yield


def token_id(text: str) -> int:
    from autointerp.testing.adapters import tiny_tokenizer

    ids = tiny_tokenizer()(text)["input_ids"]
    assert len(ids) == 1
    return ids[0]


def planted_model(arch: str, direction: Any, *, n_layers: int = 2, seed: int = 0) -> Any:
    """A tiny model where the tokens "A" and "B" differ only by ``direction`` (input and output
    embeddings): the residual of "A" carries the planted vector, and adding it favours "A"."""
    import torch

    from autointerp.testing.adapters import tiny_model

    model = tiny_model(arch, seed=seed, n_layers=n_layers)
    a, b = token_id("A"), token_id("B")
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    with torch.no_grad():
        # damp every projection matrix so that blocks respond nearly linearly to the plant
        for p in model.parameters():
            if p.dim() == 2 and id(p) not in embeddings:
                p.mul_(DAMP)
        for emb in {
            id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings())
        }.values():
            # B's row is zero, so even a LayerNorm right after the embedding (RWKV's pre_ln)
            # keeps the A - B difference along ``direction``
            emb.weight[b] = 0.0
            emb.weight[a] = direction
    return model


@pytest.fixture(scope="session")
def direction() -> Any:
    import torch

    u = torch.randn(32, generator=torch.Generator().manual_seed(7))
    u -= u.mean()  # invisible to LayerNorm's mean subtraction
    return 2.0 * u / u.norm()


@pytest.fixture(scope="session", params=list(ADAPTER_FOR_ARCH))
def planted(request: Any, direction: Any, tmp_path_factory: Any) -> Any:
    arch = request.param
    where = save_tiny(planted_model(arch, direction), tmp_path_factory.mktemp(f"planted-{arch}"))
    return build_tiny(arch, where)


@pytest.fixture(scope="session")
def ab_pairs() -> Any:
    return make_ab_pairs


def make_ab_pairs(n: int, seed: int = 0) -> list[Any]:
    """Multiple-choice prompts of varied length answered by "A" or "B"."""
    import random

    from autointerp_steering.data import ContrastPair

    rng = random.Random(seed)
    words = ["sky", "tree", "cat", "red", "moon", "fish", "rain", "king", "blue", "song"]
    pairs = []
    for _ in range(n):
        q = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
        pairs.append(ContrastPair(f"Q: {q}?\n(A) yes (B) no\nAnswer: (", "A", "B"))
    return pairs
