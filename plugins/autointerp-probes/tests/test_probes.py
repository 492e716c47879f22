"""Probes on planted data: AUROC ≈ 1 when a direction separates the labels, ≈ 0.5 when shuffled."""

from __future__ import annotations

import pytest
import torch
from autointerp_probes.evaluate import ProbeData, evaluate, stratified_split, transfer
from autointerp_probes.probes import METHODS, ProbeError, auroc


def planted(n: int = 200, d: int = 16, layers: int = 3, *, seed: int = 0, direction=None):
    """Layer ``l`` carries the label along a direction with strength ``l + 1``; CCS pairs carry
    truth as ``±`` that direction, flipped between the two answers."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    u = torch.randn(d, generator=g) if direction is None else direction
    u = u / u.norm()
    sign = (2 * y - 1).float()[None, :, None]
    strength = torch.arange(1, layers + 1).float()[:, None, None]
    acts = torch.randn(layers, n, d, generator=g) + 2 * strength * sign * u
    shared = torch.randn(layers, n, d, generator=g)
    pos = shared + 2 * strength * sign * u + 3.0
    neg = shared - 2 * strength * sign * u - 3.0
    return ProbeData(acts, y, pos=pos, neg=neg), u


def test_auroc_matches_the_pairwise_definition() -> None:
    scores = torch.tensor([[0.1, 0.4, 0.35, 0.8, 0.4], [1, 1, 1, 1, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    pairs = [(p, q) for p in (2, 3, 4) for q in (0, 1)]
    expected = sum(
        float(scores[0, p] > scores[0, q]) + 0.5 * float(scores[0, p] == scores[0, q])
        for p, q in pairs
    ) / len(pairs)
    assert auroc(scores, labels).tolist() == pytest.approx([expected, 0.5])
    with pytest.raises(ProbeError, match="both labels"):
        auroc(scores, torch.ones(5))


@pytest.mark.parametrize("method", METHODS)
def test_planted_direction_gives_auroc_near_one(method) -> None:
    data, _ = planted()
    train, test = stratified_split(data.labels, 0.3)
    result = evaluate(data, [method], train, test)[method]
    assert result.shape == (3,)
    assert (result > 0.97).all(), f"{method}: {result.tolist()}"


@pytest.mark.parametrize("method", METHODS)
def test_shuffled_labels_give_auroc_near_half(method) -> None:
    data, _ = planted(n=400)
    data.labels = data.labels[torch.randperm(400, generator=torch.Generator().manual_seed(1))]
    train, test = stratified_split(data.labels, 0.5)
    result = evaluate(data, [method], train, test)[method]
    assert ((result - 0.5).abs() < 0.12).all(), f"{method}: {result.tolist()}"


def test_transfer_across_groups() -> None:
    u = torch.randn(16, generator=torch.Generator().manual_seed(5))
    v = torch.randn(16, generator=torch.Generator().manual_seed(6))
    v = v - (v @ u) / (u @ u) * u  # orthogonal: a group whose truth lives elsewhere
    a, _ = planted(seed=1, direction=u)
    b, _ = planted(seed=2, direction=u)
    c, _ = planted(seed=3, direction=v)
    data = ProbeData(
        torch.cat([a.acts, b.acts, c.acts], 1),
        torch.cat([a.labels, b.labels, c.labels]),
        groups=["a"] * 200 + ["b"] * 200 + ["c"] * 200,
    )
    result = transfer(data, ["diffmean", "logreg"])
    for m in ("diffmean", "logreg"):
        assert (result[m][("a", "b")] > 0.97).all()
        assert ((result[m][("a", "c")] - 0.5).abs() < 0.15).all()
    with pytest.raises(ProbeError, match="needs contrast pairs"):
        evaluate(data, ["ccs"], torch.arange(10), torch.arange(10, 20))
