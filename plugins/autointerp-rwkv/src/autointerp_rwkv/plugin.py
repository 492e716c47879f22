"""Registers the ``rwkv`` model adapter (light: no torch import here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from autointerp_transformers.hooks import HFModelConfig
from pydantic import Field

from autointerp import hookimpl

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


if TYPE_CHECKING:
    from autointerp import Register


class RwkvConfig(HFModelConfig):
    """Options of the ``rwkv`` adapter."""

    model: str = Field(
        "RWKV/rwkv-4-169m-pile",
        description="RWKV-4: hub name (RWKV/rwkv-4-169m-pile) or local directory; RWKV-5/6/7: a "
        "BlinkDL .pth file, a directory holding one, or a hub file owner/repo/file.pth",
    )
    version: Literal["auto", "4", "5", "6", "7"] = Field(
        "auto", description="RWKV version; auto: read from the checkpoint (checked when given)"
    )
    tokenizer: str | None = Field(
        None,
        description="rwkv-world (the World vocabulary, shipped in the rwkv package), a local "
        "directory or hub name; default: the checkpoint's own tokenizer files, else rwkv-world",
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
        "autointerp_rwkv.loading:from_config",
        config=RwkvConfig,
        description="RWKV-4/5/6/7 LMs, with time-mix/channel-mix state in and out",
    )
