"""The ``mamba`` adapter: Mamba / Mamba-2 LMs with their recurrent state as sites.

Sites per layer: ``resid_pre.L``, ``mixer_out.L`` (the mixer's output: a Mamba block has no
attention or MLP sub-layer) and ``resid_post.L``. State sites per layer: ``conv_state.L`` (the
last ``d_conv`` inputs of the causal convolution) and ``ssm_state.L`` (the selective-scan state).
Batching: left padding with an attention mask is exact, final state included (padded inputs are
zeroed before the convolution and the scan, so the state stays at its initial zeros until the
first real token).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from autointerp_transformers.hooks import HFAdapter, HFModelConfig, HookSession, Where
from torch import nn

from autointerp.adapter import AdapterError, RecurrentState, UnsupportedModelError

SUPPORTED = ("mamba", "mamba2", "falcon_mamba")
#: Mamba-1's full-sequence scan in transformers always starts from a zero state, so a
#: multi-token call that continues from a state runs through the exact one-token update instead
NATIVE_CONTINUATION = {"mamba": False, "falcon_mamba": False, "mamba2": True}


class MambaAdapter(HFAdapter):
    """A Mamba or Mamba-2 model behind the adapter contract."""

    name = "mamba"
    recurrent = True
    final_norm_path = "backbone.norm_f"
    lm_head_path = "lm_head"
    default_padding_side = "left"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        padding_side: Literal["left", "right"] = "left",
    ) -> None:
        model_type = model.config.model_type
        if model_type not in SUPPORTED:
            raise UnsupportedModelError(
                f"the mamba adapter serves {', '.join(SUPPORTED)} models, not {model_type}"
            )
        self.model = model
        self._state_shapes = self._probe_state_shapes()
        super().__init__(model, tokenizer, architecture=model_type, padding_side=padding_side)

    @classmethod
    def from_config(cls, config: HFModelConfig) -> Any:
        """Load ``config.model``; an original ``mamba_ssm`` checkpoint is converted first."""
        from autointerp_mamba.convert import converted_dir, source_dir

        fmt = getattr(config, "format", "auto")
        original = source_dir(config.model, fmt, config.revision)
        if original is not None:
            target = converted_dir(original, getattr(config, "tokenizer", None))
            config = config.model_copy(update={"model": str(target), "revision": None})
        return super().from_config(config)

    def _probe_state_shapes(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        device = next(self.model.parameters()).device
        with torch.no_grad():
            out = self.model(torch.zeros(1, 1, dtype=torch.long, device=device), use_cache=True)
        cache = out.cache_params
        return [
            (
                tuple(cache.get_conv_state(i).shape[1:]),
                tuple(cache.get_recurrent_state(i).shape[1:]),
            )
            for i in range(self.model.config.num_hidden_layers)
        ]

    def _site_table(self) -> dict[str, tuple[str, Where, tuple[int, ...]]]:
        d = (self.d_model,)
        table: dict[str, tuple[str, Where, tuple[int, ...]]] = {}
        for i, (conv, ssm) in enumerate(self._state_shapes):
            block = f"backbone.layers.{i}"
            table[f"resid_pre.{i}"] = (block, "input", d)
            table[f"mixer_out.{i}"] = (f"{block}.mixer", "output", d)
            table[f"resid_post.{i}"] = (block, "output", d)
            table[f"conv_state.{i}"] = (f"{block}.mixer", "output", conv)
            table[f"ssm_state.{i}"] = (f"{block}.mixer", "output", ssm)
        return table

    def initial_state(self, batch_size: int = 1) -> RecurrentState:
        state: RecurrentState = {}
        for i, (conv, ssm) in enumerate(self._state_shapes):
            state[f"conv_state.{i}"] = torch.zeros(
                batch_size, *conv, dtype=self.dtype, device=self.device
            )
            state[f"ssm_state.{i}"] = torch.zeros(
                batch_size, *ssm, dtype=self.dtype, device=self.device
            )
        return state

    # -- state <-> transformers cache ----------------------------------------------------------

    def _cache_from_state(self, state: RecurrentState) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i in range(self.n_layers):
            conv = state[f"conv_state.{i}"].to(self.device)
            ssm = state[f"ssm_state.{i}"].to(self.device)
            layer = cache.layers[i]
            layer.lazy_initialization(
                conv_states=conv, recurrent_states=ssm, conv_kernel_size=conv.shape[-1]
            )
            layer.conv_states[0].copy_(conv)  # fresh tensors: the caller's state stays untouched
            layer.recurrent_states[0].copy_(ssm)
            layer.has_previous_state[0] = True
        return cache

    def _state_from_cache(self, cache: Any) -> RecurrentState:
        state: RecurrentState = {}
        for i in range(self.n_layers):
            state[f"conv_state.{i}"] = cache.get_conv_state(i).clone()
            state[f"ssm_state.{i}"] = cache.get_recurrent_state(i).clone()
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
        call = self.model if return_logits else self.model.base_model
        padded = attention_mask is not None and not bool(attention_mask.all())
        if state is None:
            out = self._invoke(
                call,
                session,
                input_ids=input_ids,
                attention_mask=attention_mask if padded else None,
                use_cache=return_state,
            )
            final = self._state_from_cache(out.cache_params) if return_state else None
            return (out.logits if return_logits else None), final
        if padded:
            raise AdapterError(
                "a call that continues from a state cannot take padding; "
                "continue equal-length batches"
            )
        cache = self._cache_from_state(state)
        seq_len = input_ids.shape[1]
        if seq_len == 1 or NATIVE_CONTINUATION[self.architecture]:
            out = self._invoke(
                call, session, input_ids=input_ids, cache_params=cache, use_cache=True
            )
            logits = out.logits if return_logits else None
        else:
            chunks = []
            for t in range(seq_len):
                out = self._invoke(
                    call,
                    session,
                    input_ids=input_ids[:, t : t + 1],
                    cache_params=cache,
                    use_cache=True,
                )
                session.advance(1)
                if return_logits:
                    chunks.append(out.logits)
            logits = torch.cat(chunks, dim=1) if return_logits else None
        return logits, (self._state_from_cache(cache) if return_state else None)
