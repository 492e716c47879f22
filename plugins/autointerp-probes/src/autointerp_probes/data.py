"""Probe datasets (JSONL statements with labels) and per-layer activations at the last token.

One statement per row (JSONL, Parquet, a folder of them, or ``hf:NAME[:SPLIT]``)::

    {"text": "Paris is the capital of France.", "label": 1, "group": "geography"}
    {"text": "Is 7 prime? Answer:", "label": 1, "positive": "Is 7 prime? Answer: Yes",
     "negative": "Is 7 prime? Answer: No"}

``label`` is 1 (true) or 0 (false). ``group`` (optional) names a split, topic or persona for
transfer evaluation. ``positive`` / ``negative`` (optional) are the two variants of a contrast pair
for CCS; without them CCS uses ``text + positive_suffix`` and ``text + negative_suffix``.

Activations are taken at the last real token of right-padded batches: exact for any causal model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autointerp_probes.records import DatasetError, as_label, iter_rows

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import ModelAdapter


@dataclass(frozen=True)
class Statement:
    text: str
    label: int
    group: str = ""
    positive: str | None = None
    negative: str | None = None


def load_statements(
    source: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "label",
    group_field: str = "group",
    limit: int | None = None,
) -> list[Statement]:
    """Statements from a ``.jsonl``/``.parquet`` file, a folder of them or ``hf:NAME[:SPLIT]``
    (see :mod:`autointerp_probes.records`); at most ``limit`` rows."""
    out = []
    for where, rec in iter_rows(source):
        if limit is not None and len(out) >= limit:
            break
        if not isinstance(rec.get(text_field), str):
            raise DatasetError(f"{where}: expected a string '{text_field}' field")
        label = as_label(rec.get(label_field), where, label_field)
        pos, neg = rec.get("positive"), rec.get("negative")
        if (pos is None) != (neg is None):
            raise DatasetError(f"{where}: give both 'positive' and 'negative', or neither")
        group = rec.get(group_field)
        out.append(Statement(rec[text_field], label, "" if group is None else str(group), pos, neg))
    if not out:
        raise DatasetError(f"{source}: no statements")
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
    position: int = -1,
) -> torch.Tensor:
    """Activations ``[layers, n, d]`` at each text's last token, or at token index ``position``
    of each text (negative: from its end; ``-1`` is the last token)."""
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
        at = lengths + position if position < 0 else torch.full_like(lengths, position)
        if bool((at < 0).any() or (at >= lengths).any()):
            short = int(((at < 0) | (at >= lengths)).long().argmax()) + start
            raise DatasetError(
                f"--position {position}: text {short} has only {int(lengths[short - start])} "
                f"tokens ({texts[short][:40]!r})"
            )
        out = adapter.forward(ids, attention_mask=right.long(), capture=sites, return_logits=False)
        rows = torch.arange(len(lengths))
        parts.append(torch.stack([out.captures[s][rows, at].float().cpu() for s in sites]))
    return torch.cat(parts, dim=1)
