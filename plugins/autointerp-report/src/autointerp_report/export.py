"""Export a run for other tools: explanations, scores and failures as JSONL or Parquet, or whole
latents as Neuronpedia-style feature JSON.

JSONL / Parquet files (one row per record): ``explanations.<ext>`` (source, latent, explainer,
explanation, meta, provenance), ``scores.<ext>`` (source, latent, explainer, scorer, value,
n_failures, metrics, predictions, provenance), ``failures.<ext>`` (source, latent, stage,
component, reason) and ``cost.<ext>`` (the LLM usage per stage and component that paid: stage,
component, calls, cache_hits, tokens, cost_usd; "" for calls whose asker is not known).
Nested fields are JSON strings in Parquet and objects in JSONL.
``provenance`` says what made the record: config hash, subject model, feature source, LLM client
and model, component name, version and options hash, prompt version, autointerp version.
Each of a score's ``predictions`` is ``{example_id, predicted, actual, probability, quantile}``:
``quantile`` is the scored example's activation quantile (0 = weakest; None for a negative, and
for scores recorded before predictions carried it), so accuracy per quantile (decile) is a
group-by over the export.

``neuronpedia.json`` follows the feature records of Neuronpedia
(https://github.com/hijohnnylin/neuronpedia: the ``Feature``, ``Activation``, ``Explanation`` and
``ExplanationScore`` tables, as its ``/api/feature/{modelId}/{layer}/{index}`` answers and its
dataset exports hold them; SAEDashboard's batch files share ``frac_nonzero`` and ``activations``).
One object ``{"format", "generator", "modelId", "run", "features": [...]}``; each feature::

    {"modelId", "layer", "index", "frac_nonzero", "maxActApprox",
     "activations": [{"tokens", "values", "maxValue", "maxValueTokenIndex", "minValue",
                      "autointerp": {"kind", "role", "quantile", "tokenIds"}}],
     "explanations": [{"description", "typeName", "explanationModelName",
                       "scores": [{"explanationScoreTypeName", "explanationScoreModelName",
                                   "value", "jsonDetails"}],
                       "autointerp": {"explainer", "meta", "provenance"}}],
     "autointerp": {"source", "stats", "failures"}}

``layer`` is a Neuronpedia source id, ``<layer>-<feature source>-<site kind>`` (``sae/resid_post.6``
-> ``6-sae-resid-post``); ``typeName`` is the explainer, ``explanationScoreTypeName`` the scorer,
the model names the LLMs that explained and scored; ``jsonDetails`` is a JSON string with the
score's metrics, failure count, per-example predictions (example ids are positions in the
scorer's own example list), meta and provenance. Every field autointerp adds beyond Neuronpedia's
sits under ``autointerp``, so the store's data round-trips. Features stream to the file one at a
time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from autointerp.errors import AutointerpError
from autointerp.store import LatentStats, RunNotFoundError, Store, open_run
from autointerp.types import LatentIds, LatentRef, Prediction

T = TypeVar("T")
#: latents whose stats the Neuronpedia export reads in one query
STATS_PART = 1024

Format = Literal["jsonl", "parquet", "neuronpedia"]
FORMATS = ("jsonl", "parquet", "neuronpedia")


class ExportError(AutointerpError):
    """The run cannot be exported (no store, unknown run, missing Parquet support)."""


def _prediction(p: Prediction) -> dict[str, Any]:
    # dataclasses.asdict deep-copies field by field: half the export's time on big runs
    return {
        "example_id": p.example_id,
        "predicted": p.predicted,
        "actual": p.actual,
        "probability": p.probability,
        "quantile": p.quantile,
    }


def _explanation_rows(store: Store, run_id: int) -> Iterable[dict[str, Any]]:
    for e in store.iter_explanations(run_id):
        yield {
            "source": e.latent.source,
            "latent": e.latent.index,
            "explainer": e.explainer,
            "explanation": e.text,
            "meta": e.meta,
            "provenance": e.provenance,
        }


def _score_rows(store: Store, run_id: int) -> Iterable[dict[str, Any]]:
    for s in store.iter_scores(run_id):
        yield {
            "source": s.latent.source,
            "latent": s.latent.index,
            "explainer": s.explainer,
            "scorer": s.scorer,
            "value": s.value,
            "n_failures": s.n_failures,
            "metrics": s.metrics,
            "predictions": [_prediction(p) for p in s.predictions],
            "provenance": s.provenance,
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


def _cost_rows(store: Store, run_id: int) -> Iterable[dict[str, Any]]:
    from autointerp.status import component_costs

    return component_costs(store, run_id)


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


#: rows per Parquet write: memory holds a batch of rows, not the run
PARQUET_BATCH = 4096


def _chunks(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_parquet(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("Parquet export needs pyarrow: pip install pyarrow") from None
    flat = (
        {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        for row in rows
    )
    pending: list[Any] = []  # batches read before the columns' types are known
    writer, n = None, 0
    try:
        for batch in _chunks(flat, PARQUET_BATCH):
            n += len(batch)
            table = pa.Table.from_pylist(batch)
            if writer is not None:
                writer.write_table(table.cast(writer.schema))
                continue
            pending.append(table)
            if any(pa.types.is_null(f.type) for f in table.schema) and len(pending) < 16:
                continue  # a column all null so far: wait for a batch that shows its type
            schema = pa.unify_schemas([t.schema for t in pending], promote_options="permissive")
            writer = pq.ParquetWriter(path, schema)
            for t in pending:
                writer.write_table(t.cast(schema))
            pending = []
        if writer is None:  # every batch held (few rows, or a column null throughout)
            if pending:
                table = pa.concat_tables(pending, promote_options="permissive")
            else:
                table = pa.Table.from_pylist([])
            pq.write_table(table, path)
    finally:
        if writer is not None:
            writer.close()
    return n


_SITE = re.compile(r"^(?P<kind>.*?)\.(?P<layer>\d+)$")


def neuronpedia_layer(source: str) -> str:
    """A Neuronpedia source id (``<layer>-<set name>``, lowercase, dashes) for a feature-source
    key: ``sae/resid_post.6`` -> ``6-sae-resid-post``; a site without a layer keeps its name."""
    component, _, site = source.partition("/")
    m = _SITE.match(site)
    parts = [m["layer"], component, m["kind"]] if m else [component, site]
    return re.sub(r"[^a-z0-9]+", "-", "-".join(p for p in parts if p).lower()).strip("-")


def _model_id(run_dir: Path, config: dict[str, Any], sources: list[str]) -> str:
    """The subject model's name: from the run config, else from a cache manifest."""
    model = config.get("model")
    if isinstance(model, dict) and model.get("model"):
        return str(model["model"])
    for source in sources:
        manifest = run_dir / "cache" / source.partition("/")[2] / "manifest.json"
        if manifest.is_file():
            info = json.loads(manifest.read_text(encoding="utf-8")).get("info", {})
            name = (info.get("model") or {}).get("model") if isinstance(info, dict) else None
            if name:
                return str(name)
    return "unknown"


