"""Logit lens and tuned lens over any model adapter.

- Logit lens: decode a layer's residual with the model's own final norm + unembedding
  (``adapter.unembed``).
- Tuned lens: an affine translator per layer (all but the last), ``h + W h + b`` with
  ``W = 0, b = 0`` at initialisation (so it starts as the logit lens), trained to minimise
  KL(final ‖ lens) on a corpus.

Lensed sites are ``resid_pre.0`` (the embedding) and every ``resid_post.L``; the last one decodes to
the model's logits exactly, a built-in sanity row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.errors import AutointerpError

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import ModelAdapter

WEIGHTS = "tuned_lens.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1


class LensError(AutointerpError):
    """A lens does not fit the model, or its files are missing."""


def lens_sites(adapter: ModelAdapter) -> list[str]:
    return ["resid_pre.0", *[f"resid_post.{i}" for i in range(adapter.n_layers)]]


def _make_module(sites: Sequence[str], d_model: int) -> Any:
    from torch import nn

    class TunedLensModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.translators = nn.ModuleDict()
            for site in sites:
                lin = nn.Linear(d_model, d_model)
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
                self.translators[site.replace(".", "_")] = lin

        def forward(self, site: str, h: torch.Tensor) -> torch.Tensor:
            key = site.replace(".", "_")
            if key not in self.translators:
                return h  # the last layer: the lens is the model's own output
            lin = self.translators[key]
            return h + lin(h.to(lin.weight.dtype))

    return TunedLensModule()


@dataclass
class TunedLens:
    """Affine translators per site, with the config that says what model they belong to."""

    sites: list[str]
    d_model: int
    meta: dict[str, Any] = field(default_factory=dict)
    module: Any = None

    def __post_init__(self) -> None:
        if self.module is None:
            self.module = _make_module(self.sites, self.d_model)

    @classmethod
    def for_adapter(cls, adapter: ModelAdapter) -> TunedLens:
        return cls(
            lens_sites(adapter)[:-1],
            adapter.d_model,
            meta={
                "architecture": adapter.architecture,
                "n_layers": adapter.n_layers,
                "vocab_size": adapter.vocab_size,
                "tokens_trained": 0,
                "steps": 0,
            },
        )

    def translate(self, site: str, h: torch.Tensor) -> torch.Tensor:
        return self.module(site, h)

    def check(self, adapter: ModelAdapter) -> None:
        if self.d_model != adapter.d_model or self.meta.get("n_layers") not in (
            None,
            adapter.n_layers,
        ):
            raise LensError(
                f"this tuned lens is for a model with d_model {self.d_model} and "
                f"{self.meta.get('n_layers')} layers, not {adapter.architecture} with d_model "
                f"{adapter.d_model} and {adapter.n_layers} layers"
            )

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.module.state_dict().items()}
        save_file(tensors, str(directory / WEIGHTS))
        config = {
            "format": FORMAT_VERSION,
            "sites": self.sites,
            "d_model": self.d_model,
            **self.meta,
        }
        (directory / CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TunedLens:
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / WEIGHTS).is_file() or not (directory / CONFIG).is_file():
            raise LensError(f"no tuned lens in {directory} (expected {WEIGHTS} and {CONFIG})")
        config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
        if config.get("format") != FORMAT_VERSION:
            raise LensError(f"{directory / CONFIG}: unsupported format {config.get('format')}")
        sites, d_model = config.pop("sites"), config.pop("d_model")
        config.pop("format")
        lens = cls(sites, d_model, meta=config)
        lens.module.load_state_dict(load_file(str(directory / WEIGHTS)))
        return lens


# -- evaluation ------------------------------------------------------------------------------------


def _kl(logp_ref: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """KL(ref ‖ q) per token, in nats: ``[...]``."""
    return (logp_ref.exp() * (logp_ref - logp)).sum(-1)


def _bytes_of(adapter: ModelAdapter, ids: torch.Tensor) -> int:
    return sum(len(adapter.tokenizer.decode(row.tolist()).encode("utf-8")) for row in ids)


@dataclass
class LensReport:
    """Per-site KL to the final output and next-token CE, for the logit lens and the tuned lens."""

    sites: list[str]
    kl_logit: list[float]
    ce_logit: list[float]
    kl_tuned: list[float] | None
    ce_tuned: list[float] | None
    ce_model: float
    tokens: int
    bytes: int

    def bits_per_byte(self, ce: float) -> float:
        # ce is mean nats per predicted token; scale by tokens per byte
        return ce * (self.tokens / max(self.bytes, 1)) / math.log(2)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for i, site in enumerate(self.sites):
            row = {
                "site": site,
                "kl_logit": self.kl_logit[i],
                "ce_logit": self.ce_logit[i],
                "bpb_logit": self.bits_per_byte(self.ce_logit[i]),
            }
            if self.kl_tuned is not None and self.ce_tuned is not None:
                row |= {
                    "kl_tuned": self.kl_tuned[i],
                    "ce_tuned": self.ce_tuned[i],
                    "bpb_tuned": self.bits_per_byte(self.ce_tuned[i]),
                }
            out.append(row)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ce_model": self.ce_model,
            "bpb_model": self.bits_per_byte(self.ce_model),
            "tokens": self.tokens,
            "bytes": self.bytes,
            "rows": self.rows(),
        }


def evaluate(
    adapter: ModelAdapter,
    batches: Iterable[torch.Tensor],
    lens: TunedLens | None = None,
    *,
    max_batches: int | None = None,
) -> LensReport:
    """Mean per-token KL(final ‖ lens) and next-token CE for each site, over ``batches``."""
    import torch

    sites = lens_sites(adapter)
    if lens is not None:
        lens.check(adapter)
    n_sites = len(sites)
    kl_l, ce_l = (
        torch.zeros(n_sites, dtype=torch.float64),
        torch.zeros(n_sites, dtype=torch.float64),
    )
    kl_t, ce_t = (
        torch.zeros(n_sites, dtype=torch.float64),
        torch.zeros(n_sites, dtype=torch.float64),
    )
    ce_model = 0.0
    tokens = predicted = n_bytes = 0
    for b, ids in enumerate(batches):
        if max_batches is not None and b >= max_batches:
            break
        out = adapter.forward(ids, capture=sites)
        assert out.logits is not None
        final = torch.log_softmax(out.logits.float(), -1)
        target = ids[:, 1:].to(final.device)
        ce_model += float(-final[:, :-1].gather(-1, target[..., None]).sum())
        tokens += ids.numel()
        predicted += target.numel()
        n_bytes += _bytes_of(adapter, ids[:, 1:])
        for i, site in enumerate(sites):
            h = out.captures[site]
            variants = [(h, kl_l, ce_l)]
            if lens is not None:
                with torch.no_grad():
                    variants.append((lens.translate(site, h.float()).to(h.dtype), kl_t, ce_t))
            for x, kl_acc, ce_acc in variants:
                with torch.no_grad():
                    logp = torch.log_softmax(adapter.unembed(x).float(), -1)
                kl_acc[i] += float(_kl(final, logp).sum())
                ce_acc[i] += float(-logp[:, :-1].gather(-1, target[..., None]).sum())
    if tokens == 0:
        raise LensError("the corpus gave no full window of tokens: lower --seq-len/--batch-size")
    return LensReport(
        sites=sites,
        kl_logit=(kl_l / tokens).tolist(),
        ce_logit=(ce_l / predicted).tolist(),
        kl_tuned=(kl_t / tokens).tolist() if lens is not None else None,
        ce_tuned=(ce_t / predicted).tolist() if lens is not None else None,
        ce_model=ce_model / predicted,
        tokens=predicted,
        bytes=n_bytes,
    )


def top_tokens(
    adapter: ModelAdapter,
    text: str,
    lens: TunedLens | None = None,
    *,
    k: int = 5,
    position: int = -1,
) -> dict[str, list[tuple[str, float]]]:
    """Per site, the ``k`` most likely next tokens at ``position`` of ``text`` under the lens."""
    import torch

    sites = lens_sites(adapter)
    ids = adapter.tokenize([text]).input_ids
    out = adapter.forward(ids, capture=sites)
    result = {}
    for site in sites:
        h = out.captures[site][:, position]
        if lens is not None:
            with torch.no_grad():
                h = lens.translate(site, h.float()).to(h.dtype)
        with torch.no_grad():
            probs = torch.softmax(adapter.unembed(h).float(), -1)[0]
        p, idx = probs.topk(k)
        result[site] = [
            (adapter.tokenizer.decode([int(t)]), float(q)) for t, q in zip(idx, p, strict=True)
        ]
    return result
