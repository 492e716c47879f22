"""Registers the `neurons` feature source. Light: torch is imported only when a run builds it."""

from __future__ import annotations

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.features import SourceOptions

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


class NeuronsConfig(SourceOptions):
    """Which layer's MLP neurons, and how sparse (``device``: auto encodes where the model
    computes; ``dtype``: auto keeps the activations' own)."""

    layer: int = Field(6, ge=0, description="transformer layer whose MLP neurons are the latents")
    top_k: int | None = Field(
        32, ge=1, description="keep the k most active neurons per token (None: every positive one)"
    )


@hookimpl
def autointerp_register_feature_sources(register: Register) -> None:
    register(
        "neurons",
        "autointerp_neurons.neurons:NeuronSource",
        config=NeuronsConfig,
        description="MLP neurons of a layer (site mlp_neurons.L), raw or top-k per token",
    )