def _activation(example: Any) -> dict[str, Any]:
    values = [float(v) for v in example.activations]
    top = max(range(len(values)), key=values.__getitem__) if values else 0
    return {
        "tokens": list(example.str_tokens),
        "values": values,
        "maxValue": values[top] if values else 0.0,
        "maxValueTokenIndex": top,
        "minValue": min(values, default=0.0),
        "autointerp": {
            "kind": example.kind,
            "role": example.role,
            "quantile": example.quantile,
            "tokenIds": list(example.tokens),
        },
    }


def _llm_name(record: Any, default: str) -> str:
    prov = getattr(record, "provenance", None) or {}
    return str(prov.get("llm_model") or record.meta.get("model") or default)


def _np_score(s: Any) -> dict[str, Any]:
    details = {
        "metrics": s.metrics,
        "n_failures": s.n_failures,
        "predictions": [_prediction(p) for p in s.predictions],
        "meta": s.meta,
        "provenance": getattr(s, "provenance", {}),
    }
    return {
        "explanationScoreTypeName": s.scorer,
        "explanationScoreModelName": _llm_name(s, s.scorer),
        "value": s.value,
        "jsonDetails": json.dumps(details, ensure_ascii=False),
    }


def _neuronpedia_features(
    store: Store, run_id: int, run_dir: Path, model_id: str | None
) -> tuple[str, Iterable[dict[str, Any]], int]:
    """modelId, the feature records and their count. Records are built one latent at a time from
    per-latent lookups, so memory holds one latent's examples, explanations and scores."""
    explainers = store.explainer_names(run_id)
    score_keys = store.score_keys(run_id)
    failures: dict[LatentRef, list[dict[str, str]]] = {}
    for stage in ("explain", "score"):
        for (latent, component), reason in store.failures(run_id, stage).items():
            failures.setdefault(latent, []).append(
                {"stage": stage, "component": component, "reason": reason}
            )
    latents = store.latent_ids(run_id) | LatentIds(failures)  # compact, in latent order
    for explainer in explainers:
        latents = latents | store.explained(run_id, explainer)
    run = store.get_run(run_id)
    model = model_id or _model_id(run_dir, run.config if run else {}, latents.sources)

    def explanations(ref: LatentRef) -> list[dict[str, Any]]:
        out = []
        for explainer in explainers:
            e = store.get_explanation(run_id, ref, explainer)
            if e is None:
                continue
            scores = [
                store.get_score(run_id, ref, ex, sc) for ex, sc in score_keys if ex == explainer
            ]
            out.append(
                {
                    "description": e.text,
                    "typeName": e.explainer,
                    "explanationModelName": _llm_name(e, "unknown"),
                    "scores": [_np_score(s) for s in scores if s is not None],
                    "autointerp": {
                        "explainer": e.explainer,
                        "meta": e.meta,
                        "provenance": getattr(e, "provenance", {}),
                    },
                }
            )
        return out

    def features() -> Iterable[dict[str, Any]]:
        for part in _chunks(latents, STATS_PART):
            stats = store.latent_stats(run_id, part)
            for ref in part:
                yield feature(ref, stats.get(ref))

    def feature(ref: LatentRef, st: LatentStats | None) -> dict[str, Any]:
        return {
            "modelId": model,
            "layer": neuronpedia_layer(ref.source),
            "index": ref.index,
            "frac_nonzero": st.frequency if st else None,
            "maxActApprox": st.max_activation if st else None,
            "activations": [_activation(ex) for ex in store.examples(run_id, ref)],
            "explanations": explanations(ref),
            "autointerp": {
                "source": ref.source,
                "stats": dict(st.extra) if st else {},
                "failures": failures.get(ref, []),
            },
        }

    return model, features(), len(latents)


