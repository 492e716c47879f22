"""Original ``mamba_ssm`` checkpoints load through the mamba adapter by conversion into
transformers' Mamba, and the converted model computes what the original layout defines: its
logits and final SSM state equal a reference Mamba written here from the original tensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from autointerp_mamba.adapter import MambaAdapter
from autointerp_mamba.plugin import MambaConfig

from autointerp.adapter import AdapterError
from autointerp.testing.adapters import AdapterConformance, random_ids, tiny_tokenizer

D, LAYERS, VOCAB, D_STATE, D_CONV, RANK = 16, 2, 260, 4, 4, 2
D_INNER = 2 * D


def original_state_dict(seed: int = 0, tied: bool = False) -> dict[str, torch.Tensor]:
    """Random tensors under mamba_ssm's names (MixerModel + lm_head), padded vocabulary."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    sd = {"backbone.embedding.weight": rand(264, D), "backbone.norm_f.weight": 1 + rand(D) * 0.1}
    for i in range(LAYERS):
        p = f"backbone.layers.{i}."
        sd[p + "norm.weight"] = 1 + rand(D, scale=0.1)
        m = p + "mixer."
        sd[m + "in_proj.weight"] = rand(2 * D_INNER, D, scale=D**-0.5)
        sd[m + "conv1d.weight"] = rand(D_INNER, 1, D_CONV, scale=0.5)
        sd[m + "conv1d.bias"] = rand(D_INNER, scale=0.1)
        sd[m + "x_proj.weight"] = rand(RANK + 2 * D_STATE, D_INNER, scale=D_INNER**-0.5)
        sd[m + "dt_proj.weight"] = rand(D_INNER, RANK, scale=0.5)
        sd[m + "dt_proj.bias"] = rand(D_INNER, scale=0.5) - 2
        a = torch.arange(1, D_STATE + 1, dtype=torch.float32).repeat(D_INNER, 1)
        sd[m + "A_log"] = a.log() + rand(D_INNER, D_STATE, scale=0.1)
        sd[m + "D"] = 1 + rand(D_INNER, scale=0.1)
        sd[m + "out_proj.weight"] = rand(D, D_INNER, scale=D_INNER**-0.5)
    if not tied:
        sd["lm_head.weight"] = rand(264, D, scale=D**-0.5)
    return sd


def write_original(where: Path, tied: bool = False, tokenizer: bool = True) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    config = {
        "d_model": D,
        "n_layer": LAYERS,
        "vocab_size": VOCAB,
        "ssm_cfg": {},
        "rms_norm": True,
        "residual_in_fp32": True,
        "fused_add_norm": True,
        "pad_vocab_size_multiple": 8,
        "tie_embeddings": tied,
    }
    (where / "config.json").write_text(json.dumps(config))
    torch.save(original_state_dict(tied=tied), where / "pytorch_model.bin")
    if tokenizer:
        tiny_tokenizer().save_pretrained(where)
    return where


