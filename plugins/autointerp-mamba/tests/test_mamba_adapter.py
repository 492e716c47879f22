"""The mamba adapter passes the shared conformance suite on tiny Mamba and Mamba-2 models."""

from __future__ import annotations

import json

import pytest
import torch
from autointerp_mamba.adapter import MambaAdapter

from autointerp.adapter import UnsupportedModelError
from autointerp.testing.adapters import AdapterConformance, random_ids, tiny_model, tiny_tokenizer


class TestTinyMamba(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> MambaAdapter:
        return MambaAdapter(tiny_model("mamba"), tiny_tokenizer())


class TestTinyMamba2(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> MambaAdapter:
        return MambaAdapter(tiny_model("mamba2"), tiny_tokenizer())


@pytest.mark.parametrize("arch", ["mamba", "mamba2"])
def test_resid_post_equals_the_models_own_hidden_states(arch: str) -> None:
    model = tiny_model(arch, n_layers=3)
    adapter = MambaAdapter(model, tiny_tokenizer())
    ids = random_ids(2, 7)
    names = [f"resid_post.{i}" for i in range(3)]
    out = adapter.forward(ids, capture=names)
    with torch.no_grad():
        ref = model(ids, output_hidden_states=True)
    # Mamba's hidden_states has no embedding entry: (block 0, ..., block L-1, final norm)
    for i in range(3):
        assert torch.equal(out.captures[names[i]], ref.hidden_states[i])
    assert torch.equal(out.logits, ref.logits)


def test_left_padding_keeps_the_final_state_exact() -> None:
    adapter = MambaAdapter(tiny_model("mamba"), tiny_tokenizer())
    batch = adapter.tokenize(["a longer first text", "short"])
    out = adapter.forward(batch.input_ids, attention_mask=batch.attention_mask, return_state=True)
    single = adapter.tokenize(["short"])
    ref = adapter.forward(single.input_ids, return_state=True)
    for name, value in ref.state.items():
        torch.testing.assert_close(out.state[name][1:], value, atol=1e-5, rtol=1e-5)


def test_transformers_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="mamba adapter serves"):
        MambaAdapter(tiny_model("gpt2"), tiny_tokenizer())


def test_sites_command_loads_a_local_directory(tmp_path, autointerp_cli) -> None:
    tiny_model("mamba2").save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    result = autointerp_cli("sites", str(tmp_path), "--adapter", "mamba", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["architecture"], info["recurrent"], info["n_layers"]) == ("mamba2", True, 2)
    sites = {s["name"]: s for s in info["sites"]}
    assert sites["ssm_state.1"]["shape"] == [8, 8, 8]  # heads, head_dim, state_size
    assert sites["mixer_out.0"]["module_path"] == "backbone.layers.0.mixer"


def test_from_config_dtype_and_offline_hub_error(tmp_path) -> None:
    from autointerp_mamba.plugin import MambaConfig

    from autointerp.adapter import AdapterError

    tiny_model("mamba").save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    adapter = MambaAdapter.from_config(MambaConfig(model=str(tmp_path), dtype="float64"))
    assert adapter.dtype == torch.float64
    out = adapter.forward(random_ids(1, 4), capture=["resid_post.0"])
    assert out.captures["resid_post.0"].dtype == torch.float64
    with pytest.raises(AdapterError, match="cannot load model 'state-spaces/mamba-130m-hf'"):
        MambaAdapter.from_config(MambaConfig())  # the default hub name; offline in tests


def test_device_and_dtype_are_the_shared_auto_options(tmp_path) -> None:
    from autointerp_mamba.plugin import MambaConfig

    from autointerp.errors import ConfigError
    from autointerp.plugins import PluginManager

    assert (MambaConfig().device, MambaConfig().dtype) == ("auto", "auto")
    with pytest.raises(ConfigError, match=r"model\.device: .*expected .*\(got 'cuda:99'\)"):
        PluginManager().get("model_adapter", "mamba").validate(
            {"device": "cuda:99"}, where="run.toml: model"
        )
    tiny_model("mamba").save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    config = MambaConfig(model=str(tmp_path), device="cpu", dtype="bfloat16")
    adapter = MambaAdapter.from_config(config)
    assert adapter.dtype == torch.bfloat16
    out = adapter.forward(random_ids(1, 4), capture=["mixer_out.0", "resid_post.0"])
    assert out.captures["mixer_out.0"].dtype == torch.bfloat16
    assert torch.isfinite(out.captures["resid_post.0"]).all()  # residual_in_fp32: float32
