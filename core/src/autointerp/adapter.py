"""The model adapter contract: one typed interface over transformer and recurrent language models.

A method (caching, scorers that run the subject model, steering, lenses, probes) talks to a model
only through :class:`ModelAdapter`:

- ``tokenizer``, ``n_layers``, ``d_model``, ``architecture`` and named
  :class:`~autointerp.types.Site` objects: ``resid_pre.L``, ``resid_post.L``, ``mlp_out.L``,
  ``attn_out.L`` where they exist (``mixer_out.L`` where a block has one mixer and no MLP),
  ``mlp_neurons.L`` (a transformer MLP's hidden activations, width d_mlp), and for recurrent models
  the per-layer state, under names each adapter plugin documents.
- :meth:`ModelAdapter.forward`: token ids in; activations of the requested sites captured;
  interventions given as data (:class:`Add`, :class:`Replace`, :class:`Ablate`, :class:`Scale`); an
  optional initial recurrent state in and the final state out; logits out.
- :meth:`ModelAdapter.unembed` (final norm + unembedding, for lenses) and an exact one-token
  :meth:`ModelAdapter.step` for recurrent models.
- :meth:`ModelAdapter.input_embeddings`: the token embedding matrix ``[vocab, d_model]`` (e.g.
  for embedding-space neighbours of tokens), or None where an adapter cannot give it.
- placement: :class:`ModelOptions` holds the ``device`` and ``dtype`` options every adapter's
  config shares; :func:`check_device`, :func:`resolve_device` and :func:`resolve_dtype` turn them
  into torch values (feature sources use the same, see :mod:`autointerp.features`).

A recurrent state is a plain ``dict`` from state-site name to a ``[batch, *site.shape]`` tensor.
Adapters never modify a state (or any tensor) the caller passed in.

Nothing here imports torch at module level: core stays importable without it.
"""

from __future__ import annotations

import difflib
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, SerializerFunctionWrapHandler, model_serializer

from autointerp.config import ComponentConfig
from autointerp.errors import AutointerpError
from autointerp.types import Site

if TYPE_CHECKING:
    import torch

#: positions an intervention touches: all (None), one index, several, or a slice; negative
#: indices count from the end of the sequence (``-1`` is the last token, also under left padding)
Positions = int | slice | tuple[int, ...] | None

#: a recurrent state: state-site name (``ssm_state.3``) -> tensor ``[batch, *site.shape]``
RecurrentState = dict[str, "torch.Tensor"]

ACTIVATION_KINDS = ("resid_pre", "resid_post", "attn_out", "mlp_out", "mlp_neurons", "mixer_out")


class AdapterError(AutointerpError):
    """A model adapter was asked something it cannot do (one-line message)."""


class SiteError(AdapterError):
    """Unknown site name or layer out of range."""


class InterventionError(AdapterError):
    """An intervention does not fit its site (wrong width, state site, bad positions)."""


class UnsupportedModelError(AdapterError):
    """The adapter (or its backend) cannot serve this model or architecture."""


# -- placement: device and dtype -------------------------------------------------------------------

#: what a model or feature source computes in; "auto": see :func:`resolve_dtype`
DTypeName = Literal["auto", "float32", "float16", "bfloat16", "float64"]
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(?::(\d+))?")


def device_problem(value: str) -> str | None:
    """Why ``value`` is not a device this machine can compute on (a phrase without the value), or
    None.

    "auto" and "cpu" are always fine and need no torch; any other device imports torch to ask
    whether it exists here."""
    if value in ("auto", "cpu"):
        return None
    match = _DEVICE.fullmatch(value)
    if match is None:
        return "expected auto, cpu, cuda, cuda:N, mps or xpu"
    import torch

    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            build = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
            return f"torch sees no CUDA device here ({build}); expected auto or cpu"
        if index is not None and int(index) >= n:
            return f"torch sees {n} CUDA device(s) here; expected cuda:0..cuda:{n - 1}"
    elif kind == "mps" and not torch.backends.mps.is_available():
        return "the MPS backend is not available here; expected auto or cpu"
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return "torch sees no XPU device here; expected auto or cpu"
    return None


