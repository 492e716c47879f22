"""Building the ``rwkv`` adapter from its config: RWKV-4 in transformers' format, RWKV-5/6/7 from
BlinkDL ``.pth`` checkpoints.

``model`` may be a local ``.pth`` file, a local directory holding one ``.pth`` (BlinkDL) or a
transformers checkpoint (RWKV-4), a hub file ``owner/repo/file.pth`` (BlinkDL, e.g.
``BlinkDL/rwkv-6-world/RWKV-x060-World-1B6-v2.1-20240328-ctx4096.pth``) or a hub repo (RWKV-4).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.adapter import AdapterError, resolve_device, resolve_dtype

if TYPE_CHECKING:
    from autointerp_rwkv.plugin import RwkvConfig

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def checkpoint_file(spec: str, revision: str | None = None) -> Path | None:
    """The BlinkDL ``.pth`` that ``spec`` names (downloaded from the hub if needed), or None when
    ``spec`` names a transformers checkpoint."""
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".pth":
            raise AdapterError(
                f"model '{spec}': expected a BlinkDL .pth file or a checkpoint directory"
            )
        return path
    if path.is_dir():
        found = sorted(path.glob("*.pth"))
        if len(found) > 1:
            names = ", ".join(p.name for p in found[:4])
            raise AdapterError(f"model '{spec}': several .pth files ({names}); name one of them")
        return found[0] if found else None
    if not spec.endswith(".pth"):
        return None
    repo, _, filename = spec.partition("/")[2].partition("/")
    if not repo or not filename:
        raise AdapterError(
            f"model '{spec}': a hub checkpoint is written owner/repo/file.pth, and a local "
            "path must exist"
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(f"{spec.split('/')[0]}/{repo}", filename, revision=revision))
    except Exception as exc:  # offline, unknown repo or file: all one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(
            f"cannot load model '{spec}': {first} (a hub file needs network access or a "
            "copy in the HF cache; a local path must exist)"
        ) from None


def load_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise AdapterError(f"cannot read checkpoint '{path}': {exc}".splitlines()[0]) from None
    if not isinstance(sd, dict):
        raise AdapterError(f"checkpoint '{path}': expected a state dict, got {type(sd).__name__}")
    return sd


def load_tokenizer(spec: str | None, checkpoint: Path) -> Any:
    """``spec``: None (tokenizer files beside the checkpoint, else the RWKV World tokenizer),
    ``rwkv-world``, or a transformers tokenizer (hub name or local directory)."""
    if spec is None:
        here = checkpoint.parent
        if any((here / name).is_file() for name in TOKENIZER_FILES):
            spec = str(here)
        else:
            spec = "rwkv-world"
    if spec == "rwkv-world":
        from autointerp_rwkv.world_tokenizer import RwkvWorldTokenizer

        return RwkvWorldTokenizer()
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(
            f"model.tokenizer: cannot load tokenizer '{spec}': {first} (use rwkv-world, a "
            "local directory, or a hub name with network access)"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def from_config(config: RwkvConfig) -> Any:
    """The registered factory of the ``rwkv`` adapter."""
    from autointerp_rwkv.adapter import RwkvAdapter

    path = checkpoint_file(config.model, config.revision)
    if path is None:
        if config.version not in ("auto", "4"):
            raise AdapterError(
                f"model.version = {config.version}: RWKV-{config.version} loads from a BlinkDL "
                f".pth checkpoint, but '{config.model}' is a transformers checkpoint (RWKV-4)"
            )
        adapter = RwkvAdapter.from_config(config)
        if config.tokenizer is not None:
            adapter.tokenizer = load_tokenizer(config.tokenizer, Path(config.model))
        return adapter
    from autointerp_rwkv.blinkdl import RwkvLMAdapter
    from autointerp_rwkv.lm import build

    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    model = build(load_state_dict(path), where=str(path), dtype=dtype)
    found = model.config.model_type.removeprefix("rwkv")
    if config.version not in ("auto", found):
        raise AdapterError(
            f"model.version = {config.version}, but '{path.name}' is an RWKV-{found} checkpoint"
        )
    model.to(device)
    return RwkvLMAdapter.wrap(
        model,
        load_tokenizer(config.tokenizer, path),
        backend=config.backend,
        padding_side=config.padding_side,
    )
