"""Lens tests: offline, one torch thread; synthetic adapters and their helpers.

Tiny random-weight models behind their adapters come from the ``autointerp`` pytest plugin:
``autointerp_tiny_adapter`` (each installed adapter over its tiny model) and
``autointerp_tiny_dirs`` (their saved directories).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from autointerp.testing.adapters import build_tiny as build
from autointerp.testing.adapters import torch_threads


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """Every test here runs on tiny tensors with one torch thread."""
    with torch_threads(1):
        yield


class _Tokenizer:
    """Characters as tokens (id = code point mod vocab), enough for the lens code paths."""

    pad_token_id = eos_token_id = 0

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def decode(self, ids: Any) -> str:
        return "".join(chr(32 + int(i) % 90) for i in ids)


def linear_stack(
    *, n_layers: int = 3, d: int = 16, vocab: int = 40, identity_like: bool, seed: int = 0
) -> Any:
    """A synthetic adapter whose layers are affine maps: ``h <- A h + c``, with ``A = I`` when
    ``identity_like``; unembedding = LayerNorm + a random matrix, under the caller's grad mode
    as the contract says. A tuned lens can represent its layer-to-output maps exactly."""
    import torch

    from autointerp.adapter import Batch, ForwardResult, ModelAdapter
    from autointerp.types import Site

    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(vocab, d, generator=g)
    scale = 0.0 if identity_like else 1.0
    maps = [torch.eye(d) + scale * torch.randn(d, d, generator=g) / d**0.5 for _ in range(n_layers)]
    shifts = [scale * torch.randn(d, generator=g) for _ in range(n_layers)]
    w_u = 2.0 * torch.randn(vocab, d, generator=g)

    class Adapter(ModelAdapter):
        name = "linear-stack"
        architecture = "linear"

        def __init__(self) -> None:
            self.n_layers, self.d_model, self.vocab_size = n_layers, d, vocab
            self.tokenizer = _Tokenizer(vocab)
            self.sites = {
                f"{k}.{i}": Site(f"{k}.{i}", (d,), f"layers.{i}")
                for i in range(n_layers)
                for k in ("resid_pre", "resid_post")
            }

        def forward(
            self,
            input_ids,
            *,
            attention_mask=None,
            capture=(),
            interventions=(),
            state=None,
            return_state=False,
            return_logits=True,
        ):
            self.check_interventions(interventions, input_ids.shape[1])
            caps = {}
            h = emb[input_ids]
            for i in range(n_layers):
                for kind, fn in (("resid_pre", None), ("resid_post", i)):
                    if fn is not None:
                        h = h @ maps[i].T + shifts[i]
                    name = f"{kind}.{i}"
                    for iv in interventions:
                        if iv.site == name:
                            h = iv.apply(h)
                    if name in capture:
                        caps[name] = h
            return ForwardResult(self.unembed(h) if return_logits else None, caps)

        def unembed(self, resid):
            return torch.nn.functional.layer_norm(resid, (d,)) @ w_u.T

        def tokenize(self, texts, *, max_length=None):
            rows = [[ord(c) % vocab for c in t] for t in texts]
            width = max(map(len, rows))
            ids = torch.zeros(len(rows), width, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, row in enumerate(rows):
                ids[r, : len(row)] = torch.tensor(row)
                mask[r, : len(row)] = 1
            return Batch(ids, mask)

    return Adapter()


def random_windows(vocab: int, n: int, *, batch: int = 8, seq: int = 16, seed: int = 0) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (batch, seq), generator=g) for _ in range(n)]


@pytest.fixture(scope="session")
def helpers() -> Any:
    class H:
        pass

    h = H()
    h.linear_stack = linear_stack  # type: ignore[attr-defined]
    h.random_windows = random_windows  # type: ignore[attr-defined]
    h.build = build  # type: ignore[attr-defined]
    return h


@pytest.fixture
def no_test_tools_env(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import pytest`` fails, as after the README's install."""
    blocked = tmp_path / "no-test-tools"
    for name in ("pytest", "_pytest"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed (blocked by the test)')\n"
        )
    path = os.pathsep.join(p for p in (str(blocked), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path}
