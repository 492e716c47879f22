"""Registers the ``rwkv`` model adapter (light: no torch import here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autointerp_transformers.hooks import HFModelConfig
from pydantic import Field

from autointerp import hookimpl

if TYPE_CHECKING:
    from autointerp import Register


class RwkvConfig(HFModelConfig):
    """Options of the ``rwkv`` adapter."""

    model: str = Field(
        "RWKV/rwkv-4-169m-pile", description="hub name (RWKV/rwkv-4-169m-pile) or local path"
    )
    exact_scale: bool = Field(
        True,
        description="undo RWKV's inference-time halving of the residual every rescale_every "
        "layers, so activations keep their training scale (turn off for float16)",
    )


@hookimpl
def autointerp_register_model_adapters(register: Register) -> None:
    register(
        "rwkv",
        "autointerp_rwkv.adapter:RwkvAdapter.from_config",
        config=RwkvConfig,
        description="RWKV-4 LMs, with time-mix/channel-mix state in and out",
    )
