"""A compact TopK sparse-autoencoder trainer on a model's site activations.

The recipe follows the TopK SAE papers (Gao et al. 2024, "Scaling and evaluating sparse
autoencoders"; the sparsify trainer's defaults): decoder rows of unit norm with the encoder
initialised as their transpose, ``b_dec`` from the data mean, ``f = TopK(ReLU(W_enc^T (x - b_dec)
+ b_enc))``, the fraction of variance unexplained (FVU) as the loss, an AuxK term that reconstructs
the residual from dead latents, Adam with a learning rate scaled by the width, and the decoder's
gradient component along each row removed before a step and the rows renormalised after it.

Activations stream in: each model forward's site block enters a bounded buffer, which is shuffled
and trained on once full (``passes`` times: on a CPU the forward pass costs more than a step), so
memory is the buffer's, whatever the number of training tokens. The reported FVU is measured on the
first pass, each batch before the SAE has trained on it.
The result is saved as a plain safetensors file whose metadata names the activation, ``k`` and the
site (or in the sparsify layout), and loads back through the ``sae`` feature source.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from autointerp.features import FeatureSourceError

if TYPE_CHECKING:
    from autointerp.adapter import ModelAdapter


@dataclass(frozen=True)
class TrainSettings:
    width: int
    k: int
    tokens: int = 1_000_000
    batch_size: int = 4096  # tokens per optimizer step
    lr: float | None = None  # default: 2e-4 / sqrt(width / 2**14), as sparsify
    buffer_tokens: int = 65_536  # activations held (and shuffled) at once
    passes: int = 1  # optimizer passes over each buffer (reuses costly activations)
    auxk_alpha: float = 1 / 32
    dead_tokens: int = 200_000  # a latent silent for this many tokens counts as dead
    seed: int = 0

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(self.width / 2**14)


@dataclass
class TrainStats:
    tokens: int = 0  # activations read from the stream
    steps: int = 0
    seconds: float = 0.0
    fvu_start: float = float("nan")  # FVU of the first step (the initialisation)
    fvu: float = float("nan")  # mean FVU of the last first-pass steps (on unseen batches)
    dead_fraction: float = 0.0
    history: list[float] = field(default_factory=list, repr=False)  # first-pass FVU per step

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "history"}
        out["tokens_per_s"] = self.tokens / self.seconds if self.seconds else 0.0
        return out


class TopKSAE(nn.Module):
    """``f = TopK(ReLU(W_enc^T (x - b_dec) + b_enc))``, ``x_hat = W_dec^T f + b_dec``."""

    def __init__(self, d_in: int, width: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        if not 1 <= k <= width:
            raise FeatureSourceError(f"k must be in 1..width ({width}), got {k}")
        w_dec = torch.randn(width, d_in, generator=generator)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(width))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.k, self.d_in, self.width = k, d_in, width

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k values (>= 0) and latent indices, ``[tokens, k]`` each."""
        return self.pre_activations(x).topk(self.k, dim=-1, sorted=False)

    def decode(self, values: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        # a gather of k decoder rows per token: never a dense [tokens, width] activation matrix
        return torch.einsum("tk,tkd->td", values, self.W_dec[latents]) + self.b_dec

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """Dense latent activations ``[tokens, width]`` (tests and small inputs)."""
        values, latents = self.encode(x)
        return torch.zeros(len(x), self.width, dtype=values.dtype).scatter(1, latents, values)

    @torch.no_grad()
    def renormalize(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Drop the gradient component along each decoder row (it would only change the norm)."""
        if self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(1, keepdim=True)
            self.W_dec.grad -= parallel * self.W_dec


def site_activations(
    adapter: ModelAdapter, site: str, batches: Iterable[torch.Tensor]
) -> Iterator[torch.Tensor]:
    """``[tokens, d]`` float32 blocks of ``site`` on the CPU (where the SAE trains), for each
    ``[batch, seq]`` token batch (no logits); one copy per batch from the model's device."""
    width = adapter.site(site).shape[-1]
    for ids in batches:
        with torch.no_grad():
            out = adapter.forward(ids, capture=[site], return_logits=False)
        yield out.captures[site].reshape(-1, width).to(device="cpu", dtype=torch.float32)


def _buffers(blocks: Iterable[torch.Tensor], size: int, limit: int) -> Iterator[torch.Tensor]:
    """Buffers of up to ``size`` rows, ``limit`` rows in all; memory holds one buffer."""
    pending: list[torch.Tensor] = []
    held = seen = 0
    for block in blocks:
        block = block[: limit - seen]
        pending.append(block)
        held += len(block)
        seen += len(block)
        if held >= size or seen >= limit:
            yield torch.cat(pending)
            pending, held = [], 0
        if seen >= limit:
            return
    if pending:
        yield torch.cat(pending)


def _fvu(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    total = (x - x.mean(0)).pow(2).sum()
    return (x - x_hat).pow(2).sum() / total.clamp_min(1e-12)


def train_topk(
    blocks: Iterable[torch.Tensor],
    d_in: int,
    settings: TrainSettings,
    *,
    progress: bool = True,
) -> tuple[TopKSAE, TrainStats]:
    """Train a TopK SAE on a stream of ``[tokens, d_in]`` activation blocks."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    s = settings
    gen = torch.Generator().manual_seed(s.seed)
    sae = TopKSAE(d_in, s.width, s.k, gen)
    opt = torch.optim.Adam(sae.parameters(), lr=s.learning_rate, eps=6.25e-10)
    stats = TrainStats()
    since_fired = torch.zeros(s.width, dtype=torch.long)
    start = time.perf_counter()
    columns = (
        TextColumn("training SAE"), BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} tok"),
        TextColumn("{task.fields[rate]:,.0f} tok/s"), TextColumn("FVU {task.fields[fvu]:.3f}"),
        TextColumn("dead {task.fields[dead]:.1%}"), TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("train", total=s.tokens, rate=0.0, fvu=float("nan"), dead=0.0)
        for buffer in _buffers(blocks, s.buffer_tokens, s.tokens):
            if buffer.shape[-1] != d_in:
                raise FeatureSourceError(
                    f"activations have width {buffer.shape[-1]}, the SAE expects {d_in}"
                )
            if stats.steps == 0:
                with torch.no_grad():
                    sae.b_dec.copy_(buffer.mean(0))
            for epoch in range(s.passes):
                order = torch.randperm(len(buffer), generator=gen)
                for i in range(0, len(buffer), s.batch_size):
                    fvu, dead = _step(sae, opt, buffer[order[i : i + s.batch_size]], since_fired, s)
                    stats.steps += 1
                    if epoch == 0:
                        # first pass: the batch is scored before the SAE has trained on it
                        stats.tokens += min(s.batch_size, len(buffer) - i)
                        stats.history.append(fvu)
                    elapsed = time.perf_counter() - start
                    bar.update(
                        task, completed=stats.tokens, rate=stats.tokens / max(elapsed, 1e-9),
                        fvu=_tail_mean(stats.history), dead=dead,
                    )  # fmt: skip
    stats.seconds = time.perf_counter() - start
    stats.fvu_start = stats.history[0] if stats.history else float("nan")
    stats.fvu = _tail_mean(stats.history)
    stats.dead_fraction = float((since_fired >= s.dead_tokens).float().mean())
    return sae.eval(), stats


def _step(
    sae: TopKSAE,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    since_fired: torch.Tensor,
    s: TrainSettings,
) -> tuple[float, float]:
    """One optimizer step on ``x``; returns its FVU and the dead share after it."""
    values, latents = sae.encode(x)
    x_hat = sae.decode(values, latents)
    fvu = _fvu(x, x_hat)
    loss = fvu
    fired = torch.zeros(s.width, dtype=torch.bool)
    fired[latents[values > 0]] = True
    since_fired += len(x)
    since_fired[fired] = 0
    dead = since_fired >= s.dead_tokens
    if s.auxk_alpha > 0 and dead.any():
        loss = loss + s.auxk_alpha * _auxk(sae, x, x_hat, dead, min(sae.d_in // 2, s.width))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    sae.project_decoder_grad()
    opt.step()
    sae.renormalize()
    return float(fvu.detach()), float(dead.float().mean())


def _tail_mean(history: list[float], n: int = 20) -> float:
    tail = history[-n:]
    return sum(tail) / len(tail) if tail else float("nan")


def _auxk(
    sae: TopKSAE, x: torch.Tensor, x_hat: torch.Tensor, dead: torch.Tensor, k_aux: int
) -> torch.Tensor:
    """How well the dead latents' top-k_aux reconstruct the main reconstruction's residual."""
    residual = (x - x_hat).detach()
    pre = sae.pre_activations(x).masked_fill(~dead, 0.0)
    values, latents = pre.topk(min(k_aux, int(dead.sum())), dim=-1, sorted=False)
    e_hat = torch.einsum("tk,tkd->td", values, sae.W_dec[latents])
    return (residual - e_hat).pow(2).sum() / (residual - residual.mean(0)).pow(2).sum().clamp_min(
        1e-12
    )


def save(sae: TopKSAE, out: Path, *, site: str, fmt: str = "plain", **meta: Any) -> Path:
    """Write ``sae`` as a plain safetensors file (metadata: activation, k, site, decoder-bias
    subtraction and ``meta``) or as a sparsify directory (``cfg.json`` + ``sae.safetensors``)."""
    from safetensors.torch import save_file

    with torch.no_grad():
        w_enc, b_enc = sae.W_enc.detach().contiguous(), sae.b_enc.detach().contiguous()
        w_dec, b_dec = sae.W_dec.detach().contiguous(), sae.b_dec.detach().contiguous()
    if fmt == "sparsify":
        out.mkdir(parents=True, exist_ok=True)
        save_file(
            {"encoder.weight": w_enc.T.contiguous(), "encoder.bias": b_enc, "W_dec": w_dec,
             "b_dec": b_dec},
            out / "sae.safetensors",
        )  # fmt: skip
        cfg = {"k": sae.k, "num_latents": sae.width, "d_in": sae.d_in, "expansion_factor":
               sae.width // sae.d_in, "normalize_decoder": True, "multi_topk": False,
               "skip_connection": False}  # fmt: skip
        (out / "cfg.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
        return out
    if fmt != "plain":
        raise FeatureSourceError(f"--format {fmt!r}: expected plain or sparsify")
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "activation": "topk",
        "k": str(sae.k),
        "site": site,
        "subtract_decoder_bias": "true",
    }
    metadata.update({k: str(v) for k, v in meta.items()})
    save_file({"W_enc": w_enc, "b_enc": b_enc, "W_dec": w_dec, "b_dec": b_dec}, out, metadata)
    return out
