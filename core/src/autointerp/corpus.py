"""Streaming a text corpus into fixed-length token windows, with bounded memory.

A corpus is a ``.txt`` file (paragraphs split on blank lines), a ``.jsonl`` file (the ``text``
field of each line), a ``.parquet`` file (the ``text`` column), a folder of such files, or the name
of a Hugging Face dataset (``hf:NAME`` or ``hf:NAME:SPLIT``, streamed; needs ``datasets`` and a
network). Texts are tokenized a few at a time, joined with the tokenizer's end-of-text token and cut
into ``[batch, seq_len]`` windows: no padding anywhere. Optionally each window starts with BOS, and
windows are shuffled through a seeded buffer (memory stays bounded by the buffer).
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


SUFFIXES = {".txt", ".jsonl", ".parquet"}


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES)
        if not found:
            raise CorpusError(f"no .txt, .jsonl or .parquet files under {path}")
        return found
    if not path.is_file():
        raise CorpusError(f"corpus not found: {path}")
    return [path]


def _hf_texts(spec: str, text_field: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError:
        raise CorpusError(
            f"corpus {spec!r}: Hugging Face datasets need `pip install datasets`"
        ) from None
    name, _, split = spec.removeprefix("hf:").partition(":")
    stream = datasets.load_dataset(name, split=split or "train", streaming=True)
    for number, row in enumerate(stream, 1):
        if text_field not in row:
            raise CorpusError(
                f"{spec}: row {number} has no '{text_field}' field ({', '.join(row)})"
            )
        yield str(row[text_field])


def _parquet_texts(file: Path, text_field: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError(f"{file}: reading Parquet needs `pip install pyarrow`") from None
    reader = pq.ParquetFile(file)
    if text_field not in reader.schema_arrow.names:
        raise CorpusError(
            f"{file}: no '{text_field}' column (columns: {', '.join(reader.schema_arrow.names)})"
        )
    for batch in reader.iter_batches(columns=[text_field], batch_size=1024):
        yield from (str(t) for t in batch.column(0).to_pylist() if t is not None)


BUILTIN = {"builtin:python-docs": "Python's language reference (pydoc_data), offline"}


def _builtin_texts(name: str) -> Iterator[str]:
    if name != "builtin:python-docs":
        raise CorpusError(f"unknown corpus {name!r}; built in: {', '.join(BUILTIN)}")
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield from (p.strip() + "\n" for p in topics[key].split("\n\n") if p.strip())


def iter_texts(path: str | Path, text_field: str = "text") -> Iterator[str]:
    """Yield the texts of a corpus file, folder, ``hf:`` dataset or built-in corpus, lazily."""
    if isinstance(path, str) and path.startswith("hf:"):
        yield from _hf_texts(path, text_field)
        return
    if isinstance(path, str) and path.startswith("builtin:"):
        yield from _builtin_texts(path)
        return
    for file in _files(Path(path)):
        if file.suffix == ".parquet":
            yield from _parquet_texts(file, text_field)
        elif file.suffix == ".jsonl":
            with file.open("rb") as fh:
                for number, raw in enumerate(fh, 1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise CorpusError(
                            f"{file}:{number}: not UTF-8 text; is it a binary file? expected JSON "
                            f"lines with a '{text_field}' field"
                        ) from None
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
    bos: bool = False,
    shuffle_buffer: int = 0,
    seed: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield ``[batch_size, seq_len]`` windows of the concatenated token stream.

    ``bos``: every window starts with the tokenizer's BOS token (then ``seq_len - 1`` corpus
    tokens). ``shuffle_buffer``: shuffle windows through a buffer of that many batches, seeded.
    """
    batches = _windows(adapter, texts, seq_len, batch_size, texts_per_call, bos)
    if shuffle_buffer > 1:
        batches = _shuffled(batches, shuffle_buffer, seed)
    return batches


def _shuffled(batches: Iterator[torch.Tensor], size: int, seed: int) -> Iterator[torch.Tensor]:
    """Rows shuffled across a buffer of ``size`` batches (same seed, same order)."""
    import random

    rng = random.Random(seed)
    pending: list[torch.Tensor] = []
    for batch in batches:
        pending.append(batch)
        if len(pending) == size:
            yield from _mix(pending, rng)
            pending = []
    if pending:
        yield from _mix(pending, rng)


def _mix(batches: list[torch.Tensor], rng: Any) -> Iterator[torch.Tensor]:
    import torch

    rows = torch.cat(batches)
    order = list(range(len(rows)))
    rng.shuffle(order)
    yield from rows[order].split(len(batches[0]))


def _windows(
    adapter: ModelAdapter,
    texts: Iterable[str],
    seq_len: int,
    batch_size: int,
    texts_per_call: int,
    bos: bool,
) -> Iterator[torch.Tensor]:
    import torch

    sep = _separator(adapter)
    bos_id = getattr(adapter.tokenizer, "bos_token_id", None) if bos else None
    if bos and not isinstance(bos_id, int):
        raise CorpusError("bos=True, but the model's tokenizer has no BOS token")
    width = seq_len - 1 if bos else seq_len
    buffer: list[int] = []
    need = width * batch_size

    def emit(chunk: list[int]) -> torch.Tensor:
        out = torch.tensor(chunk, dtype=torch.long).view(batch_size, width)
        if bos:
            out = torch.cat([torch.full((batch_size, 1), bos_id), out], dim=1)
        return out

    group: list[str] = []

    def flush(group: list[str]) -> None:
        batch = adapter.tokenize(group)
        mask = batch.attention_mask.bool()
        for row, m in zip(batch.input_ids, mask, strict=True):
            buffer.extend(row[m].tolist())
            buffer.extend(sep)

    seen = False  # a batch was yielded
    for text in texts:
        group.append(text)
        if len(group) < texts_per_call:
            continue
        flush(group)
        group = []
        while len(buffer) >= need:
            chunk, buffer[:] = buffer[:need], buffer[need:]
            seen = True
            yield emit(chunk)
    if group:
        flush(group)
    emitted = False
    while len(buffer) >= need:
        chunk, buffer[:] = buffer[:need], buffer[need:]
        emitted = True
        yield emit(chunk)
    if not emitted and not seen:
        raise CorpusError(
            f"the corpus holds too little text for one batch ({batch_size} contexts of {seq_len} "
            "tokens): check corpus.path, or lower corpus.batch_size / corpus.ctx_len"
        )


def corpus_windows(adapter: ModelAdapter, path: str | Path, **kwargs: Any) -> Iterator[Any]:
    return token_windows(adapter, iter_texts(path), **kwargs)
