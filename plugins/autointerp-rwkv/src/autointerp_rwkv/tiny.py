"""Tiny random-weight BlinkDL RWKV-5/6/7 state dicts, with the key names and shapes of real
``RWKV-x052/x060/x070`` checkpoints, for tests and offline examples (nothing is downloaded)."""

from __future__ import annotations

import torch


def tiny_state_dict(
    version: str,
    *,
    n_layers: int = 2,
    d_model: int = 32,
    head_size: int = 8,
    vocab_size: int = 260,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A random state dict of ``version`` (``rwkv5``, ``rwkv6`` or ``rwkv7``) in float32.

    Decays and mixing coefficients are drawn so the recurrent state matters (neither forgotten at
    once nor kept forever)."""
    gen = torch.Generator().manual_seed(seed)
    d, f, h = d_model, 4 * d_model, d_model // head_size

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    def unit(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen)

    def linear(out: int, inp: int) -> torch.Tensor:
        return rand(out, inp, scale=inp**-0.5)

    sd: dict[str, torch.Tensor] = {
        "emb.weight": rand(vocab_size, d),
        "blocks.0.ln0.weight": 1 + rand(d, scale=0.1),
        "blocks.0.ln0.bias": rand(d, scale=0.1),
        "ln_out.weight": 1 + rand(d, scale=0.1),
        "ln_out.bias": rand(d, scale=0.1),
        "head.weight": linear(vocab_size, d),
    }
    for i in range(n_layers):
        p = f"blocks.{i}."
        for ln in ("ln1", "ln2"):
            sd[f"{p}{ln}.weight"] = 1 + rand(d, scale=0.1)
            sd[f"{p}{ln}.bias"] = rand(d, scale=0.1)
        att, ffn = p + "att.", p + "ffn."
        for name in ("receptance", "key", "value", "output"):
            sd[f"{att}{name}.weight"] = linear(d, d)
        sd[f"{att}ln_x.weight"] = 1 + rand(d, scale=0.1)
        sd[f"{att}ln_x.bias"] = rand(d, scale=0.1)
        sd[f"{ffn}key.weight"] = linear(f, d)
        sd[f"{ffn}value.weight"] = linear(d, f)
        if version == "rwkv7":
            for name in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"):
                sd[att + name] = unit(1, 1, d)
            sd[att + "w0"] = rand(1, 1, d) - 0.5
            for name, rank in (("w", 8), ("a", 8), ("v", 4), ("g", 8)):
                sd[f"{att}{name}1"] = rand(d, rank, scale=0.3)
                sd[f"{att}{name}2"] = rand(rank, d, scale=0.3)
            sd[att + "a0"] = rand(1, 1, d)
            sd[att + "v0"] = rand(1, 1, d)
            sd[att + "k_k"] = 1 + rand(1, 1, d, scale=0.2)
            sd[att + "k_a"] = unit(1, 1, d)
            sd[att + "r_k"] = rand(h, head_size, scale=0.5)
            sd[ffn + "x_k"] = unit(1, 1, d)
            continue
        sd[f"{att}gate.weight"] = linear(d, d)
        sd[f"{ffn}receptance.weight"] = linear(d, d)
        sd[att + "time_faaaa"] = rand(h, head_size, scale=0.5)
        if version == "rwkv6":
            for name in ("x", "w", "k", "v", "r", "g"):
                sd[f"{att}time_maa_{name}"] = unit(1, 1, d)
            sd[att + "time_maa_w1"] = rand(d, 5 * 32, scale=0.1)
            sd[att + "time_maa_w2"] = rand(5, 32, d, scale=0.1)
            sd[att + "time_decay"] = rand(1, 1, d, scale=0.7) - 1
            sd[att + "time_decay_w1"] = rand(d, 64, scale=0.1)
            sd[att + "time_decay_w2"] = rand(64, d, scale=0.1)
            sd[ffn + "time_maa_k"] = unit(1, 1, d)
            sd[ffn + "time_maa_r"] = unit(1, 1, d)
        elif version == "rwkv5":
            for name in ("k", "v", "r", "g"):
                sd[f"{att}time_mix_{name}"] = unit(1, 1, d)
            sd[att + "time_decay"] = rand(h, head_size, scale=0.7) - 1
            sd[ffn + "time_mix_k"] = unit(1, 1, d)
            sd[ffn + "time_mix_r"] = unit(1, 1, d)
        else:
            raise ValueError(f"unknown RWKV version {version!r}; expected rwkv5, rwkv6 or rwkv7")
    return sd
