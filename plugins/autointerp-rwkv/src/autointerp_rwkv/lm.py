"""RWKV-5, RWKV-6 and RWKV-7 language models as torch module trees, from BlinkDL checkpoints.

BlinkDL's ``.pth`` files (``RWKV-x052-...``, ``RWKV-x060-...``, ``RWKV-x070-...``) are plain state
dicts; the ``rwkv`` package runs them as flat scripted functions, with no module per block to hook.
This module holds the same computation as a tree (``emb``, ``ln0``, ``blocks.L.{ln1, att, ln2,
ffn}``, ``ln_out``, ``head``) so every block and sub-layer is a module, and loads those state
dicts unchanged (parameter names are the checkpoint's keys). Its outputs are checked against the
``rwkv`` package's own forward in the plugin's tests.

A block returns ``(x, state)``; its time mix returns ``(out, shift, wkv, v_first)`` and its channel
mix ``(out, shift)``: the first element is the activation a hook sees. The recurrent state per layer
is (time-mix token shift ``[B, d]``, WKV state ``[B, H, N, N]`` float32, channel-mix token shift
``[B, d]``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from autointerp.adapter import AdapterError
from autointerp_rwkv.wkv import wkv5, wkv7

VERSIONS = ("rwkv5", "rwkv6", "rwkv7")
_BLOCK = re.compile(r"blocks\.(\d+)\.")
#: RWKV-5/6 tensors kept in float32 whatever the model dtype (decays, bonus and the WKV output's
#: group norm), as the reference implementation keeps them
_FLOAT32 = re.compile(r"\.(time_decay|time_faaaa|ln_x\.\w+)$")


@dataclass
class RwkvLMConfig:
    """Sizes of a checkpoint, read from its tensors (BlinkDL files carry no config)."""

    model_type: str
    num_hidden_layers: int
    hidden_size: int
    vocab_size: int
    n_heads: int
    head_size: int
    ffn_size: int


class LayerState(NamedTuple):
    att_shift: torch.Tensor
    wkv: torch.Tensor
    ffn_shift: torch.Tensor


class LMOutput(NamedTuple):
    logits: torch.Tensor | None
    state: list[LayerState]


def detect(sd: Mapping[str, torch.Tensor], *, where: str = "checkpoint") -> RwkvLMConfig:
    """The version and sizes of a BlinkDL RWKV state dict (one-line error for anything else)."""
    keys = set(sd)
    if "emb.weight" not in keys or "blocks.0.ln0.weight" not in keys:
        raise AdapterError(
            f"{where}: not a BlinkDL RWKV checkpoint (no emb.weight / blocks.0.ln0.weight); "
            "expected a RWKV-x052/x060/x070 .pth state dict"
        )
    if "blocks.0.att.r_k" in keys:
        if any(".s_emb" in k for k in keys):
            raise AdapterError(f"{where}: RWKV-7 DeepEmbed checkpoints are not supported")
        model_type = "rwkv7"
        n_heads, head_size = sd["blocks.0.att.r_k"].shape
    elif "blocks.0.att.time_maa_x" in keys:
        model_type = "rwkv6"
        n_heads, head_size = sd["blocks.0.att.time_faaaa"].shape
    elif "blocks.0.att.ln_x.weight" in keys:
        decay = sd["blocks.0.att.time_decay"]
        if "blocks.0.att.gate.weight" not in keys or decay.dim() != 2 or decay.shape[1] == 1:
            raise AdapterError(
                f"{where}: RWKV-5.0/5.1 preview checkpoints are not supported; "
                "expected RWKV-5.2 (x052) or later"
            )
        model_type = "rwkv5"
        n_heads, head_size = decay.shape
    else:
        raise AdapterError(
            f"{where}: an RWKV-4 checkpoint; load RWKV-4 in transformers' format "
            "(e.g. RWKV/rwkv-4-169m-pile) with version = 4"
        )
    vocab, d = sd["emb.weight"].shape
    layers = 1 + max(int(m.group(1)) for k in keys if (m := _BLOCK.match(k)))
    return RwkvLMConfig(
        model_type=model_type,
        num_hidden_layers=layers,
        hidden_size=int(d),
        vocab_size=int(vocab),
        n_heads=int(n_heads),
        head_size=int(head_size),
        ffn_size=int(sd["blocks.0.ffn.key.weight"].shape[0]),
    )


def _shifted(x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """Each token's predecessor: ``[prev, x_0, ..., x_{T-2}]``."""
    return torch.cat([prev.unsqueeze(1).to(x.dtype), x[:, :-1]], dim=1)


