"""Probe datasets (JSONL statements with labels) and per-layer activations at the last token.

One statement per line::

    {"text": "Paris is the capital of France.", "label": 1, "group": "geography"}
    {"text": "Is 7 prime? Answer:", "label": 1, "positive": "Is 7 prime? Answer: Yes",
     "negative": "Is 7 prime? Answer: No"}

``label`` is 1 (true) or 0 (false). ``group`` (optional) names a split, topic or persona for
transfer evaluation. ``positive`` / ``negative`` (optional) are the two variants of a contrast pair
for CCS; without them CCS uses ``text + positive_suffix`` and ``text + negative_suffix``.

Activations are taken at the last real token of right-padded batches: exact for any causal model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autointerp.errors import AutointerpError

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import ModelAdapter


class DatasetError(AutointerpError):
    """A dataset file is malformed (names the file, line and field)."""


@dataclass(frozen=True)
class Statement:
    text: str
    label: int
    group: str = ""
    positive: str | None = None
    negative: str | None = None


def load_statements(path: str | Path) -> list[Statement]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    out = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                raise DatasetError(f"{where}: expected an object with a string 'text'")
            label = rec.get("label")
            if label not in (0, 1, True, False):
                raise DatasetError(f"{where}: 'label' must be 0 or 1, got {label!r}")
            pos, neg = rec.get("positive"), rec.get("negative")
            if (pos is None) != (neg is None):
                raise DatasetError(f"{where}: give both 'positive' and 'negative', or neither")
            out.append(Statement(rec["text"], int(label), str(rec.get("group", "")), pos, neg))
    if not out:
        raise DatasetError(f"{path}: no statements")
    return out


def contrast_texts(
    statements: Sequence[Statement], positive_suffix: str = " True", negative_suffix: str = " False"
) -> tuple[list[str], list[str]]:
    pos = [s.positive if s.positive is not None else s.text + positive_suffix for s in statements]
    neg = [s.negative if s.negative is not None else s.text + negative_suffix for s in statements]
    return pos, neg


def last_token_activations(
    adapter: ModelAdapter,
    texts: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    kind: str = "resid_post",
    batch_size: int = 32,
) -> torch.Tensor:
    """Activations ``[layers, n, d]`` at each text's last token."""
    import torch

    layers = list(range(adapter.n_layers)) if layers is None else list(layers)
    sites = [adapter.site(f"{kind}.{i}").name for i in layers]
    tok = adapter.tokenizer
    pad = next(
        (
            v
            for v in (getattr(tok, "pad_token_id", None), getattr(tok, "eos_token_id", None))
            if isinstance(v, int)
        ),
        0,
    )
    parts: list[torch.Tensor] = []
    for start in range(0, len(texts), batch_size):
        batch = adapter.tokenize(list(texts[start : start + batch_size]))
        lengths = batch.attention_mask.sum(-1)
        # re-pad on the right whatever the adapter's own padding side (see module docstring)
        width = int(lengths.max())
        ids = torch.full((len(lengths), width), pad, dtype=torch.long)
        keep = batch.attention_mask.bool()
        right = torch.arange(width)[None] < lengths[:, None]
        ids[right] = batch.input_ids[keep]
        out = adapter.forward(ids, attention_mask=right.long(), capture=sites, return_logits=False)
        rows = torch.arange(len(lengths))
        parts.append(torch.stack([out.captures[s][rows, lengths - 1].float().cpu() for s in sites]))
    return torch.cat(parts, dim=1)
