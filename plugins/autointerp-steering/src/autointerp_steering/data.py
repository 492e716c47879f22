"""Contrast-pair datasets and the token bookkeeping every steering method shares.

A contrast pair is a prompt and two answers (JSONL, one object per line)::

    {"prompt": "...Choices:\\n(A) Yes\\n(B) No\\nAnswer: (", "positive": "A", "negative": "B"}

``positive`` is the answer that matches the behaviour being steered towards. The field names of the
CAA datasets (``question``, ``answer_matching_behavior``, ``answer_not_matching_behavior``) are
accepted too. The *answer token* is the first token where ``prompt + positive`` and ``prompt +
negative`` tokenize differently; everything before it is the pair's context, so both answers are
scored as next-token probabilities after exactly the same tokens, whatever the tokenizer merges.

Batches are right-padded: in a causal model (transformer or RNN alike) the outputs at real tokens
never depend on padding that comes after them, so this is exact for any adapter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.errors import AutointerpError

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import ModelAdapter

ALIASES = {
    "prompt": ("prompt", "question"),
    "positive": ("positive", "answer_matching_behavior"),
    "negative": ("negative", "answer_not_matching_behavior"),
}


class DatasetError(AutointerpError):
    """A dataset file is malformed (names the file, line and field)."""


@dataclass(frozen=True)
class ContrastPair:
    prompt: str
    positive: str
    negative: str


@dataclass(frozen=True)
class PairTokens:
    """A tokenized pair: the shared context and the first token of each answer."""

    context: tuple[int, ...]
    positive: int
    negative: int


def _field(record: dict[str, Any], name: str, where: str) -> str:
    for key in ALIASES[name]:
        if key in record:
            value = record[key]
            if not isinstance(value, str):
                raise DatasetError(f"{where}: field '{key}' must be a string")
            return value
    raise DatasetError(f"{where}: missing field '{name}' (or {', '.join(ALIASES[name][1:])})")


def read_jsonl(path: str | Path) -> Iterable[tuple[str, dict[str, Any]]]:
    """Yield (``file:line``, record) for each non-empty line of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DatasetError(f"{where}: expected a JSON object")
            yield where, record


def load_pairs(path: str | Path) -> list[ContrastPair]:
    pairs = [
        ContrastPair(
            _field(rec, "prompt", where),
            _field(rec, "positive", where),
            _field(rec, "negative", where),
        )
        for where, rec in read_jsonl(path)
    ]
    if not pairs:
        raise DatasetError(f"{path}: no contrast pairs")
    return pairs


# -- tokens ----------------------------------------------------------------------------------------


def unpadded(adapter: ModelAdapter, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without padding (either padding side)."""
    batch = adapter.tokenize(list(texts))
    mask = batch.attention_mask.bool()
    return [row[m].tolist() for row, m in zip(batch.input_ids, mask, strict=True)]


def pad_id(adapter: ModelAdapter) -> int:
    tok = adapter.tokenizer
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tok, attr, None)
        if isinstance(value, int):
            return value
    return 0


def pad_right(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences: ``input_ids`` and ``attention_mask``, both ``[batch, max_len]``."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each right-padded row."""
    return mask.long().sum(-1) - 1


def gather_last(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x[b, last_index(b)]`` for ``x`` of shape ``[batch, seq, ...]``."""
    import torch

    rows = torch.arange(x.shape[0], device=x.device)
    return x[rows, last_index(mask).to(x.device)]


def tokenize_pairs(adapter: ModelAdapter, pairs: Sequence[ContrastPair]) -> list[PairTokens]:
    """Find each pair's shared context and answer tokens (vectorized over the dataset)."""
    import torch

    pos = unpadded(adapter, [p.prompt + p.positive for p in pairs])
    neg = unpadded(adapter, [p.prompt + p.negative for p in pairs])
    width = max(max(map(len, pos)), max(map(len, neg))) + 1
    a = torch.full((len(pairs), width), -1, dtype=torch.long)
    b = torch.full((len(pairs), width), -2, dtype=torch.long)
    for row, (x, y) in enumerate(zip(pos, neg, strict=True)):
        a[row, : len(x)] = torch.as_tensor(x)
        b[row, : len(y)] = torch.as_tensor(y)
    first = (a != b).long().argmax(1)
    out = []
    for row, k in enumerate(first.tolist()):
        tp, tn = int(a[row, k]), int(b[row, k])
        if tp < 0 or tn < 0 or k == 0:
            raise DatasetError(
                f"pair {row}: the answers {pairs[row].positive!r} / {pairs[row].negative!r} do "
                "not start with different tokens after a non-empty prompt"
            )
        out.append(PairTokens(tuple(pos[row][:k]), tp, tn))
    return out


def chunks(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