def reference_mamba(sd: dict[str, torch.Tensor], ids: torch.Tensor, tied: bool = False):
    """Mamba as the original layout defines it (mamba_ssm's Block/MixerModel and its reference
    selective scan), token by token: logits [B, T, V] and each layer's final SSM state."""

    def rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    hidden, residual, states = sd["backbone.embedding.weight"][ids], None, []
    for i in range(LAYERS):
        m = f"backbone.layers.{i}.mixer."
        residual = hidden if residual is None else hidden + residual
        h = rms(residual, sd[f"backbone.layers.{i}.norm.weight"])
        x, z = (h @ sd[m + "in_proj.weight"].T).chunk(2, dim=-1)
        x = F.conv1d(
            x.transpose(1, 2), sd[m + "conv1d.weight"], sd[m + "conv1d.bias"],
            padding=D_CONV - 1, groups=D_INNER,
        )[..., : ids.shape[1]].transpose(1, 2)  # fmt: skip
        x = F.silu(x)
        dt, b, c = (x @ sd[m + "x_proj.weight"].T).split([RANK, D_STATE, D_STATE], dim=-1)
        dt = F.softplus(dt @ sd[m + "dt_proj.weight"].T + sd[m + "dt_proj.bias"])
        a = -sd[m + "A_log"].exp()
        s = torch.zeros(ids.shape[0], D_INNER, D_STATE)
        ys = []
        for t in range(ids.shape[1]):
            s = (dt[:, t, :, None] * a).exp() * s + dt[:, t, :, None] * b[:, t, None] * x[
                :, t, :, None
            ]
            ys.append((s * c[:, t, None]).sum(-1) + sd[m + "D"] * x[:, t])
        y = torch.stack(ys, dim=1) * F.silu(z)
        hidden = y @ sd[m + "out_proj.weight"].T
        states.append(s)
    final = rms(hidden + residual, sd["backbone.norm_f.weight"])
    head = sd["backbone.embedding.weight"] if tied else sd["lm_head.weight"]
    return final @ head.T, states


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOINTERP_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("tied", [False, True])
def test_converted_model_equals_the_reference(tmp_path: Path, tied: bool) -> None:
    source = write_original(tmp_path / "orig", tied=tied)
    adapter = MambaAdapter.from_config(MambaConfig(model=str(source), device="cpu"))
    assert adapter.architecture == "mamba" and adapter.vocab_size == 264
    ids = random_ids(2, 9)
    out = adapter.forward(ids, return_state=True)
    sd = original_state_dict(tied=tied)
    with torch.no_grad():
        logits, states = reference_mamba(sd, ids, tied=tied)
    assert out.logits is not None and out.state is not None
    torch.testing.assert_close(out.logits, logits, atol=1e-4, rtol=1e-4)
    for i, s in enumerate(states):
        torch.testing.assert_close(out.state[f"ssm_state.{i}"], s, atol=1e-4, rtol=1e-4)
    # the original embedding reached the model (not a fresh init)
    assert torch.equal(adapter.input_embeddings(), sd["backbone.embedding.weight"])


class TestConvertedMamba(AdapterConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls, tmp_path_factory: pytest.TempPathFactory) -> MambaAdapter:
        root = tmp_path_factory.mktemp("mamba-ssm")
        source = write_original(root / "orig")
        import os

        os.environ["AUTOINTERP_CACHE_DIR"] = str(root / "cache")
        try:
            return MambaAdapter.from_config(MambaConfig(model=str(source), device="cpu"))
        finally:
            os.environ.pop("AUTOINTERP_CACHE_DIR", None)


def test_conversion_is_cached_and_format_is_checked(tmp_path: Path, autointerp_cli) -> None:
    source = write_original(tmp_path / "orig")
    result = autointerp_cli("sites", str(source), "--adapter", "mamba", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["architecture"], info["n_layers"], info["d_model"]) == ("mamba", LAYERS, D)
    cached = list((tmp_path / "cache" / "mamba_ssm").iterdir())
    assert len(cached) == 1 and (cached[0] / "model.safetensors").is_file()
    with pytest.raises(AdapterError, match=r"format = mamba_ssm, but .* not a mamba_ssm config"):
        MambaAdapter.from_config(MambaConfig(model=str(cached[0]), format="mamba_ssm"))


def test_missing_tokenizer_and_bad_layouts_fail_in_one_line(tmp_path: Path) -> None:
    source = write_original(tmp_path / "orig", tokenizer=False)
    with pytest.raises(AdapterError, match=r"model.tokenizer: cannot load tokenizer"):
        MambaAdapter.from_config(MambaConfig(model=str(source)))  # gpt-neox-20b: offline
    tok = tmp_path / "tok"
    tiny_tokenizer().save_pretrained(tok)
    adapter = MambaAdapter.from_config(MambaConfig(model=str(source), tokenizer=str(tok)))
    assert adapter.tokenizer.eos_token == "<|endoftext|>"
    config = json.loads((source / "config.json").read_text())
    config["ssm_cfg"] = {"layer": "Mamba3"}
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError, match=r"ssm_cfg.layer = Mamba3: expected Mamba1 or Mamba2"):
        MambaAdapter.from_config(MambaConfig(model=str(source), tokenizer=str(tok)))


# -- Mamba-2 ---------------------------------------------------------------------------------------

HEADS, HEAD_DIM, STATE2 = 4, 8, 8  # d_inner = HEADS * HEAD_DIM = 2 * D


