"""Sparse autoencoders as feature sources, read from three on-disk layouts.

- plain: one ``.safetensors`` file with ``W_enc [d_in, n]``, ``b_enc [n]``, ``W_dec [n, d_in]``,
  ``b_dec [d_in]`` (and ``threshold [n]`` for JumpReLU); the activation, ``k``, the site and the
  decoder-bias subtraction come from the options, else from the file's metadata (which
  ``autointerp sae train`` writes).
- sparsify: a directory with ``cfg.json`` (``k``, ``num_latents`` ...) and ``sae.safetensors``
  holding ``encoder.weight [n, d_in]``, ``encoder.bias``, ``W_dec [n, d_in]``, ``b_dec``; TopK on
  ``x - b_dec``.
- SAELens: a directory with ``cfg.json`` (``architecture`` standard/topk/jumprelu, ``d_in``,
  ``d_sae``, ``apply_b_dec_to_input``, ``k`` or ``activation_fn_kwargs.k``) and
  ``sae_weights.safetensors`` with ``W_enc [d_in, d_sae]``, ``b_enc``, ``W_dec``, ``b_dec`` and
  ``threshold`` for JumpReLU.

Encoding runs over chunks of ``chunk_tokens`` tokens, so the dense pre-activation block is bounded
by the chunk, never ``[all tokens x latents]``; TopK keeps only ``k`` values per token.

Placement: ``device = "auto"`` (the default) loads the weights on the CPU and moves them, once, to
wherever the model's activations are (:meth:`SparseAutoencoder.place`, or the first ``encode``); a
device set explicitly keeps them there and moves each block of activations to it. ``dtype`` other
than "auto" casts the weights on load (activations are cast to it as they are encoded).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from autointerp.adapter import resolve_device
from autointerp.features import FeatureSource, FeatureSourceError, SparseActivations
from autointerp_sae.plugin import SAEConfig


@dataclass
class SparseAutoencoder(FeatureSource):
    """An SAE: ``f = act(W_enc^T (x - s * b_dec) + b_enc)``, ``x_hat = W_dec^T f + b_dec``."""

    W_enc: torch.Tensor  # [d_in, n]
    b_enc: torch.Tensor  # [n]
    W_dec: torch.Tensor  # [n, d_in]
    b_dec: torch.Tensor  # [d_in]
    activation: str
    site: str = ""
    k: int | None = None
    threshold: torch.Tensor | None = None  # [n], JumpReLU
    subtract_decoder_bias: bool = False
    chunk_tokens: int = 1024
    #: a device the options pin the SAE to (None: it follows the model's activations)
    pinned: torch.device | None = None

    def __post_init__(self) -> None:
        d_in, n = self.W_enc.shape
        expected = {"b_enc": (n,), "W_dec": (n, d_in), "b_dec": (d_in,)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise FeatureSourceError(
                    f"SAE {name} has shape {tuple(getattr(self, name).shape)}, expected {shape} "
                    f"for W_enc of shape {(d_in, n)}"
                )
        if self.activation not in ("relu", "topk", "jumprelu"):
            raise FeatureSourceError(
                f"SAE activation {self.activation!r}: expected relu, topk or jumprelu"
            )
        if self.activation == "topk" and not self.k:
            raise FeatureSourceError("a topk SAE needs k (set `k` in the feature source options)")
        if self.activation == "jumprelu" and self.threshold is None:
            raise FeatureSourceError("a jumprelu SAE needs a `threshold` tensor in its weights")
        self.d_in, self.n_latents = d_in, n

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    def place(self, device: torch.device) -> None:
        """Move the weights to ``device`` unless the options pinned another."""
        if self.pinned is not None or torch.device(device) == self.device:
            return
        for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
            if (tensor := getattr(self, name)) is not None:
                setattr(self, name, tensor.to(device))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        if self.pinned is None and x.device != self.device:
            self.place(x.device)  # follows the model: one move of the weights, on first use
        x = x.to(device=self.device, dtype=self.W_enc.dtype)
        if self.subtract_decoder_bias:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> SparseActivations:
        if x.shape[-1] != self.d_in:
            raise FeatureSourceError(
                f"SAE input width is {self.d_in} but the activations have width {x.shape[-1]}"
            )
        parts = [
            self._encode_chunk(x[i : i + self.chunk_tokens], i)
            for i in range(0, x.shape[0], self.chunk_tokens)
        ]
        if not parts:
            empty = torch.empty(0, dtype=torch.long, device=self.device)
            values = torch.empty(0, dtype=self.W_enc.dtype, device=self.device)
            return SparseActivations(empty, empty, values)
        return SparseActivations(*(torch.cat(p) for p in zip(*parts, strict=True)))

    @torch.no_grad()
    def _encode_chunk(self, x: torch.Tensor, offset: int) -> SparseActivations:
        pre = self.pre_activations(x)
        if self.activation == "topk":
            values, latents = pre.topk(min(self.k or 1, self.n_latents), dim=-1)
            rows = torch.arange(x.shape[0], device=latents.device).unsqueeze(1).expand_as(latents)
            keep = values > 0
            return SparseActivations(rows[keep] + offset, latents[keep], values[keep])
        if self.activation == "jumprelu":
            assert self.threshold is not None
            keep = (pre > self.threshold) & (pre > 0)
        else:
            keep = pre > 0
        rows, latents = keep.nonzero(as_tuple=True)
        return SparseActivations(rows + offset, latents, pre[rows, latents])

    def decode_dense(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction from dense latent activations ``[tokens, n]``."""
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def decoder_directions(self, latents: torch.Tensor) -> torch.Tensor:
        return self.W_dec[latents.to(self.device)]


