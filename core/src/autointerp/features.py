"""The feature-source contract: a site's activations in, sparse latent activations out.

A feature source (an SAE, a transcoder, top-k neurons) names the site it reads, its number of
latents and its input width, and encodes a ``[tokens, d_in]`` block into the nonzero (token row,
latent, value) triples; for interventions, it gives the latents' decoder directions and the site
they live in. Nothing here imports torch at module level.

Placement: a source's config subclasses :class:`SourceOptions` (``device`` and ``dtype``). Its
``device`` defaults to "auto": the source computes where the model adapter does (the cache stage
calls :meth:`FeatureSource.place` with the adapter's device); a device set explicitly pins it, and
the model's activations move there once per batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from autointerp.adapter import Device, DTypeName
from autointerp.config import ComponentConfig
from autointerp.errors import AutointerpError
from autointerp.types import Site

if TYPE_CHECKING:
    import torch


class FeatureSourceError(AutointerpError):
    """A feature source cannot be loaded or does not fit the model (one-line message)."""


class SourceOptions(ComponentConfig):
    """The placement options every feature source's config shares (subclass it).

    A dump of the options (what the run's cache fingerprints) leaves out those still at "auto":
    they compute what the source computed before the options existed, so earlier caches keep
    their fingerprint."""

    device: Device = Field(
        "auto", description="torch device; auto: the model adapter's device (cpu, cuda, cuda:N, "
        "mps, xpu pin one: the activations move there once per batch)",
    )  # fmt: skip
    dtype: DTypeName = Field(
        "auto", description="dtype the source computes in; auto: as the source's weights are "
        "stored (a source without weights: the model's activations' dtype)",
    )  # fmt: skip

    #: options a subclass added later: left out of the dump while at their default, so caches
    #: fingerprinted before they existed keep their fingerprint
    omit_defaults: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_auto(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        skip = {"device": "auto", "dtype": "auto"}
        skip |= {k: type(self).model_fields[k].default for k in self.omit_defaults}
        return {k: v for k, v in data.items() if not (k in skip and v == skip[k])}


class SparseActivations(NamedTuple):
    """Nonzero activations of a block of tokens, as three aligned 1-D tensors."""

    rows: torch.Tensor  # int64: token row within the encoded block
    latents: torch.Tensor  # int64: latent index
    values: torch.Tensor  # float: activation


class FeatureSource(ABC):
    """Subclasses set ``site``, ``n_latents`` and ``d_in`` and implement :meth:`encode`."""

    site: str
    n_latents: int
    d_in: int
    #: True for a source whose latents are functions of the token ids, not of the model's
    #: activations (a planted source with known meanings): the cache stage then calls
    #: :meth:`bind_model` with the adapter once and :meth:`encode_tokens` on each batch's ids,
    #: and runs no forward pass (``site`` is still checked, and names the cache directory)
    reads_tokens: ClassVar[bool] = False

    def check_site(self, site: Site, *, source: str = "feature source") -> None:
        """Raise unless ``site`` is the one this source reads and has this source's width."""
        if site.name != self.site:
            raise FeatureSourceError(f"{source} reads site '{self.site}', not '{site.name}'")
        if site.shape[-1] != self.d_in:
            raise FeatureSourceError(
                f"{source} expects width {self.d_in} at '{self.site}' but the model's site has "
                f"width {site.shape[-1]}"
            )

    @abstractmethod
    def encode(self, x: torch.Tensor) -> SparseActivations:
        """The nonzero latent activations of ``x`` ``[tokens, d_in]``."""

    def encode_tokens(self, ids: torch.Tensor) -> SparseActivations:
        """For a source with :attr:`reads_tokens`: the nonzero latent activations of a
        ``[contexts, ctx_len]`` block of token ids (on the CPU), token rows numbered context-major
        (``context * ctx_len + position``) as :meth:`encode` numbers them."""
        raise FeatureSourceError(f"{type(self).__name__} does not read token ids")

    @property
    def direction_site(self) -> str:
        """The site the decoder directions live in (where an intervention adds them): the site
        read, unless the source's latents write elsewhere (MLP neurons: the residual stream)."""
        return self.site

    def place(self, device: torch.device) -> None:
        """Compute on ``device`` (the model adapter's) from now on, unless the source's own
        ``device`` option pins another; called by the cache stage before the first batch.
        Default: nothing (a source that computes wherever its input lives). :meth:`encode` must
        accept input on the adapter's device whatever the placement."""
        return None

    def bind_model(self, adapter: Any) -> None:
        """Take what :meth:`decoder_directions` needs from the model adapter; called before
        directions are asked for. Default: nothing, the source holds its own decoder."""
        return None

    def decoder_directions(self, latents: torch.Tensor) -> torch.Tensor:
        """The output directions ``[len(latents), width of direction_site]`` of latents, for
        interventions (an SAE's decoder rows, of width ``d_in``)."""
        raise FeatureSourceError(f"{type(self).__name__} has no decoder directions")
