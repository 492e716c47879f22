"""Mechanistic anomaly detection: Mahalanobis distance from trusted data, scored by AUROC.

A Gaussian is fitted per layer on trusted features (e.g. the truthful persona's easy rows); test
rows are scored by their squared Mahalanobis distance to it, and AUROC says how well that
separates anomalous rows (the quirky persona) from normal ones. The covariance is shrunk towards
a scaled identity, ``(1 − α) Σ + α (tr Σ / d) I``, so it stays invertible with fewer rows than
dimensions. Features are ``[layers, n, d]`` (activations) or ``[1, n, layers]`` (probe scores at
every layer, as in Mallen et al.).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from autointerp_probes.probes import ProbeError, auroc

if TYPE_CHECKING:
    import torch


@dataclass
class Gaussian:
    mean: torch.Tensor  # [layers, d]
    precision: torch.Tensor  # [layers, d, d]

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance ``[layers, n]`` of ``x`` ``[layers, n, d]``."""
        z = x.double() - self.mean[:, None]
        return ((z @ self.precision) * z).sum(-1)


def fit_gaussian(x: torch.Tensor, shrinkage: float = 0.1) -> Gaussian:
    """Mean and shrunk inverse covariance per layer of trusted ``x`` ``[layers, n, d]``."""
    import torch

    if x.shape[1] < 2:
        raise ProbeError("anomaly detection needs at least two trusted rows")
    if not 0 <= shrinkage <= 1:
        raise ProbeError(f"shrinkage must be in [0, 1], got {shrinkage}")
    x = x.double()
    mean = x.mean(1)
    z = x - mean[:, None]
    cov = z.transpose(1, 2) @ z / (x.shape[1] - 1)
    d = x.shape[-1]
    scale = (cov.diagonal(dim1=1, dim2=2).mean(-1) * shrinkage).clamp_min(1e-9)
    cov = (1 - shrinkage) * cov + scale[:, None, None] * torch.eye(d, dtype=x.dtype)
    return Gaussian(mean, torch.linalg.pinv(cov, hermitian=True))


def anomaly_auroc(
    trusted: torch.Tensor, test: torch.Tensor, anomalous: torch.Tensor, shrinkage: float = 0.1
) -> torch.Tensor:
    """AUROC per layer of the distance to ``trusted`` separating ``anomalous`` (1) test rows."""
    return auroc(fit_gaussian(trusted, shrinkage).distance(test), anomalous)