def detect_format(path: Path) -> str:
    if path.is_file() and path.suffix == ".safetensors":
        return "plain"
    if (path / "sae.safetensors").is_file():
        return "sparsify"
    if (path / "sae_weights.safetensors").is_file():
        return "saelens"
    raise FeatureSourceError(
        f"{path}: not an SAE: expected a .safetensors file, or a directory with sae.safetensors "
        "(sparsify) or sae_weights.safetensors (SAELens)"
    )


def _cfg(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "cfg.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FeatureSourceError(f"{path}: no cfg.json beside the SAE weights") from None
    except json.JSONDecodeError as exc:
        raise FeatureSourceError(f"{path / 'cfg.json'}: invalid JSON: {exc}") from None


def _need(tensors: dict[str, torch.Tensor], names: tuple[str, ...], where: Path) -> None:
    missing = [n for n in names if n not in tensors]
    if missing:
        raise FeatureSourceError(
            f"{where}: missing tensors {', '.join(missing)} (found {', '.join(sorted(tensors))})"
        )


def load_sae(config: SAEConfig) -> SparseAutoencoder:
    """The factory: read ``config.path`` in its layout (or the SAELens ``release``/``sae_id``)
    and build the SAE."""
    # auto: read onto the CPU; the first activations (or the cache stage) move it to the model
    pinned = None
    if config.device != "auto":
        pinned = resolve_device(
            config.device, field="feature_source.device", error=FeatureSourceError
        )
    device = str(pinned or "cpu")
    common: dict[str, Any] = {"chunk_tokens": config.chunk_tokens, "pinned": pinned}
    if config.release:
        from autointerp_sae.saelens_release import load_release

        cfg, t = load_release(config.release, config.sae_id, device, config.dtype)
        where = Path(f"{config.release}/{config.sae_id}")
        return _from_saelens(cfg, t, where, config, common)
    path = Path(config.path).expanduser()
    if not path.exists():
        raise FeatureSourceError(f"feature_source.path: {path} does not exist")
    fmt = detect_format(path) if config.format == "auto" else config.format
    if fmt == "plain":
        t = _load(path, device, config.dtype)
        _need(t, ("W_enc", "b_enc", "W_dec", "b_dec"), path)
        meta = _metadata(path)  # what `autointerp sae train` records; options win
        activation = (
            config.activation
            or meta.get("activation")
            or ("jumprelu" if "threshold" in t else "relu")
        )
        subtract = config.subtract_decoder_bias
        if subtract is None:
            subtract = meta.get("subtract_decoder_bias") == "true"
        sae = SparseAutoencoder(
            t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"], activation,
            site=config.site or meta.get("site", ""), k=config.k or _int(meta.get("k"), path),
            threshold=t.get("threshold"), subtract_decoder_bias=subtract, **common,
        )  # fmt: skip
    elif fmt == "sparsify":
        cfg = _cfg(path)
        where = path / "cfg.json"
        if cfg.get("activation", "topk") != "topk":
            raise FeatureSourceError(
                f"{where}: activation {cfg['activation']!r} is not supported; expected topk"
            )
        if cfg.get("skip_connection"):
            raise FeatureSourceError(f"{where}: skip_connection (W_skip) is not supported")
        t = _load(path / "sae.safetensors", device, config.dtype)
        _need(t, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), path / "sae.safetensors")
        subtract = config.subtract_decoder_bias
        if subtract is None:  # a transcoder encodes its input as it is
            subtract = not cfg.get("transcode", False)
        sae = SparseAutoencoder(
            t["encoder.weight"].T.contiguous(), t["encoder.bias"], t["W_dec"], t["b_dec"], "topk",
            site=config.site or ('' if cfg.get('transcode') else _sparsify_site(path)),
            k=config.k or cfg.get("k"),
            subtract_decoder_bias=subtract, **common,
        )  # fmt: skip
    else:
        t = _load(path / "sae_weights.safetensors", device, config.dtype)
        _need(t, ("W_enc", "b_enc", "W_dec", "b_dec"), path / "sae_weights.safetensors")
        sae = _from_saelens(_cfg(path), t, path / "cfg.json", config, common)
    return sae


