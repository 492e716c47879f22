"""MLP neurons as latents: the paper's baseline against SAE latents.

The latents are the hidden units of one transformer layer's MLP (the adapter's ``mlp_neurons.L``
site, after the nonlinearity). Only positive activations count as firing; ``top_k`` keeps the k most
active neurons per token, which makes neurons as sparse as a TopK SAE for a fair comparison.

A neuron's decoder direction is its column of the MLP's output projection (``W_out[:, i]``): the
MLP output is the sum of activation x column over neurons (plus a bias), so the neuron writes
``act_i * W_out[:, i]`` into the residual stream. The directions live at ``resid_post.L``, where
adding a vector is the same edit as adding it at ``mlp_out.L`` (the MLP output feeds the residual
sum directly; Gemma-2 alone normalises it first) and where an intervention's relative strength is in
units of the residual norm, as for a residual SAE of the same layer.

Placement: the source has no weights of its own; by default it encodes the activations where the
model computed them, in their dtype. A ``device`` set explicitly moves each block there first, and
a ``dtype`` other than "auto" casts it before the top-k.
"""

from __future__ import annotations

from typing import Any

import torch

from autointerp.adapter import resolve_device
from autointerp.features import FeatureSource, FeatureSourceError, SparseActivations
from autointerp.types import Site
from autointerp_neurons.plugin import NeuronsConfig


class NeuronSource(FeatureSource):
    def __init__(self, config: NeuronsConfig) -> None:
        self.config = config
        self.site = f"mlp_neurons.{config.layer}"
        self.d_in = self.n_latents = 0  # known once bound to the model's site
        self._w_out: torch.Tensor | None = None  # [d_mlp, d_model] view of the output projection
        self._bound: Any = None
        self.pinned = None
        if config.device != "auto":
            self.pinned = resolve_device(
                config.device, field="feature_source.device", error=FeatureSourceError
            )
        self.cast = None if config.dtype == "auto" else getattr(torch, config.dtype)

    @property
    def direction_site(self) -> str:
        return f"resid_post.{self.config.layer}"

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
        x = x.to(device=self.pinned or x.device, dtype=self.cast or x.dtype)
        k = self.config.top_k
        if k is not None:
            values, latents = x.topk(min(k, self.d_in), dim=-1)
            rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1).expand_as(latents)
            keep = values > 0
            return SparseActivations(rows[keep], latents[keep], values[keep])
        rows, latents = (x > 0).nonzero(as_tuple=True)
        return SparseActivations(rows, latents, x[rows, latents])

    def bind_model(self, adapter: Any) -> None:
        """Find the layer's MLP output projection (the module the adapter hooks for the neurons)."""
        if self._bound is adapter:
            return
        model = getattr(adapter, "model", None)
        name = getattr(getattr(model, "config", None), "_name_or_path", "")
        arch = getattr(adapter, "architecture", "?")
        where = f"{arch} model {name or '(unnamed)'}, layer {self.config.layer}"
        try:
            site = adapter.site(self.site)
            module = model.get_submodule(site.module_path)  # type: ignore[union-attr]
        except Exception as exc:
            raise FeatureSourceError(
                f"neurons: no MLP output projection to take decoder directions from in {where}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        self.check_site(site)
        self._w_out = _output_columns(module, self.d_in, adapter.d_model, where)
        self._bound = adapter

    def decoder_directions(self, latents: torch.Tensor) -> torch.Tensor:
        """Columns ``latents`` of the MLP output projection, ``[len(latents), d_model]``."""
        if self._w_out is None:
            raise FeatureSourceError("neurons: call bind_model with the model adapter first")
        return self._w_out[latents.to(self._w_out.device)].detach()


def _output_columns(module: Any, d_mlp: int, d_model: int, where: str) -> torch.Tensor:
    """The projection's weight as ``[d_mlp, d_model]`` (a view: one row per neuron)."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.ndim == 2:
        if isinstance(module, torch.nn.Linear) and weight.shape == (d_model, d_mlp):
            return weight.T  # nn.Linear: weight [out, in]
        if getattr(module, "nf", None) == d_model and weight.shape == (d_mlp, d_model):
            return weight  # GPT-2's Conv1D: weight [in, out]
    raise FeatureSourceError(
        f"neurons: the MLP output projection of {where} ({type(module).__name__}) has no "
        f"[{d_model} x {d_mlp}] weight to take decoder directions from"
    )
