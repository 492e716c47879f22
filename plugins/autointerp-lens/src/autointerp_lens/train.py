"""Training a tuned lens: stream windows, minimise KL(final ‖ lens) per site, checkpoint as we go.

The subject model runs once per batch without gradients (captures + final logits); each site's
translator then gets its own backward pass through ``unembed``, so peak memory holds one site's
``[tokens, vocab]`` logits at a time. Checkpoints (lens + optimizer + position in the stream) are
written atomically; ``resume`` skips the windows already seen.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp_lens.lens import LensError, TunedLens, _kl, lens_sites

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import ModelAdapter

STATE = "train_state.json"
OPTIMIZER = "optimizer.pt"


@dataclass
class TrainResult:
    lens: TunedLens
    steps: int
    tokens: int
    history: list[float] = field(default_factory=list)  # mean KL over sites, per step


def _optimizer(lens: TunedLens, lr: float, weight_decay: float) -> Any:
    import torch

    return torch.optim.Adam(lens.module.parameters(), lr=lr, weight_decay=weight_decay)


def save_checkpoint(lens: TunedLens, optimizer: Any, directory: Path) -> None:
    import torch

    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    lens.save(tmp)
    torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
    (tmp / STATE).write_text(
        json.dumps({"steps": lens.meta["steps"], "tokens": lens.meta["tokens_trained"]}),
        encoding="utf-8",
    )
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)


def train_tuned_lens(
    adapter: ModelAdapter,
    batches: Iterable[torch.Tensor],
    *,
    max_tokens: int,
    lens: TunedLens | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 50,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (or continue) a tuned lens on ``batches`` until ``max_tokens`` tokens are seen."""
    import torch

    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    optimizer = None
    if resume and ckpt is not None and (ckpt / STATE).is_file():
        lens = TunedLens.load(ckpt)
        optimizer = _optimizer(lens, lr, weight_decay)
        optimizer.load_state_dict(torch.load(ckpt / OPTIMIZER, weights_only=True))
    lens = lens or TunedLens.for_adapter(adapter)
    lens.check(adapter)
    lens.meta.setdefault("steps", 0)
    lens.meta.setdefault("tokens_trained", 0)
    optimizer = optimizer or _optimizer(lens, lr, weight_decay)
    sites = lens_sites(adapter)[:-1]
    missing = [s for s in sites if s not in lens.sites]
    if missing:
        raise LensError(f"the lens has no translator for {missing[:3]}")
    skip = int(lens.meta["tokens_trained"])
    seen = 0
    history: list[float] = []
    bar = _Progress(max_tokens, enabled=progress)
    bar.advance(min(skip, max_tokens))
    params = {s: list(lens.module.translators[s.replace(".", "_")].parameters()) for s in sites}
    try:
        for ids in batches:
            if lens.meta["tokens_trained"] >= max_tokens:
                break
            if seen < skip:  # resuming: these windows were trained on already
                seen += ids.numel()
                continue
            seen += ids.numel()
            out = adapter.forward(ids, capture=sites)
            assert out.logits is not None
            final = torch.log_softmax(out.logits.float(), -1).detach()
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for site in sites:
                h = out.captures[site].detach().float()
                logp = torch.log_softmax(adapter.unembed(lens.translate(site, h)).float(), -1)
                loss = _kl(final, logp).mean()
                grads = torch.autograd.grad(loss, params[site])
                for p, g in zip(params[site], grads, strict=True):
                    p.grad = g
                total += loss.detach().item()
            optimizer.step()
            lens.meta["steps"] += 1
            lens.meta["tokens_trained"] += ids.numel()
            mean_kl = total / len(sites)
            history.append(mean_kl)
            bar.advance(ids.numel(), f"KL {mean_kl:.4f}")
            if on_step is not None:
                on_step(lens.meta["steps"], mean_kl)
            if ckpt is not None and lens.meta["steps"] % checkpoint_every == 0:
                save_checkpoint(lens, optimizer, ckpt)
    finally:
        bar.close()
    if ckpt is not None:
        save_checkpoint(lens, optimizer, ckpt)
    return TrainResult(lens, lens.meta["steps"], lens.meta["tokens_trained"], history)


class _Progress:
    """A rich progress bar over tokens (silent when disabled)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("tuned lens"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("tokens {task.description}"),
                TimeRemainingColumn(),
            )
            self.bar.start()
            self.task = self.bar.add_task("", total=total)

    def advance(self, n: int, text: str = "") -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=n, description=text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
