"""Registers the ``transformers`` model adapter (light: no torch import here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from autointerp import hookimpl
from autointerp_transformers.hooks import HFModelConfig

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


if TYPE_CHECKING:
    from autointerp import Register


class TransformersConfig(HFModelConfig):
    """Options of the ``transformers`` adapter."""

    model: str = Field(
        "smollm2-135m",
        description="packaged spec (smollm2-135m), hub name (EleutherAI/pythia-160m) or local path",
    )


@hookimpl
def autointerp_register_model_adapters(register: Register) -> None:
    register(
        "transformers",
        "autointerp_transformers.adapter:TransformersAdapter.from_config",
        config=TransformersConfig,
        description="Transformer LMs (GPT-2, Llama-style, GPT-NeoX) through HF transformers",
    )
