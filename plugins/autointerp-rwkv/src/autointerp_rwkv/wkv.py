"""The WKV recurrences of RWKV-5/6 and RWKV-7, batched, in float32.

Shapes: ``B`` batch, ``T`` tokens, ``H`` heads, ``N`` head size.

- RWKV-5/6 (:func:`wkv5`): per head a state ``S`` ``[N_key, N_value]``;
  ``out_t = r_t (u * k_t^T v_t + S)`` then ``S = k_t^T v_t + w_t * S`` (decay ``w`` per key
  channel; RWKV-5 has one per channel, RWKV-6 one per token and channel). Computed chunk by chunk:
  inside a chunk the pairwise decays are formed in log space (every exponent <= 0, so nothing
  overflows however strong the decay), the state is carried between chunks.
- RWKV-7 (:func:`wkv7`): per head ``S`` ``[N_value, N_key]``;
  ``S = S diag(w_t) + S a_t^T b_t + v_t^T k_t`` then ``out_t = S r_t`` (a generalized delta rule).
  Its state update is not a plain decay, so it runs token by token (vectorized over batch and
  heads), as the reference implementation does on CPU.
"""

from __future__ import annotations

import torch

#: tokens per chunk of the RWKV-5/6 recurrence: the pairwise-decay tensor is [B, H, C, C, N]
CHUNK = 32


def wkv5(
    r: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_w: torch.Tensor,
    u: torch.Tensor,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RWKV-5/6 WKV: ``r, k, v, log_w`` ``[B, T, H, N]`` (``log_w = log(decay) <= 0``), ``u``
    ``[H, N]``, ``state`` ``[B, H, N, N]``. Returns (``out`` ``[B, T, H, N]``, final state);
    ``state`` is not modified."""
    r, k, v, log_w = (x.float() for x in (r, k, v, log_w))
    u = u.float()
    s = state.float()
    outs = []
    for start in range(0, r.shape[1], CHUNK):
        sl = slice(start, start + CHUNK)
        out, s = _wkv5_chunk(r[:, sl], k[:, sl], v[:, sl], log_w[:, sl], u, s)
        outs.append(out)
    return torch.cat(outs, dim=1), s


def _wkv5_chunk(
    r: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_w: torch.Tensor,
    u: torch.Tensor,
    s: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    length = r.shape[1]
    cum = log_w.cumsum(dim=1)  # [B, L, H, N]: log of the decay through token t (inclusive)
    before = cum - log_w  # through token t-1: what the state entering token t has decayed by
    # from the chunk's initial state: r_t . (decay through t-1) * S0
    out = torch.einsum("bthi,bhij->bthj", r * before.exp(), s)
    # from earlier tokens s < t of this chunk: sum_i r_t,i k_s,i exp(before_t,i - cum_s,i)
    gap = before.unsqueeze(2) - cum.unsqueeze(1)  # [B, L(t), L(s), H, N]
    causal = torch.ones(length, length, dtype=torch.bool, device=r.device).tril(-1)
    gap = gap.masked_fill(~causal[None, :, :, None, None], float("-inf"))
    scores = torch.einsum("bthi,bshi,btshi->bhts", r, k, gap.exp())
    out = out + torch.einsum("bhts,bshj->bthj", scores, v)
    # the current token through the bonus u
    out = out + (r * u * k).sum(-1, keepdim=True) * v
    # the state after the chunk: S0 decayed by the whole chunk plus each token's k^T v decayed
    # by the tokens after it
    last = cum[:, -1]  # [B, H, N]
    tail = (last.unsqueeze(1) - cum).exp()  # [B, L, H, N]
    s = s * last.exp().unsqueeze(-1) + torch.einsum("bshi,bshj->bhij", k * tail, v)
    return out, s


def wkv7(
    r: torch.Tensor,
    w: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RWKV-7 WKV: every input ``[B, T, H, N]`` (``w`` the decay itself, in (0, 1)), ``state``
    ``[B, H, N, N]`` (value x key). Returns (``out`` ``[B, T, H, N]``, final state); ``state``
    is not modified."""
    r, w, k, v, a, b = (x.float() for x in (r, w, k, v, a, b))
    s = state.float()
    outs = []
    for t in range(r.shape[1]):
        sa = torch.einsum("bhij,bhj->bhi", s, a[:, t])  # S a^T: [B, H, N_value]
        s = (
            s * w[:, t].unsqueeze(-2)
            + sa.unsqueeze(-1) * b[:, t].unsqueeze(-2)
            + v[:, t].unsqueeze(-1) * k[:, t].unsqueeze(-2)
        )
        outs.append(torch.einsum("bhij,bhj->bhi", s, r[:, t]))
    return torch.stack(outs, dim=1), s
