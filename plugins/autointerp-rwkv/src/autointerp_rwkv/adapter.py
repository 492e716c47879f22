"""The ``rwkv`` adapter: RWKV-4 LMs with their recurrent state as sites.

Sites: ``attn_out.L`` is the time-mix output, ``mlp_out.L`` the channel-mix output. State sites:
``time_mix_state.L`` ``[4, d_model]`` (rows: previous input, WKV numerator, denominator, max
exponent; float32) and ``channel_mix_state.L`` ``[d_model]`` (previous input).

Batching: RWKV ignores attention masks, so batches are padded on the right, which is exact at every
real token (a token never sees later ones). The final state of a padded row would include the
padding: asking for it is an error — batch equal-length sequences for that.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from autointerp_transformers.hooks import HFAdapter, HFModelConfig, HookSession, Where
from torch import nn

from autointerp.adapter import AdapterError, RecurrentState, UnsupportedModelError


def check_padding(attention_mask: torch.Tensor | None, *, stateful: bool) -> None:
    """RWKV reads every position: only right padding works, and not in calls with state."""
    if attention_mask is None or bool(attention_mask.all()):
        return
    mask = attention_mask.long()
    if bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise AdapterError(
            "RWKV ignores attention masks: pad on the right (left padding would "
            "change every real token)"
        )
    if stateful:
        raise AdapterError(
            "the final state of a right-padded RWKV batch would include the padding; "
            "use equal-length batches for calls with state"
        )


class _TokenShift:
    """A token-shift state slot that reads back as ``[batch, 1, d]``.

    transformers' one-token RWKV path reads ``state[k][:, :, layer]`` (``[batch, d]``) and mixes it
    with ``[batch, 1, d]`` activations, which broadcasts to ``[batch, batch, d]`` when batch > 1.
    """

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __getitem__(self, index: Any) -> torch.Tensor:
        return self.tensor[index].unsqueeze(1)

    def __setitem__(self, index: Any, value: torch.Tensor) -> None:
        self.tensor[index] = value


class RwkvAdapter(HFAdapter):
    """An RWKV-4 model behind the adapter contract."""

    name = "rwkv"
    recurrent = True
    final_norm_path = "rwkv.ln_out"
    lm_head_path = "head"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        padding_side: Literal["left", "right"] = "right",
        exact_scale: bool = True,
    ) -> None:
        if model.config.model_type != "rwkv":
            raise UnsupportedModelError(
                f"the rwkv adapter serves RWKV-4 (model_type rwkv), not {model.config.model_type}"
            )
        if padding_side != "right":
            raise AdapterError("RWKV ignores attention masks: only right padding is exact")
        if exact_scale and model.config.rescale_every:
            if model.rwkv.layers_are_rescaled:  # undo the in-place weight rescaling first
                model.rwkv.train()
                model.rwkv._rescale_layers()
                model.rwkv.eval()
            model.config.rescale_every = 0
        super().__init__(model, tokenizer, architecture="rwkv", padding_side="right")

    @classmethod
    def init_options(cls, config: HFModelConfig) -> dict[str, Any]:
        return {"exact_scale": getattr(config, "exact_scale", True)}

    def _site_table(self) -> dict[str, tuple[str, Where, tuple[int, ...]]]:
        d = (self.d_model,)
        table: dict[str, tuple[str, Where, tuple[int, ...]]] = {}
        for i in range(self.n_layers):
            block = f"rwkv.blocks.{i}"
            table[f"resid_pre.{i}"] = (block, "input", d)
            table[f"attn_out.{i}"] = (f"{block}.attention", "output", d)
            table[f"mlp_out.{i}"] = (f"{block}.feed_forward", "output", d)
            table[f"resid_post.{i}"] = (block, "output", d)
            table[f"time_mix_state.{i}"] = (f"{block}.attention", "output", (4, *d))
            table[f"channel_mix_state.{i}"] = (f"{block}.feed_forward", "output", d)
        return table

    def initial_state(self, batch_size: int = 1) -> RecurrentState:
        state: RecurrentState = {}
        for i in range(self.n_layers):
            tm = torch.zeros(batch_size, 4, self.d_model, device=self.device)
            tm[:, 3] = -1e38  # max exponent: "no history"
            state[f"time_mix_state.{i}"] = tm
            state[f"channel_mix_state.{i}"] = torch.zeros(
                batch_size, self.d_model, dtype=self.dtype, device=self.device
            )
        return state

    def _hf_state(self, state: RecurrentState) -> list[torch.Tensor]:
        # stacking copies: transformers updates its state list in place, the caller's stays intact
        names = range(self.n_layers)
        ffn = torch.stack([state[f"channel_mix_state.{i}"] for i in names], dim=-1)
        tm = torch.stack([state[f"time_mix_state.{i}"].float() for i in names], dim=-1)
        tm = tm.to(self.device)
        return [
            ffn.to(device=self.device, dtype=self.dtype),
            tm[:, 0].to(self.dtype).contiguous(),
            tm[:, 1].contiguous(),
            tm[:, 2].contiguous(),
            tm[:, 3].contiguous(),
        ]

    def _from_hf_state(self, hf: list[torch.Tensor]) -> RecurrentState:
        tm = torch.stack([hf[1].float(), hf[2], hf[3], hf[4]], dim=1)  # [B, 4, d, L]
        state: RecurrentState = {}
        for i in range(self.n_layers):
            state[f"time_mix_state.{i}"] = tm[..., i].clone()
            state[f"channel_mix_state.{i}"] = hf[0][..., i].clone()
        return state

    def _run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        state: RecurrentState | None,
        return_state: bool,
        return_logits: bool,
        session: HookSession,
    ) -> tuple[torch.Tensor | None, RecurrentState | None]:
        check_padding(attention_mask, stateful=return_state or state is not None)
        keep_state = return_state or state is not None
        hf_state: list[Any] | None = self._hf_state(state) if state is not None else None
        if hf_state is not None and input_ids.shape[1] == 1:
            hf_state[0], hf_state[1] = _TokenShift(hf_state[0]), _TokenShift(hf_state[1])
        call = self.model if return_logits else self.model.base_model
        out = self._invoke(call, session, input_ids=input_ids, state=hf_state, use_cache=keep_state)
        if return_state:
            raw = [s.tensor if isinstance(s, _TokenShift) else s for s in out.state]
            final = self._from_hf_state(raw)
        else:
            final = None
        return (out.logits if return_logits else None), final
