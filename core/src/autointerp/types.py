"""Data types shared by every stage of the pipeline.

Defined once here and passed along unchanged: a stage never reaches into another stage's internals.
Nothing in this module imports torch, so listing plugins stays cheap.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

#: The kinds of component a plugin can register, in pipeline order.
ComponentKind = Literal[
    "model_adapter", "feature_source", "explainer", "scorer", "llm_client", "executor"
]
COMPONENT_KINDS: tuple[ComponentKind, ...] = (
    "model_adapter",
    "feature_source",
    "explainer",
    "scorer",
    "llm_client",
    "executor",
)


def kind_label(kind: str) -> str:
    """Human wording of a component kind: ``"model_adapter"`` -> ``"model adapter"``."""
    return kind.replace("llm_", "LLM_").replace("_", " ")


@dataclass(frozen=True)
class Site:
    """A named place in a model whose activations can be captured or intervened on.

    ``name`` follows ``<kind>.<layer>``: ``resid_pre.3``, ``resid_post.3``, ``mlp_out.3``,
    ``attn_out.3``, ``mixer_out.3`` (Mamba), and the recurrent state per layer: ``conv_state.3``,
    ``ssm_state.3`` (Mamba), ``time_mix_state.3``, ``channel_mix_state.3`` (RWKV).
    ``shape`` is the per-token (per-sequence, for states) shape; ``module_path`` the module hooked.
    """

    name: str
    shape: tuple[int, ...]
    module_path: str

    @property
    def kind(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @property
    def layer(self) -> int:
        return int(self.name.rsplit(".", 1)[1])


@dataclass(frozen=True, order=True, slots=True)
class LatentRef:
    """One latent: its feature source key (e.g. ``"sae/resid_post.6"``) and its index there."""

    source: str
    index: int

    def __str__(self) -> str:
        return f"{self.source}:{self.index}"


class LatentIds(AbstractSet[LatentRef]):
    """An immutable set of latents held as a sorted array of indices per source: 8 bytes a
    latent instead of a Python object each, which is what a stage can afford to keep of a
    million latents (the latents explained, scored, wanted). Equal to a ``set`` of the same
    :class:`LatentRef` objects; iterates in (source, index) order."""

    __slots__ = ("_by_source", "_len")

    def __init__(self, latents: Iterable[LatentRef] = ()) -> None:
        groups: dict[str, list[int]] = {}
        for ref in latents:
            groups.setdefault(ref.source, []).append(ref.index)
        self._set(groups)

    @classmethod
    def from_indices(cls, by_source: Mapping[str, Iterable[int]]) -> LatentIds:
        """The latents ``source -> indices`` (any order, repeats allowed)."""
        ids = cls.__new__(cls)
        ids._set(by_source)
        return ids

    def _set(self, by_source: Mapping[str, Any]) -> None:
        import numpy as np

        kept = {s: np.unique(_int64s(v)) for s, v in by_source.items()}
        self._by_source: dict[str, np.ndarray] = {s: a for s, a in kept.items() if len(a)}
        self._len = sum(len(a) for a in self._by_source.values())

    @classmethod
    def _from_iterable(cls, it: Iterable[LatentRef]) -> LatentIds:
        return cls(it)

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, LatentRef):
            return False
        found = self._by_source.get(ref.source)
        if found is None:
            return False
        i = int(found.searchsorted(ref.index))
        return i < len(found) and int(found[i]) == ref.index

    def __len__(self) -> int:
        return self._len

    @property
    def sources(self) -> list[str]:
        """The sources with a latent here, sorted."""
        return sorted(self._by_source)

    def __iter__(self) -> Iterator[LatentRef]:
        for source in sorted(self._by_source):
            found = self._by_source[source]
            for start in range(0, len(found), 65536):  # a block of ints at a time, not a list
                for index in found[start : start + 65536].tolist():
                    yield LatentRef(source, index)

    def __or__(self, other: Any) -> LatentIds:
        if not isinstance(other, LatentIds):
            other = LatentIds(other)
        import numpy as np

        merged = dict(self._by_source)
        for s, a in other._by_source.items():
            merged[s] = np.union1d(merged[s], a) if s in merged else a
        return LatentIds.from_indices(merged)

    __ror__ = __or__

    def __and__(self, other: Any) -> LatentIds:
        if not isinstance(other, LatentIds):
            return LatentIds(ref for ref in other if ref in self)
        import numpy as np

        return LatentIds.from_indices(
            {s: np.intersect1d(a, other._by_source[s], assume_unique=True)
             for s, a in self._by_source.items() if s in other._by_source}
        )  # fmt: skip

    __rand__ = __and__

    def __repr__(self) -> str:
        return f"LatentIds({self._len} latents in {len(self._by_source)} sources)"


@dataclass(frozen=True)
class Example:
    """A window of tokens with the latent's activation on each token."""

    tokens: tuple[int, ...]
    str_tokens: tuple[str, ...]
    activations: tuple[float, ...]
    #: how the example was drawn: "top", "train-quantile:3", "train-random:3" (shown to the
    #: explainer), "quantile:3" (held out), "random", "similar" ... (non-activating)
    kind: str = "top"

    @property
    def role(self) -> Literal["train", "test", "negative"]:
        """What the example is for, from its kind: "top" and "train-..." ones are shown to the
        explainer, "quantile:N" ones are held out for scoring, every other kind is
        non-activating."""
        if self.kind == "top" or self.kind.startswith("train-"):
            return "train"
        return "test" if self.kind.startswith("quantile") else "negative"

    @property
    def quantile(self) -> int | None:
        """The activation quantile the example comes from (0 = weakest), the ``N`` of a kind
        ending in ``:N``; None for "top" examples and non-activating ones."""
        _, sep, tail = self.kind.rpartition(":")
        return int(tail) if sep and tail.isdigit() else None

    @property
    def max_activation(self) -> float:
        return max(self.activations, default=0.0)

    @property
    def text(self) -> str:
        return "".join(self.str_tokens)

    def window(self, width: int) -> tuple[list[str], list[float]]:
        """At most ``width`` string tokens and activations, centred on the peak activation
        (the start of a flat example)."""
        toks, acts = list(self.str_tokens), list(self.activations)
        if len(toks) <= width:
            return toks, acts
        peak = max(range(len(acts)), key=acts.__getitem__)
        start = min(max(0, peak - width // 2), len(toks) - width)
        return toks[start : start + width], acts[start : start + width]

    @cached_property
    def key(self) -> str:
        """A stable id from the tokens: explainers list shown examples by it, scorers skip them.
        (The sha1 of the ids' JSON list, written without ``json.dumps``'s per-call cost.)"""
        text = "[" + ", ".join(map(str, self.tokens)) + "]"
        return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Explanation:
    """An explainer's natural-language description of a latent."""

    latent: LatentRef
    text: str
    explainer: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    #: what made it: config hash, model ids, prompt version, library version (set by the run)
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Prediction:
    """A scorer's verdict on one example: what it predicted and what was true."""

    example_id: int
    predicted: float | None  # None: the LLM's answer could not be parsed (counted, never scored)
    actual: float
    probability: float | None = None
    #: the scored example's activation quantile (:attr:`Example.quantile`; None: a negative, or
    #: a prediction about no single example)
    quantile: int | None = None


@dataclass(frozen=True)
class Score:
    """One scorer's result for one explanation: headline value, metrics, per-example predictions.

    ``value`` is None when every prediction failed; ``n_failures`` counts the excluded examples.
    """

    latent: LatentRef
    scorer: str
    explainer: str
    value: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    predictions: tuple[Prediction, ...] = ()
    n_failures: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    #: what made it: config hash, model ids, prompt version, library version (set by the run)
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LLMCall:
    """One request to an LLM and its response, as kept in the results store's ledger and cache."""

    request_hash: str
    client: str
    model: str
    request: dict[str, Any]
    response: dict[str, Any]
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    #: who asked, for the ledger: the stage ("explain", "score") and component (the explainer,
    #: or ``scorer/explainer``) the call was made for; "" when not known
    stage: str = ""
    component: str = ""


def _int64s(values: Any) -> Any:
    """``values`` as an int64 numpy array; an ``array('q')`` is viewed, not copied per element."""
    import numpy as np

    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, array) and values.typecode == "q":
        return np.frombuffer(values, dtype=np.int64)
    return np.fromiter(values, dtype=np.int64)
