"""Fit probes on one split and report AUROC per layer on another (random, or by group)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autointerp_probes.probes import (
    METHODS,
    LinearProbe,
    ProbeError,
    auroc,
    fit_ccs,
    fit_diffmean,
    fit_lda,
    fit_logreg,
)

if TYPE_CHECKING:
    import torch


@dataclass
class ProbeData:
    """Activations ``[layers, n, d]`` of statements (and of their contrast pairs, for CCS)."""

    acts: torch.Tensor
    labels: torch.Tensor
    groups: list[str] = field(default_factory=list)
    pos: torch.Tensor | None = None
    neg: torch.Tensor | None = None
    layers: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.layers:
            self.layers = list(range(self.acts.shape[0]))
        if not self.groups:
            self.groups = [""] * self.acts.shape[1]


def fit(method: str, data: ProbeData, idx: torch.Tensor, **kwargs: Any) -> Any:
    y = data.labels[idx]
    if method == "ccs":
        if data.pos is None or data.neg is None:
            raise ProbeError("ccs needs contrast pairs (positive/negative activations)")
        return fit_ccs(data.pos[:, idx], data.neg[:, idx], y, **kwargs)
    fitters = {"logreg": fit_logreg, "diffmean": fit_diffmean, "lda": fit_lda}
    if method not in fitters:
        raise ProbeError(f"unknown probe method '{method}'; choose from {', '.join(METHODS)}")
    return fitters[method](data.acts[:, idx], y, **kwargs)


def score(probe: Any, data: ProbeData, idx: torch.Tensor) -> torch.Tensor:
    if isinstance(probe, LinearProbe):
        return probe.score(data.acts[:, idx])
    assert data.pos is not None and data.neg is not None
    return probe.score(data.pos[:, idx], data.neg[:, idx])


def stratified_split(
    labels: torch.Tensor, test_fraction: float = 0.3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test indices with both labels in each (as far as the counts allow)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for value in labels.unique():
        idx = (labels == value).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, round(len(idx) * test_fraction)) if len(idx) > 1 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def evaluate(
    data: ProbeData,
    methods: Sequence[str],
    train_idx: torch.Tensor,
    test_idx: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """AUROC per layer ``[layers]`` on ``test_idx`` for each method trained on ``train_idx``."""
    return {
        m: auroc(score(fit(m, data, train_idx), data, test_idx), data.labels[test_idx])
        for m in methods
    }


def group_indices(data: ProbeData, group: str) -> torch.Tensor:
    import torch

    idx = torch.tensor([i for i, g in enumerate(data.groups) if g == group], dtype=torch.long)
    if len(idx) == 0:
        raise ProbeError(f"no statements in group '{group}'; groups: {sorted(set(data.groups))}")
    return idx


def transfer(
    data: ProbeData, methods: Sequence[str], groups: Sequence[str] | None = None
) -> dict[str, dict[tuple[str, str], torch.Tensor]]:
    """Train on each group, test on every other: method -> (train, test) -> AUROC per layer."""
    groups = sorted(set(data.groups)) if groups is None else list(groups)
    if len(groups) < 2:
        raise ProbeError("transfer evaluation needs statements from at least two groups")
    index = {g: group_indices(data, g) for g in groups}
    out: dict[str, dict[tuple[str, str], torch.Tensor]] = {m: {} for m in methods}
    for m in methods:
        for source in groups:
            probe = fit(m, data, index[source])
            for target in groups:
                if target != source:
                    out[m][(source, target)] = auroc(
                        score(probe, data, index[target]), data.labels[index[target]]
                    )
    return out
