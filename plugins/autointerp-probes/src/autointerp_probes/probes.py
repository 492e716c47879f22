"""Linear probes over per-layer activations, vectorized across layers.

Every method fits all layers at once on ``X`` of shape ``[layers, n, d]``:

- ``logreg``: L2-regularised logistic regression (full-batch Adam on standardised features).
- ``diffmean``: the difference of the class means.
- ``lda``: Fisher's linear discriminant, ``(Σ_within + λI)⁻¹ (μ₁ − μ₀)``.
- ``ccs``: contrast-consistent search (Burns et al.), unsupervised, on contrast pairs
  ``(x⁺, x⁻)``: each side normalised separately, probe ``p = σ(w·x + b)`` trained so that
  ``p(x⁺) ≈ 1 − p(x⁻)`` and confidently; best of several random restarts. Labels are used only
  to orient its sign on the training split (CCS cannot know which side is "true").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from autointerp.errors import AutointerpError

if TYPE_CHECKING:
    import torch

METHODS = ("logreg", "diffmean", "lda", "ccs")


class ProbeError(AutointerpError):
    """A probe cannot be trained on this data."""


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve per row of ``scores`` ``[layers, n]`` (ties count one half)."""
    import torch

    y = labels.bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ProbeError("AUROC needs both labels in the evaluation split")
    scores = scores.double()
    out = torch.empty(scores.shape[0], dtype=torch.float64)
    for i, row in enumerate(scores):  # a handful of layers; each row is vectorized
        _, inverse, counts = torch.unique(row, return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        mid_rank = ends - (counts.double() - 1) / 2  # average 1-based rank of each tie group
        ranks = mid_rank[inverse]
        out[i] = (ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out.float()


@dataclass
class LinearProbe:
    """``score(x) = ((x − mean) / scale) · w + b`` per layer."""

    method: str
    w: torch.Tensor  # [layers, d]
    b: torch.Tensor  # [layers]
    mean: torch.Tensor  # [layers, d]
    scale: torch.Tensor  # [layers, d]

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[layers, n, d]`` -> ``[layers, n]``."""
        z = (x.float() - self.mean[:, None]) / self.scale[:, None]
        return (z @ self.w[..., None]).squeeze(-1) + self.b[:, None]


@dataclass
class CCSProbe:
    """A CCS probe: normalisation per side and ``σ(w·x + b)``; scores pairs."""

    w: torch.Tensor
    b: torch.Tensor
    norm_pos: tuple[torch.Tensor, torch.Tensor]
    norm_neg: tuple[torch.Tensor, torch.Tensor]
    sign: torch.Tensor  # [layers]: +1 or −1, from the training labels
    method: str = "ccs"

    def _p(self, x: torch.Tensor, norm: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        import torch

        z = (x.float() - norm[0][:, None]) / norm[1][:, None]
        return torch.sigmoid((z @ self.w[..., None]).squeeze(-1) + self.b[:, None])

    def score(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Credence that each statement is true: ``0.5 (p(x⁺) + 1 − p(x⁻))``, oriented."""
        p = 0.5 * (self._p(pos, self.norm_pos) + 1 - self._p(neg, self.norm_neg))
        return (p - 0.5) * self.sign[:, None]


def _standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(1)
    scale = x.std(1).clamp_min(1e-6) if x.shape[1] > 1 else x.new_ones(mean.shape)
    return mean, scale


def _check(y: torch.Tensor) -> None:
    if y.unique().numel() < 2:
        raise ProbeError("the training split needs examples of both labels")


def fit_diffmean(x: torch.Tensor, y: torch.Tensor) -> LinearProbe:
    _check(y)
    x = x.float()
    y = y.bool()
    mean = x.mean(1)
    w = x[:, y].mean(1) - x[:, ~y].mean(1)
    return LinearProbe("diffmean", w, x.new_zeros(x.shape[0]), mean, x.new_ones(mean.shape))


def fit_lda(x: torch.Tensor, y: torch.Tensor, shrinkage: float = 1e-2) -> LinearProbe:
    import torch

    _check(y)
    x = x.float()
    y = y.bool()
    mean, scale = _standardise(x)
    z = (x - mean[:, None]) / scale[:, None]
    mu1, mu0 = z[:, y].mean(1), z[:, ~y].mean(1)
    centred = torch.cat([z[:, y] - mu1[:, None], z[:, ~y] - mu0[:, None]], dim=1)
    cov = centred.transpose(1, 2) @ centred / max(1, z.shape[1] - 2)
    d = z.shape[-1]
    ridge = shrinkage * cov.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-6)
    cov = cov + ridge[:, None, None] * torch.eye(d)
    w = torch.linalg.solve(cov, (mu1 - mu0)[..., None]).squeeze(-1)
    b = -(w * (mu1 + mu0) / 2).sum(-1)
    return LinearProbe("lda", w, b, mean, scale)


def fit_logreg(
    x: torch.Tensor, y: torch.Tensor, *, l2: float = 1e-3, steps: int = 300, lr: float = 0.05
) -> LinearProbe:
    import torch

    _check(y)
    x = x.float()
    mean, scale = _standardise(x)
    z = ((x - mean[:, None]) / scale[:, None]).detach()
    target = y.float().expand(x.shape[0], -1)
    w = torch.zeros(x.shape[0], x.shape[-1], requires_grad=True)
    b = torch.zeros(x.shape[0], requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            logits = (z @ w[..., None]).squeeze(-1) + b[:, None]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            loss = loss * x.shape[0] + l2 * (w**2).sum()  # a sum over layers: independent fits
            loss.backward()
            opt.step()
    return LinearProbe("logreg", w.detach(), b.detach(), mean, scale)


def fit_ccs(
    pos: torch.Tensor,
    neg: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    restarts: int = 8,
    steps: int = 400,
    lr: float = 0.02,
    seed: int = 0,
) -> CCSProbe:
    """Unsupervised CCS on pairs ``[layers, n, d]``; ``y`` (optional) only orients the sign."""
    import torch

    pos, neg = pos.float(), neg.float()
    n_pos, n_neg = _standardise(pos), _standardise(neg)
    zp = ((pos - n_pos[0][:, None]) / n_pos[1][:, None])[None]  # [1, layers, n, d]
    zn = ((neg - n_neg[0][:, None]) / n_neg[1][:, None])[None]
    layers, _, d = pos.shape
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(restarts, layers, d, generator=g) / d**0.5
    w = w0.clone().requires_grad_(True)
    b = torch.zeros(restarts, layers, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)

    def losses() -> torch.Tensor:
        pp = torch.sigmoid((zp @ w[..., None]).squeeze(-1) + b[..., None])
        pn = torch.sigmoid((zn @ w[..., None]).squeeze(-1) + b[..., None])
        consistency = (pp - (1 - pn)) ** 2
        confidence = torch.minimum(pp, pn) ** 2
        return (consistency + confidence).mean(-1)  # [restarts, layers]

    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            losses().sum().backward()
            opt.step()
    with torch.no_grad():
        best = losses().argmin(0)  # per layer
        rows = torch.arange(layers)
        probe = CCSProbe(
            w[best, rows].detach(), b[best, rows].detach(), n_pos, n_neg, torch.ones(layers)
        )
        if y is not None:
            train_auc = auroc(probe.score(pos, neg), y)
            probe.sign = torch.where(train_auc < 0.5, -1.0, 1.0)
    return probe