def _from_saelens(
    cfg: dict[str, Any],
    t: dict[str, torch.Tensor],
    where: Path,
    config: SAEConfig,
    common: dict[str, Any],
) -> SparseAutoencoder:
    """An SAE from SAELens's config (``cfg.json``, or a loaded SAE's ``cfg.to_dict()``) and
    tensors; ``where`` names them in errors."""
    arch = cfg.get("architecture", "standard")
    activation = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}.get(arch)
    if activation is None:
        raise FeatureSourceError(
            f"{where}: architecture {arch!r} is not supported; expected standard, topk or jumprelu"
        )
    norm = cfg.get("normalize_activations") or "none"
    if norm != "none":
        raise FeatureSourceError(
            f"{where}: normalize_activations = {norm!r} is not supported; expected 'none' "
            "(fold the normalisation into the weights first)"
        )
    k = config.k or cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    subtract = config.subtract_decoder_bias
    if subtract is None:
        subtract = bool(cfg.get("apply_b_dec_to_input", True))
    w_enc, b_enc, w_dec = t["W_enc"], t["b_enc"], t["W_dec"]
    if cfg.get("rescale_acts_by_decoder_norm"):
        # TopK on pre-activations times decoder-row norms, decode divides them out again:
        # the same map as unit-norm decoder rows with the norms folded into the encoder
        norms = w_dec.norm(dim=1)
        w_enc, b_enc, w_dec = w_enc * norms, b_enc * norms, w_dec / norms.unsqueeze(1)
    meta = cfg.get("metadata") or {}
    hook = cfg.get("hook_name") or meta.get("hook_name") or ""
    return SparseAutoencoder(
        w_enc, b_enc, w_dec, t["b_dec"], activation,
        site=config.site or site_from_hook(hook), k=k, threshold=t.get("threshold"),
        subtract_decoder_bias=subtract, **common,
    )  # fmt: skip


def _load(path: Path, device: str, dtype: str) -> dict[str, torch.Tensor]:
    """The file's tensors on ``device``; floating ones cast to ``dtype`` unless it is "auto"."""
    tensors = load_file(path, device=device)
    if dtype == "auto":
        return tensors
    cast = getattr(torch, dtype)
    return {k: v.to(cast) if v.is_floating_point() else v for k, v in tensors.items()}


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _int(text: str | None, path: Path) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise FeatureSourceError(f"{path}: metadata k = {text!r} is not an integer") from None


#: TransformerLens hook names (what SAELens records) -> our site kinds
_TL_HOOKS = {
    "hook_resid_pre": "resid_pre",
    "hook_resid_post": "resid_post",
    "hook_mlp_out": "mlp_out",
    "hook_attn_out": "attn_out",
    "mlp.hook_post": "mlp_neurons",
}


def site_from_hook(hook: str) -> str:
    """``blocks.6.hook_resid_post`` -> ``resid_post.6``; other names are kept as they are."""
    match = re.fullmatch(r"blocks\.(\d+)\.(.+)", hook)
    if match and match.group(2) in _TL_HOOKS:
        return f"{_TL_HOOKS[match.group(2)]}.{match.group(1)}"
    return hook


def _sparsify_site(path: Path) -> str:
    # sparsify stores one SAE per hookpoint in a folder named after the module: layers.6 reads
    # the block's output (resid_post.6), layers.6.mlp the MLP's output (mlp_out.6)
    match = re.fullmatch(r"(?:.*\.)?layers\.(\d+)(\.mlp)?", path.name)
    if not match:
        return ""
    return f"{'mlp_out' if match.group(2) else 'resid_post'}.{match.group(1)}"
