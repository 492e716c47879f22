"""The rwkv adapter passes the shared conformance suite on a tiny RWKV-4 model."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from autointerp_rwkv.adapter import RwkvAdapter

from autointerp.adapter import AdapterError, UnsupportedModelError
from autointerp.testing.adapters import AdapterConformance, random_ids, tiny_model, tiny_tokenizer


class TestTinyRwkv(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> RwkvAdapter:
        return RwkvAdapter(tiny_model("rwkv", n_layers=3), tiny_tokenizer())


def test_resid_post_equals_the_models_own_hidden_states() -> None:
    model = tiny_model("rwkv", n_layers=3)
    adapter = RwkvAdapter(model, tiny_tokenizer())
    ids = random_ids(2, 7)
    names = [f"resid_post.{i}" for i in range(3)]
    out = adapter.forward(ids, capture=names)
    with torch.no_grad():
        ref = model(ids, output_hidden_states=True)
    # RWKV's hidden_states has no embedding entry: (block 0, ..., block L-1, final norm)
    for i in range(3):
        assert torch.equal(out.captures[names[i]], ref.hidden_states[i])
    assert torch.equal(out.logits, ref.logits)


def test_exact_scale_undoes_inference_rescaling() -> None:
    model = tiny_model("rwkv", n_layers=4)
    ids = random_ids(1, 6)
    with torch.no_grad():
        reference = copy.deepcopy(model)(ids).logits  # rescale_every=0: training scale
    model.config.rescale_every = 2
    with torch.no_grad():
        model(ids)  # transformers rescales the weights in place on the first eval call
    adapter = RwkvAdapter(model, tiny_tokenizer())
    out = adapter.forward(ids, capture=["resid_post.1", "resid_pre.2"])
    torch.testing.assert_close(out.captures["resid_pre.2"], out.captures["resid_post.1"])
    torch.testing.assert_close(out.logits, reference, atol=1e-4, rtol=1e-4)


def test_padding_rules_are_explained() -> None:
    adapter = RwkvAdapter(tiny_model("rwkv"), tiny_tokenizer())
    ids = random_ids(2, 5)
    left = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    with pytest.raises(AdapterError, match="pad on the right"):
        adapter.forward(ids, attention_mask=left)
    right = left.flip(1)
    with pytest.raises(AdapterError, match="equal-length"):
        adapter.forward(ids, attention_mask=right, return_state=True)
    with pytest.raises(AdapterError, match="right padding"):
        RwkvAdapter(tiny_model("rwkv"), tiny_tokenizer(), padding_side="left")


def test_other_models_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="rwkv adapter serves"):
        RwkvAdapter(tiny_model("mamba"), tiny_tokenizer())


def test_sites_command_loads_a_local_directory(tmp_path, autointerp_cli) -> None:
    tiny_model("rwkv").save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    result = autointerp_cli("sites", str(tmp_path), "--adapter", "rwkv", "--json")
    assert result.exit_code == 0, result.stderr
    sites = {s["name"]: s for s in json.loads(result.stdout)["sites"]}
    assert sites["time_mix_state.1"]["shape"] == [4, 32]
    assert sites["attn_out.0"]["module_path"] == "rwkv.blocks.0.attention"


def test_transformer_adapter_points_to_this_one(tmp_path, autointerp_cli) -> None:
    tiny_model("rwkv").save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    result = autointerp_cli("sites", str(tmp_path))
    assert result.exit_code == 1
    assert "use the 'rwkv' adapter" in result.stderr


def test_device_and_dtype_are_the_shared_auto_options(tmp_path) -> None:
    from autointerp_rwkv.plugin import RwkvConfig

    from autointerp.errors import ConfigError
    from autointerp.plugins import PluginManager

    assert (RwkvConfig().device, RwkvConfig().dtype) == ("auto", "auto")
    with pytest.raises(ConfigError, match=r"model\.device: .*expected .*\(got 'cuda:99'\)"):
        PluginManager().get("model_adapter", "rwkv").validate(
            {"device": "cuda:99"}, where="run.toml: model"
        )
    tiny_model("rwkv").save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    adapter = RwkvAdapter.from_config(RwkvConfig(model=str(tmp_path), device="cpu"))
    assert adapter.dtype == torch.float32 and adapter.device.type == "cpu"
