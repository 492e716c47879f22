"""Streaming a text corpus into fixed-length token windows, with bounded memory.

A corpus is a ``.txt`` file (paragraphs split on blank lines), a ``.jsonl`` file (the ``text``
field of each line), or a folder of such files. Texts are tokenized a few at a time, joined with the
tokenizer's end-of-text token and cut into ``[batch, seq_len]`` windows: no padding anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.errors import AutointerpError

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import ModelAdapter


class CorpusError(AutointerpError):
    """The corpus cannot be read."""


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in {".txt", ".jsonl"})
        if not found:
            raise CorpusError(f"no .txt or .jsonl files under {path}")
        return found
    if not path.is_file():
        raise CorpusError(f"corpus not found: {path}")
    return [path]


def iter_texts(path: str | Path, text_field: str = "text") -> Iterator[str]:
    """Yield the texts of a corpus file or folder, lazily."""
    for file in _files(Path(path)):
        if file.suffix == ".jsonl":
            with file.open(encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        text = json.loads(line)[text_field]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise CorpusError(
                            f"{file}:{number}: expected a JSON object with a '{text_field}' field"
                        ) from None
                    yield str(text)
        else:
            para: list[str] = []
            with file.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.strip():
                        para.append(line)
                    elif para:
                        yield "".join(para)
                        para = []
            if para:
                yield "".join(para)


def _separator(adapter: ModelAdapter) -> list[int]:
    eos = getattr(adapter.tokenizer, "eos_token_id", None)
    return [eos] if isinstance(eos, int) else []


def token_windows(
    adapter: ModelAdapter,
    texts: Iterable[str],
    *,
    seq_len: int = 64,
    batch_size: int = 8,
    texts_per_call: int = 64,
) -> Iterator[torch.Tensor]:
    """Yield ``[batch_size, seq_len]`` windows of the concatenated token stream."""
    import torch

    sep = _separator(adapter)
    buffer: list[int] = []
    need = seq_len * batch_size
    group: list[str] = []

    def flush(group: list[str]) -> None:
        batch = adapter.tokenize(group)
        mask = batch.attention_mask.bool()
        for row, m in zip(batch.input_ids, mask, strict=True):
            buffer.extend(row[m].tolist())
            buffer.extend(sep)

    for text in texts:
        group.append(text)
        if len(group) < texts_per_call:
            continue
        flush(group)
        group = []
        while len(buffer) >= need:
            chunk, buffer[:] = buffer[:need], buffer[need:]
            yield torch.tensor(chunk, dtype=torch.long).view(batch_size, seq_len)
    if group:
        flush(group)
    while len(buffer) >= need:
        chunk, buffer[:] = buffer[:need], buffer[need:]
        yield torch.tensor(chunk, dtype=torch.long).view(batch_size, seq_len)


def corpus_windows(adapter: ModelAdapter, path: str | Path, **kwargs: Any) -> Iterator[Any]:
    return token_windows(adapter, iter_texts(path), **kwargs)
