"""Registers the ``mamba`` model adapter (light: no torch import here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from autointerp_transformers.hooks import HFModelConfig
from pydantic import Field

from autointerp import hookimpl

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


if TYPE_CHECKING:
    from autointerp import Register


class MambaConfig(HFModelConfig):
    """Options of the ``mamba`` adapter."""

    model: str = Field(
        "state-spaces/mamba-130m-hf",
        description="hub name (state-spaces/mamba-130m-hf, a Mamba-2 HF repo, or an original "
        "mamba_ssm repo such as state-spaces/mamba-130m) or local path",
    )
    format: Literal["auto", "transformers", "mamba_ssm"] = Field(
        "auto",
        description="checkpoint layout; auto: mamba_ssm when config.json has d_model/n_layer "
        "(converted once into transformers' Mamba and cached), else transformers",
    )
    tokenizer: str | None = Field(
        None,
        description="tokenizer for a mamba_ssm checkpoint without one (default "
        "EleutherAI/gpt-neox-20b, what the original checkpoints use): hub name or local path",
    )


@hookimpl
def autointerp_register_model_adapters(register: Register) -> None:
    register(
        "mamba",
        "autointerp_mamba.adapter:MambaAdapter.from_config",
        config=MambaConfig,
        description="Mamba and Mamba-2 state-space LMs, with conv/SSM state in and out",
    )
