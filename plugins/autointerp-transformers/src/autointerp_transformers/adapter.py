"""The ``transformers`` adapter: decoder-only transformer LMs through plain module hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from autointerp.adapter import RecurrentState, UnsupportedModelError
from autointerp_transformers.hooks import HFAdapter, HookSession, Where

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class Layout:
    """Where a transformer family keeps its blocks and sub-layers."""

    blocks: str
    attn: str
    mlp: str
    final_norm: str
    #: the MLP's output projection, whose input is the MLP neurons (after the nonlinearity)
    mlp_down: str


LLAMA_LIKE = Layout("model.layers", "self_attn", "mlp", "model.norm", "down_proj")
LAYOUTS: Mapping[str, Layout] = {
    "gpt2": Layout("transformer.h", "attn", "mlp", "transformer.ln_f", "c_proj"),
    "gpt_neox": Layout(
        "gpt_neox.layers", "attention", "mlp", "gpt_neox.final_layer_norm", "dense_4h_to_h"
    ),
    **{
        name: LLAMA_LIKE
        for name in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "phi3")
    },
}
RECURRENT = {"mamba": "mamba", "mamba2": "mamba", "falcon_mamba": "mamba", "rwkv": "rwkv"}


def module_path(root: nn.Module, target: nn.Module) -> str:
    for name, module in root.named_modules():
        if module is target:
            return name
    raise UnsupportedModelError(f"module {type(target).__name__} is not part of the model")


def _in_width(model: nn.Module, path: str) -> int:
    """Input width of a projection: nn.Linear (in_features) or GPT-2's Conv1D (weight [in, out])."""
    module = model.get_submodule(path)
    width = getattr(module, "in_features", None) or getattr(module, "nx", None)
    return int(width) if width is not None else int(module.weight.shape[0])


def layout_for(model: nn.Module) -> Layout:
    model_type = model.config.model_type
    if model_type in RECURRENT:
        raise UnsupportedModelError(
            f"the transformers adapter serves transformer LMs; {model_type} is recurrent: "
            f"use the '{RECURRENT[model_type]}' adapter"
        )
    layout = LAYOUTS.get(model_type)
    if layout is None:
        raise UnsupportedModelError(
            f"the transformers adapter does not know the '{model_type}' architecture; "
            f"supported: {', '.join(sorted(LAYOUTS))}"
        )
    return layout


class TransformersAdapter(HFAdapter):
    """A decoder-only transformer behind the adapter contract.

    Padding: left or right both give the unpadded results at real tokens, because position ids
    are computed from the attention mask.
    """

    name = "transformers"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        padding_side: Literal["left", "right"] = "right",
    ) -> None:
        self.layout = layout_for(model)
        self.final_norm_path = self.layout.final_norm
        self.lm_head_path = module_path(model, model.get_output_embeddings())
        super().__init__(
            model, tokenizer, architecture=model.config.model_type, padding_side=padding_side
        )

    @classmethod
    def resolve_model(cls, spec: str) -> str:
        """Packaged specs (``smollm2-135m``) resolve to their cached local copy."""
        from autointerp_transformers.packaged import resolve

        return resolve(spec)

    def _site_table(self) -> dict[str, tuple[str, Where, tuple[int, ...]]]:
        d, lay = (self.d_model,), self.layout
        table: dict[str, tuple[str, Where, tuple[int, ...]]] = {}
        for i in range(self.n_layers):
            block = f"{lay.blocks}.{i}"
            table[f"resid_pre.{i}"] = (block, "input", d)
            table[f"attn_out.{i}"] = (f"{block}.{lay.attn}", "output", d)
            table[f"mlp_out.{i}"] = (f"{block}.{lay.mlp}", "output", d)
            down = f"{block}.{lay.mlp}.{lay.mlp_down}"
            table[f"mlp_neurons.{i}"] = (down, "input", (_in_width(self.model, down),))
            table[f"resid_post.{i}"] = (block, "output", d)
        return table

    def _run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        state: RecurrentState | None,
        return_state: bool,
        return_logits: bool,
        session: HookSession,
    ) -> tuple[torch.Tensor | None, RecurrentState | None]:
        kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": False}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if return_logits:
            return self._invoke(self.model, session, **kwargs).logits, None
        self._invoke(self.model.base_model, session, **kwargs)
        return None, None