def check_device(value: str) -> str:
    """A pydantic validator for ``device`` options: refuses, when the run is planned, a device
    this machine does not have (one line naming what was expected)."""
    if (problem := device_problem(value)) is not None:
        raise ValueError(problem)
    return value


def resolve_device(
    value: str = "auto", *, field: str = "model.device", error: type[Exception] | None = None
) -> torch.device:
    """The torch device of a ``device`` option: "auto" is the first CUDA device when torch sees
    one, else the CPU (MPS and XPU only when asked for). Raises ``error`` (default
    :class:`AdapterError`) naming ``field`` for a device this machine does not have."""
    import torch

    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if (problem := device_problem(value)) is not None:
        raise (error or AdapterError)(f"{field}: {problem} (got {value!r})")
    return torch.device(value)


def resolve_dtype(value: str, device: torch.device | str) -> torch.dtype:
    """The torch dtype of a ``dtype`` option on ``device``: "auto" is bfloat16 on a CUDA device
    that supports it (what GPU interpretability work usually runs in: half the memory, full
    float32 range), else float32 (today's CPU behaviour: exact, and fast there)."""
    import torch

    if value != "auto":
        return getattr(torch, value)  # type: ignore[no-any-return]
    if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


Device = Annotated[str, AfterValidator(check_device)]