def _vec(d: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(1, 1, d))


def _group_norm(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    b, t, c = x.shape
    return norm(x.reshape(b * t, c)).reshape(b, t, c)


class TimeMix5(nn.Module):
    """RWKV-5.2 / RWKV-6 time mixing (multi-head WKV with a per-key-channel decay)."""

    def __init__(self, config: RwkvLMConfig) -> None:
        super().__init__()
        d, h, n = config.hidden_size, config.n_heads, config.head_size
        self.v6 = config.model_type == "rwkv6"
        self.n_heads, self.head_size = h, n
        if self.v6:
            self.time_maa_x = _vec(d)
            self.time_maa_w = _vec(d)
            self.time_maa_k = _vec(d)
            self.time_maa_v = _vec(d)
            self.time_maa_r = _vec(d)
            self.time_maa_g = _vec(d)
            self.time_maa_w1 = nn.Parameter(torch.zeros(d, 5 * 32))
            self.time_maa_w2 = nn.Parameter(torch.zeros(5, 32, d))
            self.time_decay = nn.Parameter(torch.zeros(1, 1, d))
            self.time_decay_w1 = nn.Parameter(torch.zeros(d, 64))
            self.time_decay_w2 = nn.Parameter(torch.zeros(64, d))
        else:
            self.time_mix_k = _vec(d)
            self.time_mix_v = _vec(d)
            self.time_mix_r = _vec(d)
            self.time_mix_g = _vec(d)
            self.time_decay = nn.Parameter(torch.zeros(h, n))
        self.time_faaaa = nn.Parameter(torch.zeros(h, n))
        self.receptance = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)
        self.ln_x = nn.GroupNorm(h, d, eps=64e-5)

    def forward(
        self, x: torch.Tensor, shift: torch.Tensor, wkv: torch.Tensor, v_first: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        b, t, d = x.shape
        h, n = self.n_heads, self.head_size
        prev = _shifted(x, shift)
        if self.v6:
            sx = prev - x
            mix = torch.tanh((x + sx * self.time_maa_x) @ self.time_maa_w1)
            mix = torch.einsum("btfr,frd->fbtd", mix.view(b, t, 5, -1), self.time_maa_w2)
            mw, mk, mv, mr, mg = mix.unbind(0)
            xw = x + sx * (self.time_maa_w + mw)
            xk = x + sx * (self.time_maa_k + mk)
            xv = x + sx * (self.time_maa_v + mv)
            xr = x + sx * (self.time_maa_r + mr)
            xg = x + sx * (self.time_maa_g + mg)
            decay = self.time_decay + torch.tanh(xw @ self.time_decay_w1) @ self.time_decay_w2
            log_w = -decay.float().exp().view(b, t, h, n)
        else:
            xk = x * self.time_mix_k + prev * (1 - self.time_mix_k)
            xv = x * self.time_mix_v + prev * (1 - self.time_mix_v)
            xr = x * self.time_mix_r + prev * (1 - self.time_mix_r)
            xg = x * self.time_mix_g + prev * (1 - self.time_mix_g)
            log_w = (-self.time_decay.float().exp()).expand(b, t, h, n)
        r = self.receptance(xr).view(b, t, h, n)
        k = self.key(xk).view(b, t, h, n)
        v = self.value(xv).view(b, t, h, n)
        g = F.silu(self.gate(xg))
        out, wkv = wkv5(r, k, v, log_w, self.time_faaaa, wkv)
        out = _group_norm(out.reshape(b, t, d), self.ln_x).to(x.dtype)
        return self.output(out * g), x[:, -1], wkv, v_first


class TimeMix7(nn.Module):
    """RWKV-7 time mixing (generalized delta rule, value residual from the first layer)."""

    def __init__(self, config: RwkvLMConfig, layer: int) -> None:
        super().__init__()
        d, h, n = config.hidden_size, config.n_heads, config.head_size
        self.layer, self.n_heads, self.head_size = layer, h, n
        for name in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "a0", "k_k", "k_a"):
            setattr(self, name, _vec(d))
        rank = {"w": 64, "a": 64, "v": 32, "g": 128}  # replaced by the checkpoint's shapes
        for p, r in rank.items():
            if p == "g":
                self.g1 = nn.Parameter(torch.zeros(d, r))
                self.g2 = nn.Parameter(torch.zeros(r, d))
            else:
                setattr(self, f"{p}1", nn.Parameter(torch.zeros(d, r)))
                setattr(self, f"{p}2", nn.Parameter(torch.zeros(r, d)))
        self.v0 = _vec(d)
        self.r_k = nn.Parameter(torch.zeros(h, n))
        self.receptance = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)
        self.ln_x = nn.GroupNorm(h, d, eps=64e-5)

    def forward(
        self, x: torch.Tensor, shift: torch.Tensor, wkv: torch.Tensor, v_first: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        b, t, d = x.shape
        h, n = self.n_heads, self.head_size
        xx = _shifted(x, shift) - x
        xr, xw, xk = x + xx * self.x_r, x + xx * self.x_w, x + xx * self.x_k
        xv, xa, xg = x + xx * self.x_v, x + xx * self.x_a, x + xx * self.x_g
        r = self.receptance(xr)
        w = torch.tanh(xw @ self.w1) @ self.w2
        k = self.key(xk)
        v = self.value(xv)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = F.normalize((k * self.k_k).view(b, t, h, n), dim=-1, p=2.0).view(b, t, d)
        k = k * (1 + (a - 1) * self.k_a)
        if self.layer == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        decay = torch.exp(-0.606531 * torch.sigmoid((self.w0 + w).float()))  # exp(-e^-0.5 sig)
        heads = (b, t, h, n)
        out, wkv = wkv7(
            r.view(heads),
            decay.view(heads),
            k.view(heads),
            v.view(heads),
            (-kk).view(heads),
            (kk * a).view(heads),
            wkv,
        )
        out = _group_norm(out.reshape(b, t, d).to(x.dtype), self.ln_x)
        bonus = (r * k * self.r_k.view(1, 1, d)).view(heads).sum(-1, keepdim=True)
        out = out + (bonus * v.view(heads)).view(b, t, d)
        return self.output(out * g), x[:, -1], wkv, v_first


class ChannelMix(nn.Module):
    """Channel mixing: a squared-ReLU MLP on token-shifted inputs (gated by a receptance before
    RWKV-7)."""

    def __init__(self, config: RwkvLMConfig) -> None:
        super().__init__()
        d, f = config.hidden_size, config.ffn_size
        self.version = config.model_type
        if self.version == "rwkv7":
            self.x_k = _vec(d)
        elif self.version == "rwkv6":
            self.time_maa_k = _vec(d)
            self.time_maa_r = _vec(d)
        else:
            self.time_mix_k = _vec(d)
            self.time_mix_r = _vec(d)
        self.key = nn.Linear(d, f, bias=False)
        self.value = nn.Linear(f, d, bias=False)
        if self.version != "rwkv7":
            self.receptance = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sx = _shifted(x, shift) - x
        if self.version == "rwkv7":
            return self.value(torch.relu(self.key(x + sx * self.x_k)) ** 2), x[:, -1]
        if self.version == "rwkv6":
            xk, xr = x + sx * self.time_maa_k, x + sx * self.time_maa_r
        else:  # x * mix + prev * (1 - mix), rewritten around the shift
            xk, xr = x + sx * (1 - self.time_mix_k), x + sx * (1 - self.time_mix_r)
        k = torch.relu(self.key(xk)) ** 2
        return torch.sigmoid(self.receptance(xr)) * self.value(k), x[:, -1]


class Block(nn.Module):
    def __init__(self, config: RwkvLMConfig, layer: int) -> None:
        super().__init__()
        d = config.hidden_size
        self.ln1 = nn.LayerNorm(d)
        self.ln2 = nn.LayerNorm(d)
        self.att: nn.Module = (
            TimeMix7(config, layer) if config.model_type == "rwkv7" else TimeMix5(config)
        )
        self.ffn = ChannelMix(config)

    def forward(
        self, x: torch.Tensor, state: LayerState, v_first: Any = None
    ) -> tuple[torch.Tensor, LayerState, Any]:
        att, att_shift, wkv, v_first = self.att(self.ln1(x), state.att_shift, state.wkv, v_first)
        x = x + att
        ffn, ffn_shift = self.ffn(self.ln2(x), state.ffn_shift)
        return x + ffn, LayerState(att_shift, wkv, ffn_shift), v_first


class RwkvLM(nn.Module):
    """An RWKV-5/6/7 LM. Parameter names are the BlinkDL checkpoint's (``load_state_dict`` of the
    ``.pth`` as it is, after :func:`fit_shapes`)."""

    def __init__(self, config: RwkvLMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.emb = nn.Embedding(config.vocab_size, d)
        self.ln0 = nn.LayerNorm(d)  # stored as blocks.0.ln0 in the checkpoint
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.num_hidden_layers))
        self.ln_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.vocab_size, bias=False)

    def initial_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> list[LayerState]:
        c = self.config
        param = self.head.weight
        device, dtype = device or param.device, dtype or param.dtype
        return [
            LayerState(
                torch.zeros(batch, c.hidden_size, device=device, dtype=dtype),
                torch.zeros(batch, c.n_heads, c.head_size, c.head_size, device=device),
                torch.zeros(batch, c.hidden_size, device=device, dtype=dtype),
            )
            for _ in range(c.num_hidden_layers)
        ]

    def forward(
        self,
        input_ids: torch.Tensor,
        state: list[LayerState] | None = None,
        return_logits: bool = True,
    ) -> LMOutput:
        if state is None:
            state = self.initial_state(input_ids.shape[0])
        x = self.ln0(self.emb(input_ids))
        v_first = None
        new_state = []
        for block, layer_state in zip(self.blocks, state, strict=True):
            x, layer_state, v_first = block(x, layer_state, v_first)
            new_state.append(layer_state)
        logits = self.head(self.ln_out(x)) if return_logits else None
        return LMOutput(logits, new_state)


