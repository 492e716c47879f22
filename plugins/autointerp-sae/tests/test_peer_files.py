"""SAE files written by sae-lens and sparsify themselves load through the `sae` feature source and
encode and decode exactly like the libraries did (fixtures/make_fixtures.py wrote them in a
separate venv; neither library is imported here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from autointerp.plugins import PluginManager

FIXTURES = Path(__file__).parent / "fixtures"
CASES = {
    "saelens-standard": "resid_post.1",
    "saelens-topk": "mlp_out.2",
    "saelens-topk-rescaled": "resid_pre.0",
    "saelens-jumprelu": "resid_post.3",
    "sparsify-topk/layers.3": "resid_post.3",
}


@pytest.mark.parametrize("name", list(CASES))
def test_encode_and_decode_match_the_library(name: str) -> None:
    where = FIXTURES / name
    io = load_file(where / "io.safetensors")
    expected = json.loads((where / "expected.json").read_text())
    sae = PluginManager().build("feature_source", "sae", {"path": str(where), "chunk_tokens": 5})
    assert sae.site == CASES[name]
    assert (sae.d_in, sae.n_latents) == (expected["d_in"], expected["width"])
    got = sae.encode(io["x"])
    dense = torch.zeros_like(io["f"])
    dense[got.rows, got.latents] = got.values
    assert (io["f"] != 0).sum() > len(io["x"])  # several latents fire per token
    assert torch.equal(dense != 0, io["f"] != 0), name  # the same latents fire
    assert torch.allclose(dense, io["f"], atol=1e-5, rtol=1e-5), name
    assert torch.allclose(sae.decode_dense(dense), io["x_hat"], atol=1e-5, rtol=1e-5), name
