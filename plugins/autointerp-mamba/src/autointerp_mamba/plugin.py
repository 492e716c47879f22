"""Registers the ``mamba`` model adapter (light: no torch import here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autointerp_transformers.hooks import HFModelConfig
from pydantic import Field

from autointerp import hookimpl

if TYPE_CHECKING:
    from autointerp import Register


class MambaConfig(HFModelConfig):
    """Options of the ``mamba`` adapter."""

    model: str = Field(
        "state-spaces/mamba-130m-hf",
        description="hub name (state-spaces/mamba-130m-hf, a Mamba-2 HF repo) or local path",
    )


@hookimpl
def autointerp_register_model_adapters(register: Register) -> None:
    register(
        "mamba",
        "autointerp_mamba.adapter:MambaAdapter.from_config",
        config=MambaConfig,
        description="Mamba and Mamba-2 state-space LMs, with conv/SSM state in and out",
    )