def _write_neuronpedia(
    path: Path, store: Store, run_id: int, run_dir: Path, model_id: str | None
) -> int:
    from autointerp import __version__

    model, features, n = _neuronpedia_features(store, run_id, run_dir, model_id)
    run = store.get_run(run_id)
    head = {
        "format": "neuronpedia-features",
        "generator": f"autointerp {__version__}",
        "reference": "https://github.com/hijohnnylin/neuronpedia",
        "modelId": model,
        "run": {"id": run_id, "name": run.name if run else "", "dir": str(run_dir)},
    }
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [\n')
        for i, feature in enumerate(features):
            f.write((",\n" if i else "") + json.dumps(feature, ensure_ascii=False))
        f.write("\n]}\n")
    return n


def export_run(
    run_dir: Path,
    fmt: Format = "jsonl",
    out_dir: Path | None = None,
    run_id: int | None = None,
    *,
    model_id: str | None = None,
) -> dict[Path, int]:
    """Write the export files; returns each file with its number of rows (latents for
    ``neuronpedia``). ``model_id`` overrides the Neuronpedia ``modelId``."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected jsonl, parquet or neuronpedia")
    try:
        with open_run(run_dir, run_id) as (store, picked):
            return _export(store, picked, run_dir, fmt, out_dir or run_dir / "export", model_id)
    except RunNotFoundError as exc:
        raise ExportError(str(exc)) from None


def _export(
    store: Store, run_id: int, run_dir: Path, fmt: Format, out_dir: Path, model_id: str | None
) -> dict[Path, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write = _write_jsonl if fmt == "jsonl" else _write_parquet
    written: dict[Path, int] = {}
    if fmt == "neuronpedia":
        path = out_dir / "neuronpedia.json"
        return {path: _write_neuronpedia(path, store, run_id, run_dir, model_id)}
    for name, rows in (
        ("explanations", _explanation_rows(store, run_id)),
        ("scores", _score_rows(store, run_id)),
        ("failures", _failure_rows(store, run_id)),
        ("cost", _cost_rows(store, run_id)),
    ):
        path = out_dir / f"{name}.{fmt}"
        written[path] = write(path, rows)
    return written
