"""RWKV-5, RWKV-6 and RWKV-7 behind the adapter contract, from BlinkDL ``.pth`` checkpoints.

Sites per layer: ``resid_pre.L``, ``attn_out.L`` (time-mix output), ``mlp_out.L`` (channel-mix
output), ``resid_post.L``. State sites per layer: ``time_mix_shift.L`` ``(d_model,)`` (the time
mix's previous normalized input), ``wkv_state.L`` ``(heads, head_size, head_size)`` float32
(RWKV-5/6: key x value; RWKV-7: value x key, as each version's reference stores it) and
``channel_mix_shift.L`` ``(d_model,)``.

Batching as RWKV-4: right padding is exact at every real token; a padded call cannot take or
return a state.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from autointerp_transformers.hooks import HFAdapter, HookSession, Where

from autointerp.adapter import AdapterError, RecurrentState, UnsupportedModelError
from autointerp_rwkv.adapter import check_padding
from autointerp_rwkv.lm import VERSIONS, LayerState, RwkvLM


class RwkvLMAdapter(HFAdapter):
    """An RWKV-5/6/7 :class:`~autointerp_rwkv.lm.RwkvLM` behind the adapter contract."""

    name = "rwkv"
    recurrent = True
    final_norm_path = "ln_out"
    lm_head_path = "head"

    def __init__(
        self,
        model: RwkvLM,
        tokenizer: Any,
        *,
        padding_side: Literal["left", "right"] = "right",
    ) -> None:
        if not isinstance(model, RwkvLM) or model.config.model_type not in VERSIONS:
            raise UnsupportedModelError(
                f"this rwkv adapter serves RWKV-5/6/7 models, not {type(model).__name__}"
            )
        if padding_side != "right":
            raise AdapterError("RWKV ignores attention masks: only right padding is exact")
        config = model.config
        self._wkv_shape = (config.n_heads, config.head_size, config.head_size)
        super().__init__(model, tokenizer, architecture=config.model_type, padding_side="right")

    @classmethod
    def wrap(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        backend: str = "hooks",
        padding_side: Literal["left", "right"] | None = None,
        **kwargs: Any,
    ) -> Any:
        if backend != "hooks":
            raise UnsupportedModelError(
                f"backend '{backend}' is not available for RWKV-5/6/7 (a plain torch module "
                'tree, not a transformers model); use backend = "hooks"'
            )
        return cls(model, tokenizer, padding_side=padding_side or "right", **kwargs)

    def _site_table(self) -> dict[str, tuple[str, Where, tuple[int, ...]]]:
        d = (self.d_model,)
        table: dict[str, tuple[str, Where, tuple[int, ...]]] = {}
        for i in range(self.n_layers):
            block = f"blocks.{i}"
            table[f"resid_pre.{i}"] = (block, "input", d)
            table[f"attn_out.{i}"] = (f"{block}.att", "output", d)
            table[f"mlp_out.{i}"] = (f"{block}.ffn", "output", d)
            table[f"resid_post.{i}"] = (block, "output", d)
            table[f"time_mix_shift.{i}"] = (f"{block}.att", "output", d)
            table[f"wkv_state.{i}"] = (f"{block}.att", "output", self._wkv_shape)
            table[f"channel_mix_shift.{i}"] = (f"{block}.ffn", "output", d)
        return table

    def input_embeddings(self) -> torch.Tensor:
        """What each token enters block 0 as: the embedding after ``ln0`` (computed: RWKV
        normalizes its embeddings before the first block)."""
        with torch.no_grad():
            return self.model.ln0(self.model.emb.weight).detach()

    def initial_state(self, batch_size: int = 1) -> RecurrentState:
        layers = self.model.initial_state(batch_size, self.device, self.dtype)
        return self._to_sites(layers)

    def _to_sites(self, layers: list[LayerState]) -> RecurrentState:
        state: RecurrentState = {}
        for i, layer in enumerate(layers):
            state[f"time_mix_shift.{i}"] = layer.att_shift.clone()
            state[f"wkv_state.{i}"] = layer.wkv.clone()
            state[f"channel_mix_shift.{i}"] = layer.ffn_shift.clone()
        return state

    def _from_sites(self, state: RecurrentState) -> list[LayerState]:
        # the model never writes into a state it is given: no copy needed
        return [
            LayerState(
                state[f"time_mix_shift.{i}"].to(device=self.device, dtype=self.dtype),
                state[f"wkv_state.{i}"].to(device=self.device, dtype=torch.float32),
                state[f"channel_mix_shift.{i}"].to(device=self.device, dtype=self.dtype),
            )
            for i in range(self.n_layers)
        ]

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
        layers = self._from_sites(state) if state is not None else None
        out = self._invoke(
            self.model, session, input_ids=input_ids, state=layers, return_logits=return_logits
        )
        return out.logits, (self._to_sites(out.state) if return_state else None)
