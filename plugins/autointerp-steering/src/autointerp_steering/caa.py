"""Contrastive activation addition (CAA) on any model adapter.

- :func:`caa_vectors`: per layer, mean activation at the answer token of ``context + positive``
  minus that of ``context + negative``.
- :func:`ab_metric`: p(positive) / (p(positive) + p(negative)) for the next token after each
  pair's context, optionally under interventions.
- :func:`sweep`: that metric over layers × multipliers, adding ``multiplier × vector`` at each
  layer through the adapter's ``Add`` intervention.

Only the adapter contract is used (``tokenize``, ``forward`` with ``capture`` / ``interventions``),
so the same code steers transformers, Mamba and RWKV.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp_steering.data import (
    ContrastPair,
    PairTokens,
    chunks,
    gather_last,
    pad_id,
    pad_right,
    tokenize_pairs,
)

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import Intervention, ModelAdapter, Positions


@dataclass
class SteeringVectors:
    """Steering vectors by site name (``resid_post.3`` or a state site), with provenance."""

    vectors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().float().contiguous().cpu() for k, v in self.vectors.items()}
        save_file(tensors, str(path), metadata={"autointerp": json.dumps(self.meta)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> SteeringVectors:
        from safetensors import safe_open

        from autointerp_steering.data import DatasetError

        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"steering vectors not found: {path}")
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("autointerp", "{}"))
            vectors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
        return cls(vectors, meta)

    def layers(self) -> list[int]:
        return sorted({int(k.rsplit(".", 1)[1]) for k in self.vectors})


def answer_sequences(toks: Sequence[PairTokens]) -> tuple[list[list[int]], list[list[int]]]:
    pos = [[*t.context, t.positive] for t in toks]
    neg = [[*t.context, t.negative] for t in toks]
    return pos, neg


def last_token_activations(
    adapter: ModelAdapter,
    seqs: Sequence[Sequence[int]],
    sites: Sequence[str],
    *,
    batch_size: int = 32,
) -> dict[str, torch.Tensor]:
    """Activations ``[n, *shape]`` of each site at the last token of each sequence."""
    import torch

    parts: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    pad = pad_id(adapter)
    for sl in chunks(len(seqs), batch_size):
        ids, mask = pad_right(seqs[sl], pad)
        out = adapter.forward(ids, attention_mask=mask, capture=sites, return_logits=False)
        for s in sites:
            parts[s].append(gather_last(out.captures[s], mask).float().cpu())
    return {s: torch.cat(v) for s, v in parts.items()}


def caa_vectors(
    adapter: ModelAdapter,
    pairs: Sequence[ContrastPair] | Sequence[PairTokens],
    *,
    layers: Sequence[int] | None = None,
    kind: str = "resid_post",
    batch_size: int = 32,
) -> SteeringVectors:
    """Mean(positive) − mean(negative) activation at the answer token, per layer."""
    toks = _tokens(adapter, pairs)
    layers = list(range(adapter.n_layers)) if layers is None else list(layers)
    sites = [adapter.site(f"{kind}.{i}").name for i in layers]
    pos, neg = answer_sequences(toks)
    acts = last_token_activations(adapter, pos + neg, sites, batch_size=batch_size)
    n = len(toks)
    vectors = {s: a[:n].mean(0) - a[n:].mean(0) for s, a in acts.items()}
    meta = {"method": "caa", "kind": kind, "n_pairs": n, "architecture": adapter.architecture}
    return SteeringVectors(vectors, meta)


def _tokens(
    adapter: ModelAdapter, pairs: Sequence[ContrastPair] | Sequence[PairTokens]
) -> list[PairTokens]:
    if pairs and isinstance(pairs[0], PairTokens):
        return list(pairs)  # type: ignore[arg-type]
    return tokenize_pairs(adapter, pairs)  # type: ignore[arg-type]


def ab_metric(
    adapter: ModelAdapter,
    pairs: Sequence[ContrastPair] | Sequence[PairTokens],
    interventions: Sequence[Intervention] = (),
    *,
    batch_size: int = 32,
) -> torch.Tensor:
    """Per pair, p(positive) / (p(positive) + p(negative)) for the token after the context.

    Interventions at all positions run on right-padded batches; interventions at chosen positions
    (e.g. ``-1``, the last context token) need every row to end at the same index, so those
    contexts are grouped by length instead of padded."""
    import torch

    toks = _tokens(adapter, pairs)
    if any(iv.positions is not None for iv in interventions):
        result = torch.empty(len(toks))
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(toks):
            groups.setdefault(len(t.context), []).append(i)
        for rows in groups.values():
            for sl in chunks(len(rows), batch_size):
                idx = rows[sl]
                ids = torch.tensor([list(toks[i].context) for i in idx], dtype=torch.long)
                logits = adapter.forward(ids, interventions=interventions).logits
                assert logits is not None
                result[idx] = _ab_from_logits(logits[:, -1], [toks[i] for i in idx])
        return result
    pad = pad_id(adapter)
    out: list[torch.Tensor] = []
    for sl in chunks(len(toks), batch_size):
        part = toks[sl]
        ids, mask = pad_right([t.context for t in part], pad)
        logits = adapter.forward(ids, attention_mask=mask, interventions=interventions).logits
        assert logits is not None
        out.append(_ab_from_logits(gather_last(logits, mask), part))
    return torch.cat(out)


def _ab_from_logits(last: torch.Tensor, toks: Sequence[PairTokens]) -> torch.Tensor:
    import torch

    rows = torch.arange(len(toks))
    pos = torch.tensor([t.positive for t in toks])
    neg = torch.tensor([t.negative for t in toks])
    last = last.float().cpu()
    # p+/(p+ + p-) is the sigmoid of the log-odds: exact and stable without a full softmax
    return torch.sigmoid(last[rows, pos] - last[rows, neg])


def add_steering(
    site: str, vector: torch.Tensor, multiplier: float, positions: Positions = None
) -> Intervention:
    from autointerp.adapter import Add

    return Add(site, positions, vector=vector * multiplier)


@dataclass
class SweepResult:
    """The behaviour metric per (row, multiplier); rows are layers (or state layers)."""

    rows: list[str]
    multipliers: list[float]
    grid: torch.Tensor  # [len(rows), len(multipliers)]
    baseline: float
    meta: dict[str, Any] = field(default_factory=dict)

    def as_records(self) -> list[dict[str, Any]]:
        return [
            {"row": r, "multiplier": m, "metric": float(self.grid[i, j])}
            for i, r in enumerate(self.rows)
            for j, m in enumerate(self.multipliers)
        ]


def sweep(
    adapter: ModelAdapter,
    pairs: Sequence[ContrastPair] | Sequence[PairTokens],
    vectors: SteeringVectors,
    *,
    layers: Sequence[int] | None = None,
    multipliers: Sequence[float] = (-3, -2, -1, 0, 1, 2, 3),
    positions: Positions = None,
    batch_size: int = 32,
) -> SweepResult:
    """Mean behaviour metric for each layer × multiplier (steering one layer at a time)."""
    import torch

    toks = _tokens(adapter, pairs)
    kind = vectors.meta.get("kind", "resid_post")
    layers = vectors.layers() if layers is None else list(layers)
    base = float(ab_metric(adapter, toks, batch_size=batch_size).mean())
    grid = torch.empty(len(layers), len(multipliers))
    for i, layer in enumerate(layers):
        site = f"{kind}.{layer}"
        if site not in vectors.vectors:
            from autointerp_steering.data import DatasetError

            raise DatasetError(f"no steering vector for {site}; have {sorted(vectors.vectors)}")
        for j, m in enumerate(multipliers):
            if m == 0:
                grid[i, j] = base  # adding a zero vector is the unsteered model
                continue
            iv = add_steering(site, vectors.vectors[site], float(m), positions)
            grid[i, j] = ab_metric(adapter, toks, [iv], batch_size=batch_size).mean()
    return SweepResult(
        rows=[f"{kind}.{x}" for x in layers],
        multipliers=[float(m) for m in multipliers],
        grid=grid,
        baseline=base,
        meta={"method": "caa", "n_pairs": len(toks), "architecture": adapter.architecture},
    )
