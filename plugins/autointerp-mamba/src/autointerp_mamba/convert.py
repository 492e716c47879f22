"""Original Mamba checkpoints (the ``mamba_ssm`` layout, e.g. ``state-spaces/mamba-130m`` or
``state-spaces/mamba2-130m``) converted into transformers' ``MambaForCausalLM`` /
``Mamba2ForCausalLM``.

An original checkpoint is a ``config.json`` with ``d_model``, ``n_layer``, ``vocab_size``,
``ssm_cfg``, ``rms_norm``, ``residual_in_fp32``, ``tie_embeddings`` ... and a
``pytorch_model.bin`` (or ``model.safetensors``) whose tensors are named
``backbone.embedding.weight``, ``backbone.layers.N.{norm.weight, mixer.in_proj.weight, mixer.A_log,
mixer.D, mixer.conv1d.*, mixer.x_proj.weight, mixer.dt_proj.*, mixer.out_proj.weight}``,
``backbone.norm_f.weight`` and ``lm_head.weight`` (Mamba-2: ``mixer.{in_proj, conv1d, dt_bias,
A_log, D, norm, out_proj}``). transformers' Mamba holds the same tensors
under the same names except the embedding (``backbone.embeddings``); the sizes it needs are read
from the tensors themselves (the vocabulary is padded in the file, to a multiple of 8).

Converted copies are written once under the autointerp cache (keyed by the source's path, size
and modification time) and loaded from there afterwards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from autointerp.adapter import AdapterError

WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
#: the tokenizer the original state-spaces checkpoints were trained with (not in their repos)
DEFAULT_TOKENIZER = "EleutherAI/gpt-neox-20b"


def is_mamba_ssm_config(config: dict[str, Any]) -> bool:
    """An original ``mamba_ssm`` config: ``d_model``/``n_layer`` and no transformers model type."""
    return "d_model" in config and "n_layer" in config and "model_type" not in config


def read_config(directory: Path) -> dict[str, Any] | None:
    path = directory / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{path}: not readable JSON ({exc})".splitlines()[0]) from None
    return data if isinstance(data, dict) else None


def load_original_state_dict(directory: Path) -> dict[str, Any]:
    import torch

    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        return dict(torch.load(path, map_location="cpu", weights_only=True))
    raise AdapterError(
        f"{directory}: a mamba_ssm checkpoint needs one of {', '.join(WEIGHT_FILES)}"
    )


def transformers_config(original: dict[str, Any], sd: dict[str, Any]) -> Any:
    """A transformers ``MambaConfig`` / ``Mamba2Config`` for an original checkpoint (sizes read
    from its tensors)."""
    ssm = original.get("ssm_cfg") or {}
    layer = ssm.get("layer", "Mamba1")
    if layer not in ("Mamba1", "Mamba2"):
        raise AdapterError(f"mamba_ssm checkpoint with ssm_cfg.layer = {layer}: expected Mamba1 "
                           "or Mamba2")  # fmt: skip
    if original.get("attn_layer_idx") or original.get("d_intermediate"):
        raise AdapterError(
            "mamba_ssm checkpoint with attention layers or MLPs (attn_layer_idx / "
            "d_intermediate): not a plain Mamba LM, cannot convert"
        )
    if not original.get("rms_norm", True):
        raise AdapterError("mamba_ssm checkpoint with rms_norm = false: transformers' Mamba "
                           "uses RMSNorm only")  # fmt: skip
    first = "backbone.layers.0.mixer."
    try:
        vocab, d = (int(n) for n in sd["backbone.embedding.weight"].shape)
        conv_dim, _, conv = (int(n) for n in sd[first + "conv1d.weight"].shape)
        d_inner = int(sd[first + "out_proj.weight"].shape[1])
        in_rows = int(sd[first + "in_proj.weight"].shape[0])
        common = {
            "vocab_size": vocab,
            "hidden_size": d,
            "num_hidden_layers": int(original["n_layer"]),
            "conv_kernel": conv,
            "use_bias": first + "in_proj.bias" in sd,
            "use_conv_bias": first + "conv1d.bias" in sd,
            "layer_norm_epsilon": float(original.get("norm_epsilon", 1e-5)),
            "residual_in_fp32": bool(original.get("residual_in_fp32", True)),
            "tie_word_embeddings": bool(original.get("tie_embeddings", True))
            or "lm_head.weight" not in sd,
        }
        if layer == "Mamba1":
            from transformers import MambaConfig

            return MambaConfig(
                **common,
                state_size=int(sd[first + "A_log"].shape[1]),
                expand=d_inner // d,
                intermediate_size=d_inner,
                time_step_rank=int(sd[first + "dt_proj.weight"].shape[1]),
                architectures=["MambaForCausalLM"],
            )
        from transformers import Mamba2Config

        heads = int(sd[first + "A_log"].shape[0])
        groups = int(ssm.get("ngroups", 1))
        d_state = (conv_dim - d_inner) // (2 * groups)
        if in_rows != 2 * d_inner + 2 * groups * d_state + heads or d_inner % d:
            raise AdapterError(
                "mamba_ssm Mamba-2 checkpoint with a gated MLP inside its mixer (d_ssm < "
                "d_inner) or a fractional expand: transformers' Mamba-2 cannot hold it"
            )
        return Mamba2Config(
            **common,
            num_heads=heads,
            head_dim=d_inner // heads,
            state_size=d_state,
            n_groups=groups,
            expand=d_inner // d,
            chunk_size=int(ssm.get("chunk_size", 256)),
            architectures=["Mamba2ForCausalLM"],
        )
    except KeyError as exc:
        raise AdapterError(f"mamba_ssm checkpoint lacks tensor {exc.args[0]}") from None


def convert_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
    """Original tensor names -> transformers' (only the embedding is renamed)."""
    out = {}
    for name, tensor in sd.items():
        if name == "backbone.embedding.weight":
            name = "backbone.embeddings.weight"
        out[name] = tensor
    return out