def fit_shapes(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under this module tree's names (``blocks.0.ln0`` -> ``ln0``)."""
    out = {}
    for name, tensor in sd.items():
        if name.startswith("blocks.0.ln0."):
            name = name.replace("blocks.0.ln0.", "ln0.")
        out[name] = tensor
    return out


def build(
    sd: Mapping[str, torch.Tensor], *, where: str = "checkpoint", dtype: torch.dtype | None = None
) -> RwkvLM:
    """An :class:`RwkvLM` holding the tensors of the BlinkDL state dict ``sd``."""
    config = detect(sd, where=where)
    with torch.device("meta"):
        model = RwkvLM(config)
    tensors = fit_shapes(sd)
    if config.model_type == "rwkv7":
        # layer 0 has no value residual: its (unused) v0/v1/v2 may be absent from the file
        for name in ("v0", "v1", "v2"):
            key = f"blocks.0.att.{name}"
            if key not in tensors:
                like = tensors[f"blocks.1.att.{name}"] if config.num_hidden_layers > 1 else None
                tensors[key] = torch.zeros_like(like) if like is not None else torch.zeros(0)
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(tensors))
    unexpected = sorted(set(tensors) - set(params))
    if missing or unexpected:
        raise AdapterError(
            f"{where}: {config.model_type} checkpoint does not fit: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    for name, tensor in tensors.items():
        module_path, _, attr = name.rpartition(".")
        module = model.get_submodule(module_path)
        value = tensor.detach()
        if dtype is not None:
            keep = config.model_type != "rwkv7" and _FLOAT32.search(name)
            value = value.float() if keep else value.to(dtype)
        setattr(module, attr, nn.Parameter(value.contiguous(), requires_grad=False))
    return model.eval()
