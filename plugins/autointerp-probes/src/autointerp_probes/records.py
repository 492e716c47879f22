"""Labelled rows from every dataset form ``autointerp run`` reads text from.

A source is a ``.jsonl`` file (one JSON object per line), a ``.parquet`` file, a folder of such
files, or a Hugging Face dataset ``hf:NAME`` / ``hf:NAME:SPLIT`` (needs ``datasets`` and a network,
or the dataset in the local hub cache). ``.txt`` files and ``builtin:`` corpora are plain text with
no labels: they are refused with a message saying so. Rows are dicts, yielded lazily; ``where``
names the file and line (or row) for error messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autointerp.errors import AutointerpError


class DatasetError(AutointerpError):
    """A dataset file is malformed (names the file, line and field)."""


ROW_SUFFIXES = (".jsonl", ".parquet")


def _unlabelled(source: str) -> DatasetError:
    return DatasetError(
        f"{source}: plain text carries no labels; probes need labelled rows "
        "(.jsonl, .parquet, a folder of them, or hf:NAME[:SPLIT])"
    )


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in ROW_SUFFIXES)
        if not found:
            raise DatasetError(f"no .jsonl or .parquet files under {path}")
        return found
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    if path.suffix == ".txt":
        raise _unlabelled(str(path))
    if path.suffix not in ROW_SUFFIXES:
        raise DatasetError(f"{path}: expected a .jsonl or .parquet file, got '{path.suffix}'")
    return [path]


def _jsonl_rows(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with file.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            where = f"{file}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DatasetError(f"{where}: not UTF-8 text; expected JSON lines") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{where}: expected a JSON object")
            yield where, row


def _parquet_rows(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{file}: reading Parquet needs `pip install pyarrow`") from None
    number = 0
    for batch in pq.ParquetFile(file).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield f"{file} row {number}", row


def _hf_rows(spec: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import datasets
    except ImportError:
        raise DatasetError(f"{spec}: Hugging Face datasets need `pip install datasets`") from None
    name, _, split = spec.removeprefix("hf:").partition(":")
    try:
        stream = iter(datasets.load_dataset(name, split=split or "train", streaming=True))
        first = next(stream, None)
    except Exception as exc:  # offline, unknown name, unknown split: one line, actionable
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(
            f"{spec}: cannot load from the Hugging Face hub ({reason[:200]}); offline? save it "
            "as .parquet/.jsonl on a machine with network and pass the file"
        ) from None
    if first is None:
        return
    yield f"{spec} row 1", dict(first)
    for number, row in enumerate(stream, 2):
        yield f"{spec} row {number}", dict(row)


def iter_rows(source: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every row of a dataset file, folder or ``hf:`` dataset, lazily."""
    if isinstance(source, str) and source.startswith("hf:"):
        yield from _hf_rows(source)
        return
    if isinstance(source, str) and source.startswith("builtin:"):
        raise _unlabelled(source)
    for file in _files(Path(source)):
        yield from (_parquet_rows(file) if file.suffix == ".parquet" else _jsonl_rows(file))


def as_label(value: Any, where: str, field: str) -> int:
    """``0``/``1``/``true``/``false`` as 0 or 1, else a :class:`DatasetError`."""
    if value in (0, 1, True, False):
        return int(value)
    raise DatasetError(f"{where}: '{field}' must be 0 or 1 (or true/false), got {value!r}")