def original_mamba2(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under mamba_ssm's Mamba-2 names (one group, no MLP inside the mixer)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    conv_dim = D_INNER + 2 * STATE2
    sd = {"backbone.embedding.weight": rand(264, D), "backbone.norm_f.weight": 1 + rand(D) * 0.1}
    for i in range(LAYERS):
        p = f"backbone.layers.{i}."
        sd[p + "norm.weight"] = 1 + rand(D, scale=0.1)
        m = p + "mixer."
        sd[m + "in_proj.weight"] = rand(2 * D_INNER + 2 * STATE2 + HEADS, D, scale=D**-0.5)
        sd[m + "conv1d.weight"] = rand(conv_dim, 1, D_CONV, scale=0.5)
        sd[m + "conv1d.bias"] = rand(conv_dim, scale=0.1)
        sd[m + "dt_bias"] = rand(HEADS, scale=0.5) - 1
        sd[m + "A_log"] = torch.arange(1, HEADS + 1, dtype=torch.float32).log()
        sd[m + "D"] = 1 + rand(HEADS, scale=0.1)
        sd[m + "norm.weight"] = 1 + rand(D_INNER, scale=0.1)
        sd[m + "out_proj.weight"] = rand(D, D_INNER, scale=D_INNER**-0.5)
    sd["lm_head.weight"] = rand(264, D, scale=D**-0.5)
    return sd


def reference_mamba2(sd: dict[str, torch.Tensor], ids: torch.Tensor):
    """Mamba-2 as mamba_ssm defines it (SSD recurrence with a scalar decay per head, gated
    RMSNorm after the gate), token by token: logits and each layer's final SSM state."""

    def rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    b, t = ids.shape
    hidden, residual, states = sd["backbone.embedding.weight"][ids], None, []
    for i in range(LAYERS):
        m = f"backbone.layers.{i}.mixer."
        residual = hidden if residual is None else hidden + residual
        h = rms(residual, sd[f"backbone.layers.{i}.norm.weight"])
        z, xbc, dt = (h @ sd[m + "in_proj.weight"].T).split(
            [D_INNER, D_INNER + 2 * STATE2, HEADS], dim=-1
        )
        xbc = F.conv1d(
            xbc.transpose(1, 2), sd[m + "conv1d.weight"], sd[m + "conv1d.bias"],
            padding=D_CONV - 1, groups=xbc.shape[-1],
        )[..., :t].transpose(1, 2)  # fmt: skip
        x, bb, cc = F.silu(xbc).split([D_INNER, STATE2, STATE2], dim=-1)
        x = x.view(b, t, HEADS, HEAD_DIM)
        dt = F.softplus(dt + sd[m + "dt_bias"])  # [b, t, heads]
        a = -sd[m + "A_log"].exp()
        s = torch.zeros(b, HEADS, HEAD_DIM, STATE2)
        ys = []
        for k in range(t):
            decay = (dt[:, k] * a).exp()[:, :, None, None]
            s = decay * s + (dt[:, k, :, None] * x[:, k])[..., None] * bb[:, k, None, None, :]
            y = (s * cc[:, k, None, None, :]).sum(-1) + sd[m + "D"][:, None] * x[:, k]
            ys.append(y.reshape(b, D_INNER))
        y = torch.stack(ys, dim=1) * F.silu(z)
        hidden = rms(y, sd[m + "norm.weight"]) @ sd[m + "out_proj.weight"].T
        states.append(s)
    final = rms(hidden + residual, sd["backbone.norm_f.weight"])
    return final @ sd["lm_head.weight"].T, states


def test_mamba2_checkpoint_converts_to_the_reference(tmp_path: Path) -> None:
    source = tmp_path / "orig2"
    source.mkdir()
    config = {
        "d_model": D,
        "n_layer": LAYERS,
        "vocab_size": VOCAB,
        "ssm_cfg": {"layer": "Mamba2", "d_state": STATE2, "headdim": HEAD_DIM, "chunk_size": 4},
        "rms_norm": True,
        "residual_in_fp32": True,
        "tie_embeddings": False,
    }
    (source / "config.json").write_text(json.dumps(config))
    sd = original_mamba2()
    torch.save(sd, source / "pytorch_model.bin")
    tiny_tokenizer().save_pretrained(source)
    adapter = MambaAdapter.from_config(MambaConfig(model=str(source), device="cpu"))
    assert adapter.architecture == "mamba2"
    ids = random_ids(2, 9)  # more than two SSD chunks of 4
    out = adapter.forward(ids, return_state=True)
    with torch.no_grad():
        logits, states = reference_mamba2(sd, ids)
    assert out.logits is not None and out.state is not None
    torch.testing.assert_close(out.logits, logits, atol=1e-4, rtol=1e-4)
    for i, s in enumerate(states):
        torch.testing.assert_close(out.state[f"ssm_state.{i}"], s, atol=1e-4, rtol=1e-4)