class ModelOptions(ComponentConfig):
    """The placement options every model adapter's config shares (subclass it).

    ``device`` and ``dtype`` default to "auto" (see :func:`resolve_device` and
    :func:`resolve_dtype`). A dump of the options (what the run's cache fingerprints) records
    what "auto" resolves to on this machine, so a CPU run records ``cpu``/``float32`` as it did
    before "auto" existed, and a bfloat16 cache is never taken for a float32 one."""

    device: Device = Field(
        "auto", description="torch device: auto (cuda when torch sees one, else cpu), cpu, "
        "cuda, cuda:N, mps, xpu",
    )  # fmt: skip
    dtype: DTypeName = Field(
        "auto", description="weights and activations dtype; auto: bfloat16 on a CUDA device "
        "that supports it, else float32",
    )  # fmt: skip

    @model_serializer(mode="wrap")
    def _resolved(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if "auto" in (data.get("device"), data.get("dtype")):
            device = resolve_device(self.device)
            if data.get("device") == "auto":
                data["device"] = device.type
            if data.get("dtype") == "auto":
                data["dtype"] = dtype_name(resolve_dtype(self.dtype, device))
        return data


# -- interventions ---------------------------------------------------------------------------------


def _positions_key(positions: Positions) -> Positions:
    if isinstance(positions, list):
        return tuple(positions)
    return positions


@dataclass(frozen=True, eq=False)
class Intervention:
    """Base class: an edit of a site's activation ``[batch, seq, *shape]`` at chosen positions."""

    site: str
    positions: Positions = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _positions_key(self.positions))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Return the edited activation (a new tensor; ``x`` is left untouched)."""
        if self.positions is None:
            return self.edit(x)
        out = x.clone()
        index = (
            self.positions
            if isinstance(self.positions, slice)
            else list(self.positions if isinstance(self.positions, tuple) else (self.positions,))
        )
        out[:, index] = self.edit(x[:, index])
        return out

    def edit(self, x: torch.Tensor) -> torch.Tensor:
        """The edit applied to the selected positions ``x`` (returns a new tensor)."""
        raise NotImplementedError

    def check(self, site: Site, seq_len: int | None = None) -> None:
        """Raise :class:`InterventionError` if this intervention cannot apply to ``site``."""
        if site.kind not in ACTIVATION_KINDS:
            raise InterventionError(
                f"{type(self).__name__} at {site.name}: interventions apply to activation sites "
                f"({', '.join(ACTIVATION_KINDS)}); to edit a recurrent state, pass an edited "
                "copy as `state=`"
            )
        if (
            seq_len is not None
            and self.positions is not None
            and not isinstance(self.positions, slice)
        ):
            pos = self.positions if isinstance(self.positions, tuple) else (self.positions,)
            bad = [p for p in pos if not -seq_len <= p < seq_len]
            if bad:
                raise InterventionError(
                    f"{type(self).__name__} at {site.name}: position(s) {bad} outside a "
                    f"sequence of {seq_len} tokens"
                )


def _width_check(name: str, site: Site, value: Any) -> None:
    if value is None:
        raise InterventionError(f"{name} at {site.name}: no vector given")
    shape = tuple(getattr(value, "shape", ()))
    width = shape[-1] if shape else (len(value) if isinstance(value, Sequence) else None)
    if width is not None and width != site.shape[-1]:
        raise InterventionError(
            f"{name} at {site.name}: vector has width {width} but the site has width "
            f"{site.shape[-1]}"
        )


def _as_tensor(value: Any, like: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.as_tensor(value, device=like.device, dtype=like.dtype)


@dataclass(frozen=True, eq=False)
class Add(Intervention):
    """Add ``vector`` to the activation: width ``d``, broadcast against ``[batch, positions, d]``
    (a tensor, array or list)."""

    vector: Any = field(default=None, kw_only=True)

    def edit(self, x: torch.Tensor) -> torch.Tensor:
        return x + _as_tensor(self.vector, x)

    def check(self, site: Site, seq_len: int | None = None) -> None:
        super().check(site, seq_len)
        _width_check("Add", site, self.vector)


@dataclass(frozen=True, eq=False)
class Replace(Intervention):
    """Replace the activation by ``value`` (width ``d``, broadcast over batch and positions)."""

    value: Any = field(default=None, kw_only=True)

    def edit(self, x: torch.Tensor) -> torch.Tensor:
        return _as_tensor(self.value, x).expand_as(x).clone()

    def check(self, site: Site, seq_len: int | None = None) -> None:
        super().check(site, seq_len)
        _width_check("Replace", site, self.value)


@dataclass(frozen=True, eq=False)
class Ablate(Intervention):
    """Zero-ablate the activation."""

    def edit(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(()).expand_as(x).clone()


@dataclass(frozen=True, eq=False)
class Scale(Intervention):
    """Multiply the activation by ``factor``."""

    factor: float = field(default=1.0, kw_only=True)

    def edit(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


# -- results ---------------------------------------------------------------------------------------


@dataclass
class ForwardResult:
    """What one forward call returns.

    ``logits``: ``[batch, seq, vocab]`` (None when not asked for). ``captures``: site name ->
    ``[batch, seq, *shape]`` for activation sites (padding positions included: select real tokens
    with the attention mask), ``[batch, *shape]`` (the final value) for state sites.
    ``state``: the final recurrent state when ``return_state`` was set, else None.
    """

    logits: torch.Tensor | None
    captures: dict[str, torch.Tensor] = field(default_factory=dict)
    state: RecurrentState | None = None


@dataclass(frozen=True)
class Batch:
    """Tokenized texts: ``input_ids`` and ``attention_mask``, both ``[batch, seq]``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor


# -- the contract ----------------------------------------------------------------------------------


