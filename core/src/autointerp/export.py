"""Export a run's explanations, scores and failures as JSONL or Parquet, for other tools.

Files (one row per record): ``explanations.<ext>`` (source, latent, explainer, explanation, meta),
``scores.<ext>`` (source, latent, explainer, scorer, value, n_failures, metrics, predictions) and
``failures.<ext>`` (source, latent, stage, component, reason). Nested fields are JSON strings in
Parquet and objects in JSONL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from autointerp.errors import AutointerpError
from autointerp.store import STORE_FILENAME, Store

Format = Literal["jsonl", "parquet"]


class ExportError(AutointerpError):
    """The run cannot be exported (no store, unknown run, missing Parquet support)."""


def _explanation_rows(store: Store, run_id: int) -> Iterable[dict[str, Any]]:
    for e in store.explanations(run_id):
        yield {
            "source": e.latent.source,
            "latent": e.latent.index,
            "explainer": e.explainer,
            "explanation": e.text,
            "meta": e.meta,
        }


def _score_rows(store: Store, run_id: int) -> Iterable[dict[str, Any]]:
    for s in store.scores(run_id):
        yield {
            "source": s.latent.source,
            "latent": s.latent.index,
            "explainer": s.explainer,
            "scorer": s.scorer,
            "value": s.value,
            "n_failures": s.n_failures,
            "metrics": s.metrics,
            "predictions": [asdict(p) for p in s.predictions],
        }


def _failure_rows(store: Store, run_id: int) -> Iterable[dict[str, Any]]:
    for stage in ("explain", "score"):
        for (latent, component), reason in store.failures(run_id, stage).items():
            yield {
                "source": latent.source,
                "latent": latent.index,
                "stage": stage,
                "component": component,
                "reason": reason,
            }


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _write_parquet(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("Parquet export needs pyarrow: pip install pyarrow") from None
    flat = [
        {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        for row in rows
    ]
    pq.write_table(pa.Table.from_pylist(flat), path)
    return len(flat)


def export_run(
    run_dir: Path, fmt: Format = "jsonl", out_dir: Path | None = None, run_id: int | None = None
) -> dict[Path, int]:
    """Write the export files; returns each file with its number of rows."""
    if fmt not in ("jsonl", "parquet"):
        raise ExportError(f"--format {fmt!r}: expected jsonl or parquet")
    if not (run_dir / STORE_FILENAME).is_file():
        raise ExportError(f"{run_dir}: no {STORE_FILENAME} here; is this a run directory?")
    out_dir = out_dir or run_dir / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    write = _write_jsonl if fmt == "jsonl" else _write_parquet
    written: dict[Path, int] = {}
    with Store(run_dir / STORE_FILENAME) as store:
        runs = store.runs()
        if not runs:
            raise ExportError(f"{run_dir}: the store holds no run yet")
        if run_id is None:
            run_id = runs[-1].id
        elif run_id not in {r.id for r in runs}:
            ids = ", ".join(str(r.id) for r in runs)
            raise ExportError(f"{run_dir}: no run {run_id}; runs here: {ids}")
        for name, rows in (
            ("explanations", _explanation_rows(store, run_id)),
            ("scores", _score_rows(store, run_id)),
            ("failures", _failure_rows(store, run_id)),
        ):
            path = out_dir / f"{name}.{fmt}"
            written[path] = write(path, rows)
    return written
