"""The contract of every component kind, and the one request object per latent.

The pipeline talks to components only through what is defined here. Kinds and where their
contracts live:

- model adapter: :class:`autointerp.adapter.ModelAdapter` (tokenizer, sites, forward with
  captures and interventions, ``unembed``, ``input_embeddings``, RNN ``step``);
- feature source: :class:`autointerp.features.FeatureSource` (``encode``, optional
  ``decoder_directions`` and ``direction_site``);
- LLM client: :class:`autointerp.llm.LLMBackend` (one attempt at one chat request; the pipeline
  wraps it in :class:`autointerp.llm.LLMClient`);
- explainer: :class:`Explainer`; scorer: :class:`Scorer`; executor: :class:`Executor` (below;
  the built-in ones are in :mod:`autointerp.executors`).

Explainers and scorers declare ``needs``: a frozenset of :class:`Need` values naming the inputs
beyond the examples that they use. :func:`check_needs` refuses, before any model loads, a need a
run cannot supply; :func:`explain_one` and :func:`score_one` call a component for one latent, hand
it exactly what it needs, check what it returns and stamp its registered name on the result. A
component that raises or returns the wrong type fails that latent with one line naming it; the run
goes on. See docs/contracts.md for the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from autointerp.errors import AutointerpError
from autointerp.types import Example, Explanation, LatentRef, Score

if TYPE_CHECKING:
    import numpy as np

    from autointerp.adapter import ModelAdapter
    from autointerp.llm import LLMClient


class Need(StrEnum):
    """An input beyond the examples that an explainer or scorer may declare in ``needs``."""

    #: an LLM client (``llm``): every explainer gets one; scorers that ask through an LLM
    LLM = "llm"
    #: the subject model's adapter (``adapter=``), forwards serialised across latents
    ADAPTER = "adapter"
    #: non-activating examples (``negatives=``), for explainers; scorers always get them
    NEGATIVES = "negatives"
    #: the tokens the latent's decoder direction promotes through the unembedding
    #: (``promoted=``: (token, logit) pairs, strongest first)
    PROMOTED_TOKENS = "promoted_tokens"
    #: the latent's decoder direction (``direction=``, float32 ``[width]``, and ``site=`` where it
    #: lives elsewhere than the site the source reads)
    DIRECTION = "direction"


#: what each need means, for errors and the contract reference (tested to cover every need)
NEED_DOCS: dict[Need, str] = {
    Need.LLM: "an LLM client (the run's [llm])",
    Need.ADAPTER: "the subject model's adapter",
    Need.NEGATIVES: "non-activating examples (latents.n_negatives > 0)",
    Need.PROMOTED_TOKENS: "the tokens a latent's decoder direction promotes through the "
    "unembedding (a feature source with decoder directions)",
    Need.DIRECTION: "the latent's decoder direction (a feature source with decoder directions)",
}

#: how many promoted tokens a latent's request carries
N_PROMOTED = 10


class ContractError(AutointerpError):
    """A component broke its contract (bad ``needs``, wrong return type)."""


@dataclass(frozen=True)
class LatentRequest:
    """Everything the pipeline hands a component about one latent.

    ``train``: the activating examples shown to the explainer; ``test``: held-out activating
    examples for scorers; ``negatives``: non-activating examples; ``promoted``: (token, logit)
    pairs, strongest first (empty unless a component needs them); ``direction``: the decoder
    direction (None unless needed) and ``direction_site`` where it lives. ``error`` set: the
    latent cannot be handled at all (no activating examples ...): the pipeline records it as this
    latent's failure without calling the component.
    """

    latent: LatentRef
    train: Sequence[Example] = ()
    negatives: Sequence[Example] = ()
    promoted: Sequence[tuple[str, float]] = ()
    error: str | None = None
    test: Sequence[Example] = ()
    direction: np.ndarray | None = None
    direction_site: str | None = None

    @property
    def examples(self) -> Sequence[Example]:
        """The train examples (the name the pipeline used before requests had a test split)."""
        return self.train


@runtime_checkable
class Explainer(Protocol):
    """Turns a latent's examples into an explanation.

    ``explain`` is called once per latent with the train examples, an LLM client, ``seed=`` and,
    when declared in ``needs``, ``negatives=`` and ``promoted=``. It returns an
    :class:`~autointerp.types.Explanation` (the pipeline stamps the registered name in
    ``explainer``) or raises (any exception: that latent fails with its message).
    """

    needs: frozenset[str]

    async def explain(
        self, latent: LatentRef, examples: Sequence[Example], llm: Any, **inputs: Any
    ) -> Explanation: ...


@runtime_checkable
class Scorer(Protocol):
    """Rates how well an explanation predicts its latent.

    ``score`` is called once per explanation with the held-out activating examples, the
    non-activating examples, the run's LLM client, ``seed=``, ``adapter=`` (when ``"adapter"``
    or ``"direction"`` is declared, or ``needs`` is absent) and ``direction=``/``site=`` (when
    ``"direction"`` is declared). It returns a :class:`~autointerp.types.Score` (the pipeline
    stamps the registered name in ``scorer``, the explainer and the latent) or raises.
    """

    needs: frozenset[str]

    async def score(
        self,
        explanation: Explanation,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        llm: Any,
        **inputs: Any,
    ) -> Score: ...


@runtime_checkable
class Executor(Protocol):
    """Runs the pipeline's CPU-bound work units (example building, in latent ranges).

    ``map(fn, units)`` returns ``fn(unit)`` for every unit, in order, read lazily (a bounded
    number of units ahead); ``fn`` is a module-level function and the units plain data, so an
    executor may run them in other processes or machines. Results go back to the driver, which
    alone writes the store. ``close()`` releases workers. Raises an ``AutointerpError`` with one
    line when a unit cannot run (a dead worker, a deadline).

    Optional: ``status() -> str``, a short line for the run's progress display (e.g. workers
    alive), read at every refresh, so it must return at once; ``cache_chunks(...)`` with
    :func:`~autointerp.cache.build_cache`'s arguments, to cache in the executor's workers."""

    def map(self, fn: Callable[[Any], Any], units: Iterable[Any]) -> Iterator[Any]: ...

    def close(self) -> None: ...


def needs_of(component: Any, kind: str, name: str) -> frozenset[Need] | None:
    """A component's declared needs as :class:`Need` values; None when it declares none (a scorer
    without ``needs`` gets the LLM client and the adapter, as before needs existed). Raises
    :class:`ContractError` naming an unknown need."""
    declared = getattr(component, "needs", None)
    if declared is None:
        return None
    if isinstance(declared, str) or not isinstance(declared, Iterable):
        raise ContractError(
            f"{kind} '{name}': needs must be a set of names, not {type(declared).__name__}"
        )
    out: set[Need] = set()
    for need in declared:
        try:
            out.add(Need(need))
        except ValueError:
            known = ", ".join(n.value for n in Need)
            raise ContractError(f"{kind} '{name}' needs '{need}', which no run supplies; "
                                f"known needs: {known}") from None  # fmt: skip
    return frozenset(out)


def check_needs(
    kind: str,
    name: str,
    needs: frozenset[Need] | None,
    *,
    has_directions: bool | None,
    n_negatives: int,
    where: str,
) -> str | None:
    """Why this run cannot supply ``needs`` (one line), or None. ``has_directions`` None: not
    known before the feature source is built (checked per latent then)."""
    for need in sorted(needs or ()):
        if need in (Need.PROMOTED_TOKENS, Need.DIRECTION) and has_directions is False:
            return (f"{where}: {kind} '{name}' needs {NEED_DOCS[need]}, and the selected feature "
                    "source has none")  # fmt: skip
        if need is Need.NEGATIVES and kind == "explainer" and n_negatives <= 0:
            return f"{where}: {kind} '{name}' needs {NEED_DOCS[need]}; set latents.n_negatives"
    return None


class NotScorable(AutointerpError):
    """Raised by a scorer when a latent cannot be scored meaningfully (no held-out activating
    examples, say): not a failure, and never a number. The pipeline stores a score with value
    None and ``meta["not_scorable"]`` = the reason."""


class ComponentFailure(AutointerpError):
    """One latent failed inside a component, or the component broke its contract; the message
    names the component."""


async def explain_one(
    explainer: Explainer,
    name: str,
    request: LatentRequest,
    llm: LLMClient | Any,
    needs: frozenset[Need],
    *,
    seed: int,
) -> Explanation:
    """Call ``explainer`` for one latent with what it needs; the checked, stamped result."""
    if request.error is not None:
        raise ComponentFailure(request.error)
    inputs: dict[str, Any] = {"seed": seed}
    if Need.NEGATIVES in needs:
        inputs["negatives"] = request.negatives
    if Need.PROMOTED_TOKENS in needs:
        inputs["promoted"] = request.promoted
    result = await explainer.explain(request.latent, request.train, llm, **inputs)
    if not isinstance(result, Explanation):
        raise ComponentFailure(
            f"explainer '{name}' returned {type(result).__name__}, not an Explanation"
        )
    return replace(result, explainer=name, latent=request.latent)


async def score_one(
    scorer: Scorer,
    name: str,
    explanation: Explanation,
    request: LatentRequest,
    llm: LLMClient | Any,
    needs: frozenset[Need] | None,
    *,
    seed: int,
    adapter: ModelAdapter | Any = None,
) -> Score:
    """Call ``scorer`` for one explanation with what it needs; the checked, stamped result."""
    if request.error is not None:
        raise ComponentFailure(request.error)
    inputs: dict[str, Any] = {"seed": seed}
    if needs is None or Need.ADAPTER in needs or Need.DIRECTION in needs:
        inputs["adapter"] = adapter
    if needs is not None and Need.DIRECTION in needs:
        inputs["direction"] = request.direction
        if request.direction_site is not None:
            inputs["site"] = request.direction_site
    try:
        result = await scorer.score(explanation, request.test, request.negatives, llm, **inputs)
    except NotScorable as exc:
        result = Score(
            explanation.latent, name, explanation.explainer, None, meta={"not_scorable": str(exc)}
        )
    if not isinstance(result, Score):
        raise ComponentFailure(f"scorer '{name}' returned {type(result).__name__}, not a Score")
    return replace(result, scorer=name, explainer=explanation.explainer, latent=explanation.latent)


__all__ = [
    "NEED_DOCS",
    "ComponentFailure",
    "ContractError",
    "Executor",
    "Explainer",
    "LatentRequest",
    "Need",
    "NotScorable",
    "Scorer",
    "check_needs",
    "explain_one",
    "needs_of",
    "score_one",
]