class ModelAdapter(ABC):
    """A language model behind the contract. Subclasses set the attributes and implement the
    abstract methods; site validation and error messages are shared here."""

    #: the adapter's registered name and the backend serving its calls ("hooks" by default)
    name: ClassVar[str] = "adapter"
    backend: str = "hooks"
    #: architecture id, as the adapter names the model family it serves
    architecture: str
    #: whether the model carries a recurrent state (has ``step`` and state sites)
    recurrent: bool = False
    n_layers: int
    d_model: int
    vocab_size: int
    tokenizer: Any
    sites: Mapping[str, Site]

    # -- sites ---------------------------------------------------------------------------------

    @property
    def site_kinds(self) -> list[str]:
        """Site kinds in definition order (``resid_pre``, ``resid_post`` ...)."""
        return list(dict.fromkeys(s.kind for s in self.sites.values()))

    @property
    def state_sites(self) -> list[Site]:
        return [s for s in self.sites.values() if s.kind not in ACTIVATION_KINDS]

    def site(self, name: str) -> Site:
        """The site called ``name``, or a :class:`SiteError` that lists the valid ones."""
        found = self.sites.get(name)
        if found is not None:
            return found
        kind, _, layer = name.rpartition(".")
        kinds = self.site_kinds
        valid = f"valid sites: {', '.join(k + '.L' for k in kinds)} for L in 0..{self.n_layers - 1}"
        if kind in kinds and layer.lstrip("-").isdigit():
            raise SiteError(
                f"site '{name}': layer {layer} out of range; {self.architecture} has "
                f"{self.n_layers} layers (0..{self.n_layers - 1})"
            )
        close = difflib.get_close_matches(kind or name, kinds, n=1)
        hint = f" (did you mean '{close[0]}.{layer or 0}'?)" if close else ""
        raise SiteError(f"unknown site '{name}' for {self.architecture}{hint}; {valid}")

    def check_interventions(
        self, interventions: Sequence[Intervention], seq_len: int | None = None
    ) -> None:
        for iv in interventions:
            if not isinstance(iv, Intervention):
                raise InterventionError(
                    f"expected Add, Replace, Ablate or Scale, got {type(iv).__name__}"
                )
            iv.check(self.site(iv.site), seq_len)

    # -- running -------------------------------------------------------------------------------

    @abstractmethod
    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        capture: Sequence[str] = (),
        interventions: Sequence[Intervention] = (),
        state: RecurrentState | None = None,
        return_state: bool = False,
        return_logits: bool = True,
    ) -> ForwardResult:
        """Run ``input_ids`` ``[batch, seq]``; capture sites, apply interventions, return logits.

        ``attention_mask`` marks real tokens (1) and padding (0). ``state`` (recurrent models only)
        is the state before the first token; ``return_state`` asks for the state after the last.
        """

    def step(
        self,
        token_ids: torch.Tensor,
        state: RecurrentState | None,
        *,
        capture: Sequence[str] = (),
        interventions: Sequence[Intervention] = (),
    ) -> ForwardResult:
        """Advance a recurrent model by one token per sequence (``token_ids``: ``[batch]``).

        Returns logits ``[batch, 1, vocab]`` and the new state; ``state`` is not modified.
        """
        if not self.recurrent:
            raise UnsupportedModelError(
                f"step() needs a recurrent model; {self.architecture} is a transformer "
                "(run forward() on the whole sequence)"
            )
        return self.forward(
            token_ids.reshape(-1, 1),
            capture=capture,
            interventions=interventions,
            state=state,
            return_state=True,
        )

    @abstractmethod
    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Final norm + unembedding: residual-stream activations ``[..., d_model]`` -> logits.

        Runs under the caller's grad mode (wrap in ``torch.no_grad()`` when no gradient is needed),
        so gradients can flow back to ``resid``, e.g. to train a tuned lens."""

    def input_embeddings(self) -> torch.Tensor | None:
        """The token embedding matrix ``[vocab, d_model]``: row ``i`` is what token ``i`` enters
        the first layer as. Detached, and the model's own weights (no copy) where possible: do
        not modify it. None (the default) when the adapter cannot give it."""
        return None

    def initial_state(self, batch_size: int = 1) -> RecurrentState:
        """The state a recurrent model starts from (what ``state=None`` means)."""
        raise UnsupportedModelError(f"{self.architecture} has no recurrent state")

    @abstractmethod
    def tokenize(self, texts: Sequence[str], *, max_length: int | None = None) -> Batch:
        """Tokenize a batch, padded the way this adapter batches correctly."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: architecture, sizes and every site with shape and module path."""
        return {
            "adapter": self.name,
            "backend": self.backend,
            "architecture": self.architecture,
            "recurrent": self.recurrent,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "vocab_size": self.vocab_size,
            "sites": [
                {"name": s.name, "shape": list(s.shape), "module_path": s.module_path}
                for s in self.sites.values()
            ],
        }
