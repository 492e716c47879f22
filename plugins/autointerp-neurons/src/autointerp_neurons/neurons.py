"""MLP neurons as latents: the paper's baseline against SAE latents.

The latents are the hidden units of one transformer layer's MLP (the adapter's ``mlp_neurons.L``
site, after the nonlinearity). Only positive activations count as firing; ``top_k`` keeps the k most
active neurons per token, which makes neurons as sparse as a TopK SAE for a fair comparison.
"""

from __future__ import annotations

import torch

from autointerp.features import FeatureSource, FeatureSourceError, SparseActivations
from autointerp.types import Site
from autointerp_neurons.plugin import NeuronsConfig


class NeuronSource(FeatureSource):
    def __init__(self, config: NeuronsConfig) -> None:
        self.config = config
        self.site = f"mlp_neurons.{config.layer}"
        self.d_in = self.n_latents = 0  # known once bound to the model's site

    def check_site(self, site: Site, *, source: str = "neurons") -> None:
        """Bind to the model's site: its width is the number of neurons."""
        if site.name != self.site:
            raise FeatureSourceError(f"{source} reads site '{self.site}', not '{site.name}'")
        self.d_in = self.n_latents = site.shape[-1]

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> SparseActivations:
        if not self.d_in:
            raise FeatureSourceError("neurons: call check_site with the model's site first")
        if x.shape[-1] != self.d_in:
            raise FeatureSourceError(
                f"neurons of {self.site}: expected width {self.d_in}, got {x.shape[-1]}"
            )
        k = self.config.top_k
        if k is not None:
            values, latents = x.topk(min(k, self.d_in), dim=-1)
            rows = torch.arange(x.shape[0]).unsqueeze(1).expand_as(latents)
            keep = values > 0
            return SparseActivations(rows[keep], latents[keep], values[keep])
        rows, latents = (x > 0).nonzero(as_tuple=True)
        return SparseActivations(rows, latents, x[rows, latents])
