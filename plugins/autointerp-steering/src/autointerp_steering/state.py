"""State steering for recurrent models: the CAA contrast taken on the recurrent state.

The contrast vector of a state site (``ssm_state.L``, ``time_mix_state.L`` ...) is the mean final
state after ``context + positive`` minus that after ``context + negative``. Steering runs the
context up to its last token, adds ``multiplier × vector`` to a *copy* of the state, and continues
from it; residual interventions can be given at the same time (combined steering).

The contract returns the state after the last token of the whole (padded) batch, so sequences are
grouped by length instead of padded: exact for any recurrent adapter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from autointerp_steering.caa import (
    SteeringVectors,
    SweepResult,
    _ab_from_logits,
    _tokens,
    answer_sequences,
)
from autointerp_steering.data import ContrastPair, DatasetError, PairTokens, chunks

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import Intervention, ModelAdapter, RecurrentState


def _require_recurrent(adapter: ModelAdapter) -> None:
    if not adapter.recurrent:
        raise DatasetError(
            f"state steering needs a recurrent model; {adapter.architecture} has no state "
            "(use residual steering)"
        )


def by_length(seqs: Sequence[Sequence[int]]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(seqs):
        groups[len(s)].append(i)
    return dict(groups)


def final_states(
    adapter: ModelAdapter, seqs: Sequence[Sequence[int]], *, batch_size: int = 32
) -> dict[str, torch.Tensor]:
    """The recurrent state after the last token of each sequence: name -> ``[n, *shape]``."""
    import torch

    _require_recurrent(adapter)
    names = [s.name for s in adapter.state_sites]
    result = {n: torch.empty(len(seqs), *adapter.site(n).shape) for n in names}
    for _, rows in by_length(seqs).items():
        for sl in chunks(len(rows), batch_size):
            idx = rows[sl]
            ids = torch.tensor([list(seqs[i]) for i in idx], dtype=torch.long)
            state = adapter.forward(ids, return_state=True, return_logits=False).state
            assert state is not None
            for n in names:
                result[n][idx] = state[n].float().cpu()
    return result


def state_vectors(
    adapter: ModelAdapter,
    pairs: Sequence[ContrastPair] | Sequence[PairTokens],
    *,
    batch_size: int = 32,
) -> SteeringVectors:
    """Mean(positive) − mean(negative) final state after the answer token, per state site."""
    toks = _tokens(adapter, pairs)
    pos, neg = answer_sequences(toks)
    states = final_states(adapter, pos + neg, batch_size=batch_size)
    n = len(toks)
    vectors = {k: v[:n].mean(0) - v[n:].mean(0) for k, v in states.items()}
    meta = {
        "method": "caa-state",
        "kind": "state",
        "n_pairs": n,
        "architecture": adapter.architecture,
    }
    return SteeringVectors(vectors, meta)


def steer_state(
    state: RecurrentState,
    vectors: Mapping[str, torch.Tensor],
    multiplier: float,
    sites: Sequence[str] | None = None,
) -> RecurrentState:
    """A new state: ``state + multiplier × vector`` at ``sites`` (default: every vector's site).

    Every entry is cloned, so the caller's state is never touched."""
    chosen = set(vectors if sites is None else sites)
    out = {}
    for name, value in state.items():
        if name in chosen:
            out[name] = value + multiplier * vectors[name].to(
                device=value.device, dtype=value.dtype
            )
        else:
            out[name] = value.clone()
    return out


def state_sites_of_layer(adapter: ModelAdapter, layer: int) -> list[str]:
    return [s.name for s in adapter.state_sites if s.layer == layer]


def context_state(
    adapter: ModelAdapter, ids: torch.Tensor, interventions: Sequence[Intervention] = ()
) -> RecurrentState:
    """The state after ``ids`` ``[batch, seq]`` (the initial state for an empty prefix)."""
    if ids.shape[1] == 0:
        return adapter.initial_state(ids.shape[0])
    state = adapter.forward(
        ids, interventions=interventions, return_state=True, return_logits=False
    ).state
    assert state is not None
    return state


def ab_metric_state(
    adapter: ModelAdapter,
    pairs: Sequence[ContrastPair] | Sequence[PairTokens],
    vectors: SteeringVectors,
    multiplier: float,
    *,
    sites: Sequence[str] | None = None,
    interventions: Sequence[Intervention] = (),
    batch_size: int = 32,
) -> torch.Tensor:
    """The A/B metric with the state edited just before each context's last token.

    ``interventions`` (residual steering) apply to the whole context: combined steering."""
    import torch

    _require_recurrent(adapter)
    toks = _tokens(adapter, pairs)
    result = torch.empty(len(toks))
    for _, rows in by_length([t.context for t in toks]).items():
        for sl in chunks(len(rows), batch_size):
            idx = rows[sl]
            ids = torch.tensor([list(toks[i].context) for i in idx], dtype=torch.long)
            state = context_state(adapter, ids[:, :-1], interventions)
            if multiplier:
                state = steer_state(state, vectors.vectors, multiplier, sites)
            logits = adapter.forward(ids[:, -1:], state=state, interventions=interventions).logits
            assert logits is not None
            result[idx] = _ab_from_logits(logits[:, -1], [toks[i] for i in idx])
    return result


def state_sweep(
    adapter: ModelAdapter,
    pairs: Sequence[ContrastPair] | Sequence[PairTokens],
    vectors: SteeringVectors,
    *,
    layers: Sequence[int] | None = None,
    multipliers: Sequence[float] = (-3, -2, -1, 0, 1, 2, 3),
    kinds: Sequence[str] | None = None,
    batch_size: int = 32,
) -> SweepResult:
    """Mean A/B metric per layer × multiplier, editing that layer's state sites (of ``kinds``)."""
    import torch

    toks = _tokens(adapter, pairs)
    layers = list(range(adapter.n_layers)) if layers is None else list(layers)
    base = float(ab_metric_state(adapter, toks, vectors, 0.0, batch_size=batch_size).mean())
    grid = torch.empty(len(layers), len(multipliers))
    for i, layer in enumerate(layers):
        sites = [
            s
            for s in state_sites_of_layer(adapter, layer)
            if kinds is None or s.rsplit(".", 1)[0] in kinds
        ]
        for j, m in enumerate(multipliers):
            grid[i, j] = (
                base
                if m == 0
                else ab_metric_state(
                    adapter, toks, vectors, float(m), sites=sites, batch_size=batch_size
                ).mean()
            )
    label = "+".join(kinds) if kinds else "state"
    return SweepResult(
        rows=[f"{label}.{x}" for x in layers],
        multipliers=[float(m) for m in multipliers],
        grid=grid,
        baseline=base,
        meta={"method": "caa-state", "n_pairs": len(toks), "architecture": adapter.architecture},
    )