def convert(source: Path, target: Path, tokenizer: str | None = None) -> Path:
    """Write ``source`` (an original checkpoint directory) to ``target`` as a transformers Mamba
    checkpoint with a tokenizer: the source's own tokenizer files, else ``tokenizer`` (default
    :data:`DEFAULT_TOKENIZER`, a hub name or local directory)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    original = read_config(source)
    if original is None or not is_mamba_ssm_config(original):
        raise AdapterError(f"{source}: no mamba_ssm config.json (d_model, n_layer ...)")
    sd = load_original_state_dict(source)
    config = transformers_config(original, sd)
    import torch

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    converted = convert_state_dict(sd)
    if config.tie_word_embeddings:
        converted.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(converted, strict=False, assign=True)
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise AdapterError(
            f"{source}: tensors do not fit Mamba: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}"
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    has_tokenizer = any((source / n).is_file() for n in TOKENIZER_FILES)
    spec = str(source) if has_tokenizer else (tokenizer or DEFAULT_TOKENIZER)
    try:
        tok = AutoTokenizer.from_pretrained(spec)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(
            f"model.tokenizer: cannot load tokenizer '{spec}' for the mamba_ssm checkpoint "
            f"{source} ({first}); name a local tokenizer directory or a hub name with network"
        ) from None
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tok.save_pretrained(target)
    return target


def converted_dir(source: Path, tokenizer: str | None) -> Path:
    """The cache directory of ``source``'s converted copy (converting it on first use)."""
    from autointerp_transformers.hooks import cache_dir

    stamp = [str(source.resolve()), str(tokenizer)]
    for name in (*WEIGHT_FILES, "config.json"):
        path = source / name
        if path.is_file():
            st = path.stat()
            stamp += [name, str(st.st_size), str(st.st_mtime_ns)]
    key = hashlib.sha256("\0".join(stamp).encode()).hexdigest()[:16]
    target = cache_dir() / "mamba_ssm" / key
    if not (target / "config.json").is_file():
        partial = target.with_name(key + ".partial")
        convert(source, partial, tokenizer)
        partial.replace(target)
    return target


def source_dir(spec: str, fmt: str, revision: str | None = None) -> Path | None:
    """The local directory of an original checkpoint named by ``spec`` (a local directory or a
    hub repo, downloaded), or None when ``spec`` is a transformers checkpoint."""
    path = Path(spec).expanduser()
    if path.is_dir():
        config = read_config(path)
        original = config is not None and is_mamba_ssm_config(config)
        if fmt == "mamba_ssm" and not original:
            raise AdapterError(
                f"model.format = mamba_ssm, but {path}/config.json is not a mamba_ssm config "
                "(expected d_model and n_layer)"
            )
        return path if (original and fmt != "transformers") else None
    if path.exists() or fmt == "transformers":
        return None
    from huggingface_hub import hf_hub_download

    try:
        config_file = Path(hf_hub_download(spec, "config.json", revision=revision))
        config = read_config(config_file.parent) or {}
        if fmt != "mamba_ssm" and not is_mamba_ssm_config(config):
            return None
        for name in WEIGHT_FILES:
            try:
                hf_hub_download(spec, name, revision=revision)
                break
            except Exception:
                continue
        return config_file.parent
    except Exception as exc:  # offline, unknown repo
        if fmt != "mamba_ssm":
            return None  # the transformers loader reports the hub error in its own words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(
            f"cannot load model '{spec}': {first} (a hub name needs network access or a "
            "local copy in the HF cache; a local path must exist)"
        ) from None
