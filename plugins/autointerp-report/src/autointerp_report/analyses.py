"""``autointerp analyze``: the analyses of *Automatically Interpreting Millions of Features in
LLMs* over one or more finished runs, each as a table, an SVG figure and a JSON file.

- ``deciles``: accuracy of 0/1 scorers (detection, fuzzing) per activation quantile of the
  held-out example (0 = weakest), and on non-activating examples. A prediction's quantile is the
  one it carries, else the ``quantile:N`` kind of the example its ``example_id`` points to.
- ``distributions``: score (or one metric's) distributions of several runs overlaid, per scorer.
- ``correlations``: Spearman correlation between scorers over latents, per run and pooled.
- ``similarity``: mean best-match similarity of embedded explanations, run by run (layers).
- ``cost``: LLM calls, tokens and dollars per component: from the ledger's ``component`` column
  where the store has one, else by request hash from the ``llm_calls`` that explanations and
  scores list in their meta (a call neither lists is "not attributed").

Runs are opened read-only (:mod:`autointerp_report.readonly`): an analysis never migrates, locks
or writes a run's store. Scores are read a page at a time; only the numbers an analysis keeps
(one value per latent and scorer, or counts) stay in memory.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autointerp.store import unpack_json
from autointerp.types import Example, LatentRef
from autointerp_report import figures
from autointerp_report.plots import write
from autointerp_report.readonly import OpenRun, open_readonly, open_runs
from autointerp_report.runs import RunInputError
from autointerp_report.stats import Column, ScoreColumns, agreement_arrays

#: scores read per query (predictions decoded per page)
PAGE = 2000
#: quantile codes besides 0..Q-1
NEGATIVE, UNKNOWN = -1, -2


@dataclass(frozen=True)
class Figure:
    """One figure of an analysis: its file-name part (after the analysis name), title and SVG."""

    part: str
    title: str
    svg: str


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _keys(run: OpenRun, explainer: str | None) -> tuple[list[tuple[str, str]], bool]:
    """The run's (explainer, scorer) pairs (of ``explainer`` if given) and whether a key must
    name the explainer (several of them scored)."""
    keys = run.store.score_keys(run.run_id)
    if explainer is not None:
        present = sorted({e for e, _ in keys})
        if explainer not in present:
            raise RunInputError(
                f"--explainer {explainer}: no scores of it in {run.ref.path} (explainers there: "
                + (", ".join(present) or "none")
                + ")"
            )
        keys = [k for k in keys if k[0] == explainer]
    return keys, explainer is None and len({e for e, _ in keys}) > 1


def _key(scorer: str, explainer: str, several: bool) -> str:
    return f"{scorer}/{explainer}" if several else scorer


def _series_label(runs: Sequence[OpenRun], run: OpenRun, key: str) -> str:
    return key if len(runs) == 1 else f"{run.ref.name} · {key}"


# -- accuracy per activation quantile ----------------------------------------------------------


def _scored_quantiles(run: OpenRun, refs: Sequence[LatentRef]) -> dict[LatentRef, list[int]]:
    """Per latent, the quantile of each scored example in ``example_id`` order
    (``[*test, *negatives]``, :func:`autointerp.examples.scored_examples`): N for a
    ``quantile:N`` example, ``NEGATIVE`` for a non-activating one. From the stored example kinds
    alone (no token or activation is decoded); latents without stored examples are absent."""
    store, kinds = run.store, {}
    if store.columns("example_sets"):
        for rows in store._latent_rows(
            "SELECT source, idx, kinds FROM example_sets", run.run_id, refs, "idx"
        ):
            for r in rows:
                kinds[LatentRef(r["source"], r["idx"])] = json.loads(r["kinds"])
    legacy = [ref for ref in refs if ref not in kinds]
    if legacy and store.columns("examples"):
        for rows in store._latent_rows(
            "SELECT source, idx, kind FROM examples", run.run_id, legacy, "rank"
        ):
            for r in rows:
                kinds.setdefault(LatentRef(r["source"], r["idx"]), []).append(r["kind"])
    out: dict[LatentRef, list[int]] = {}
    for ref, ks in kinds.items():
        roles = [(Example((), (), (), k).role, k) for k in ks]
        test = [_quantile_of(k) for role, k in roles if role == "test"]
        out[ref] = test + [NEGATIVE for role, _ in roles if role == "negative"]
    return out


def _quantile_of(kind: str) -> int:
    m = re.search(r"quantile:(\d+)", kind)
    return int(m.group(1)) if m else UNKNOWN


@dataclass
class _Tally:
    """Counts per quantile code of one scorer: scored, correct, failed (unparsed)."""

    scored: dict[int, int]
    correct: dict[int, int]
    failed: dict[int, int]
    binary: bool = True

    def add(self, q: int, predicted: Any, actual: Any) -> None:
        if predicted is None:
            self.failed[q] = self.failed.get(q, 0) + 1
            return
        if predicted not in (0, 1) or actual not in (0, 1):
            self.binary = False
        self.scored[q] = self.scored.get(q, 0) + 1
        if (predicted >= 0.5) == (actual >= 0.5):
            self.correct[q] = self.correct.get(q, 0) + 1

    def cell(self, q: int) -> dict[str, Any]:
        n, c = self.scored.get(q, 0), self.correct.get(q, 0)
        return {"n": n, "correct": c, "failed": self.failed.get(q, 0),
                "accuracy": c / n if n else None}  # fmt: skip


def accuracy_by_quantile(run: OpenRun, explainer: str | None = None) -> dict[str, Any]:
    """One run's accuracy per activation quantile, per scorer (see the module docstring)."""
    _, several = _keys(run, explainer)
    tallies: dict[str, _Tally] = {}
    origin = {"prediction": 0, "examples": 0, "unknown": 0}
    sql = (
        "SELECT source, idx, explainer, scorer, predictions FROM scores WHERE run_id = ? "
        "AND (source, idx, explainer, scorer) > (?, ?, ?, ?)"
        + (" AND explainer = ?" if explainer is not None else "")
        + " ORDER BY source, idx, explainer, scorer LIMIT ?"
    )
    after: tuple[Any, ...] = ("", -1, "", "")
    while True:
        extra = (explainer,) if explainer is not None else ()
        rows = run.store.rows(sql, (run.run_id, *after, *extra, PAGE))
        if not rows:
            break
        quantiles = _scored_quantiles(run, sorted({LatentRef(r[0], r[1]) for r in rows}))
        for source, idx, expl, scorer, text in rows:
            tally = tallies.setdefault(_key(scorer, expl, several), _Tally({}, {}, {}))
            known = quantiles.get(LatentRef(source, idx), [])
            for p in unpack_json(text, "score's predictions"):
                q = p.get("quantile", "missing")
                if q == "missing":
                    eid = p.get("example_id", -1)
                    q = known[eid] if 0 <= eid < len(known) else UNKNOWN
                    origin["examples" if q != UNKNOWN else "unknown"] += 1
                else:
                    q = NEGATIVE if q is None else int(q)
                    origin["prediction"] += 1
                tally.add(q, p.get("predicted"), p.get("actual"))
        if len(rows) < PAGE:
            break
        after = tuple(rows[-1])[:4]
    found = [name for name in ("prediction", "examples") if origin[name]]
    return {
        "run": run.label,
        "quantile_from": " and ".join({"prediction": "predictions",
                                       "examples": "stored examples"}[n] for n in found) or None,
        "unknown": origin["unknown"],
        "scorers": {
            key: {
                "binary": t.binary,
                "quantiles": {
                    str(q): t.cell(q) for q in sorted(set(t.scored) | set(t.failed)) if q >= 0
                },
                "non_activating": t.cell(NEGATIVE),
                "unknown": t.cell(UNKNOWN),
            }
            for key, t in sorted(tallies.items())
        },
    }  # fmt: skip


def analyze_deciles(
    runs: Sequence[OpenRun], *, explainer: str | None = None
) -> tuple[dict[str, Any], list[Figure]]:
    """Accuracy per activation quantile of every 0/1 scorer of every run; one line chart."""
    per_run = [accuracy_by_quantile(r, explainer) for r in runs]
    notes: list[str] = []
    quantiles: set[int] = set()
    series: list[figures.Series] = []
    for run, data in zip(runs, per_run, strict=True):
        if not data["scorers"]:
            notes.append(f"{run.label}: no scores yet")
            continue
        if data["quantile_from"] is None:
            notes.append(
                f"{run.label}: no quantile for its predictions (they carry none and the run "
                "stored no held-out examples): no accuracy per quantile"
            )
            continue
        for key, block in data["scorers"].items():
            if not block["binary"]:
                notes.append(
                    f"{run.label}: {key} predicts values, not 0/1: accuracy per quantile is "
                    "for 0/1 scorers (detection, fuzzing)"
                )
                continue
            qs = sorted(int(q) for q in block["quantiles"])
            quantiles.update(qs)
            cells = [block["non_activating"]] + [block["quantiles"][str(q)] for q in qs]
            label = _series_label(runs, run, key)
            series.append(
                figures.Series(
                    label,
                    [-1.0] + [float(q) for q in qs],
                    [math.nan if c["accuracy"] is None else c["accuracy"] for c in cells],
                    [
                        f"{label}, {name}: accuracy {_pct(c)}"
                        for name, c in zip(
                            ["non-activating"] + [f"quantile {q + 1}" for q in qs],
                            cells,
                            strict=True,
                        )
                    ],
                )
            )
    qs = sorted(quantiles)
    word = "decile" if len(qs) == 10 else "quantile"
    title = f"accuracy per activation {word}"
    ticks = [(-1.0, "non-act.")] + [(float(q), str(q + 1)) for q in qs]
    svg = figures.lines(
        series, title=title, ylabel="accuracy", xticks=ticks,
        xlabel=f"activation {word} of the held-out example (1 = weakest)",
    ) if series else figures.empty(title, "no 0/1 scorer with quantiles to plot")  # fmt: skip
    data = {
        "analysis": "deciles",
        "quantile_order": "0 = weakest activations (tables and figures count from 1)",
        "quantiles": qs,
        "runs": per_run,
        "notes": notes,
    }
    return data, [Figure("", title, svg)]


def _pct(cell: dict[str, Any]) -> str:
    acc = cell["accuracy"]
    return "n/a" if acc is None else f"{acc:.3f} ({cell['correct']}/{cell['n']})"


# -- score distributions -----------------------------------------------------------------------


def score_values(
    run: OpenRun, explainer: str | None = None, metric: str | None = None
) -> tuple[dict[str, Column], dict[str, int]]:
    """``{scorer key: (latent codes, values)}`` (the headline value, or ``metric`` from each
    score's metrics; see :class:`autointerp_report.stats.ScoreColumns`) and the number of scores
    without one per key, read from the cursor into arrays: 16 bytes a score at any run size."""
    _, several = _keys(run, explainer)
    column = "value" if metric is None else "json_extract(metrics, ?)"
    params: list[Any] = [] if metric is None else [f'$."{metric}"']
    sql = f"SELECT source, idx, scorer, explainer, {column} FROM scores WHERE run_id = ?"
    params.append(run.run_id)
    if explainer is not None:
        sql += " AND explainer = ?"
        params.append(explainer)
    columns = ScoreColumns()
    names: dict[tuple[str, str], str] = {}
    for source, idx, scorer, expl, v in run.store.iter_rows(sql + " ORDER BY source, idx", params):
        key = names.get((scorer, expl))
        if key is None:
            key = names[(scorer, expl)] = _key(scorer, expl, several)
        columns.add(key, source, idx, v)
    values = columns.arrays()
    if metric is not None and not any(len(c) for c, _ in values.values()):
        raise RunInputError(
            f"--metric {metric}: no score of {run.ref.path} has it (look at the metrics of a "
            f"score with `autointerp export {run.ref.path}`)"
        )
    return values, columns.missing


def analyze_distributions(
    runs: Sequence[OpenRun], *, explainer: str | None = None, metric: str | None = None,
    bins: int = 20,
) -> tuple[dict[str, Any], list[Figure]]:  # fmt: skip
    """Per scorer, every run's score distribution: a table of summaries and one figure with the
    runs' histograms overlaid."""
    if bins < 1:
        raise RunInputError(f"--bins {bins}: expected a positive number of bins")
    loaded = [score_values(r, explainer, metric) for r in runs]
    keys = sorted({k for values, _ in loaded for k in values})
    what = metric or "score"
    blocks: dict[str, Any] = {}
    out: list[Figure] = []
    for key in keys:
        rows, series = [], []
        for run, (values, missing) in zip(runs, loaded, strict=True):
            v = values[key][1] if key in values else np.zeros(0)
            series.append((run.ref.name if len(runs) > 1 else run.label, v))
            q25, q50, q75 = np.quantile(v, [0.25, 0.5, 0.75]).tolist() if len(v) else [None] * 3
            rows.append({
                "run": run.label, "n": len(v), "missing": missing.get(key, 0),
                "mean": _num(float(v.mean())) if len(v) else None,
                "median": q50, "q25": q25, "q75": q75,
            })  # fmt: skip
        allv = np.concatenate([v for _, v in series]) if series else np.zeros(0)
        lo, hi = (0.0, 1.0) if not len(allv) else (float(allv.min()), float(allv.max()))
        if lo >= 0.0 and hi <= 1.0:
            lo, hi = 0.0, 1.0
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        for row, (_, v) in zip(rows, series, strict=True):
            row["histogram"] = np.histogram(v, bins=edges)[0].tolist()
        blocks[key] = {"edges": edges.tolist(), "runs": rows}
        title = f"{key}: {what} distribution" + (" by run" if len(runs) > 1 else "")
        svg = figures.step_histograms(series, title=title, xlabel=what, bins=bins)
        out.append(Figure(_slug(key + (f"-{metric}" if metric else "")), title, svg))
    data = {"analysis": "distributions", "metric": metric, "runs": [r.label for r in runs],
            "scorers": blocks, "notes": [] if keys else ["no scores in these runs"]}  # fmt: skip
    return data, out


# -- scorer correlations -----------------------------------------------------------------------


def _matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[_num(float(v)) for v in row] for row in m]


def analyze_correlations(
    runs: Sequence[OpenRun], *, explainer: str | None = None
) -> tuple[dict[str, Any], list[Figure]]:
    """Spearman correlation between scorers over latents, per run and pooled over the runs
    (a latent of each run is one observation); a heatmap each."""
    loaded = [score_values(r, explainer)[0] for r in runs]
    per_run, out, notes = [], [], []
    pooled: dict[str, list[Column]] = {}
    for i, (run, values) in enumerate(zip(runs, loaded, strict=True)):
        names, rho, n = agreement_arrays(values)
        per_run.append({"run": run.label, "scorers": names, "spearman": _matrix(rho),
                        "n": n.tolist()})  # fmt: skip
        if len(names) < 2:
            notes.append(f"{run.label}: {len(names)} scorer(s); a correlation needs two")
        else:
            title = f"scorer correlation (Spearman): {run.ref.name}"
            part = _slug(run.ref.name) if len(runs) > 1 else ""
            svg = figures.heatmap(names, names, rho, title=title, counts=n)
            out.append(Figure(part, title, svg))
        for key, (codes, vals) in values.items():  # a latent of run i: the run in the top bits
            pooled.setdefault(key, []).append((codes | (i << 52), vals))
    pooled_block = None
    if len(runs) > 1:
        joined = {k: tuple(map(np.concatenate, zip(*cols, strict=True)))
                  for k, cols in pooled.items()}  # fmt: skip
        names, rho, n = agreement_arrays(joined)
        pooled_block = {"scorers": names, "spearman": _matrix(rho), "n": n.tolist()}
        if len(names) >= 2:
            title = f"scorer correlation (Spearman), pooled over {len(runs)} runs"
            svg = figures.heatmap(names, names, rho, title=title, counts=n)
            out.insert(0, Figure("pooled", title, svg))
    data = {"analysis": "correlations", "runs": per_run, "pooled": pooled_block, "notes": notes}
    return data, out


# -- explanation similarity across runs ----------------------------------------------------------


def _explanations(run: OpenRun, explainer: str | None) -> Any:
    from autointerp_report.similarity import RunExplanations

    rows = run.store.rows(
        "SELECT source, idx, explainer, text FROM explanations WHERE run_id = ? "
        "ORDER BY source, idx",
        (run.run_id,),
    )
    present = sorted({r[2] for r in rows})
    if not present:
        raise RunInputError(f"{run.ref.path}: run {run.run_id} has no explanations yet")
    if explainer is None:
        if len(present) > 1:
            raise RunInputError(
                f"{run.ref.path}: run {run.run_id} has explanations of several explainers "
                f"({', '.join(present)}); pick one with --explainer"
            )
        explainer = present[0]
    elif explainer not in present:
        raise RunInputError(
            f"--explainer {explainer}: no explanations of it in {run.ref.path} (explainers "
            f"there: {', '.join(present)})"
        )
    chosen = [r for r in rows if r[2] == explainer]
    return RunExplanations(
        run.ref, explainer, [LatentRef(r[0], r[1]) for r in chosen], [r[3] for r in chosen]
    )


def analyze_similarity(
    runs: Sequence[OpenRun], *, explainer: str | None = None, model: Path | None = None,
    batch_size: int = 64, threads: int | None = None, progress: bool = False,
) -> tuple[dict[str, Any], list[Figure]]:  # fmt: skip
    """Mean best-match cosine similarity of embedded explanations between every pair of runs
    (row run's latents matched in the column run), as in ``autointerp similarity``; a heatmap."""
    from autointerp_report.similarity import best_matches, embed_runs

    if len(runs) < 2:
        raise RunInputError("analyze similarity: give at least two run directories")
    if batch_size < 1:
        raise RunInputError(f"--batch-size {batch_size}: expected a positive number")
    sets = [_explanations(r, explainer) for r in runs]
    vectors = embed_runs(sets, model=model, batch_size=batch_size, threads=threads,
                         progress=progress)  # fmt: skip
    k = len(runs)
    mean, median = np.full((k, k), np.nan), np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i, k):
            sim_a, _, sim_b, _ = best_matches(vectors[i], vectors[j])
            mean[i, j], median[i, j] = float(sim_a.mean()), float(np.median(sim_a))
            mean[j, i], median[j, i] = float(sim_b.mean()), float(np.median(sim_b))
    labels = [r.label for r in runs]
    title = "explanation similarity (mean best match)"
    svg = figures.heatmap(labels, labels, mean, title=title, lo=0.0, hi=1.0,
                          xlabel="row's latents matched in column")  # fmt: skip
    data = {
        "analysis": "similarity",
        "model": str(model) if model else "all-MiniLM-L6-v2",
        "runs": [{"label": r.label, "layer": r.ref.layer, "explainer": s.explainer,
                  "n_explanations": len(s.texts)} for r, s in zip(runs, sets, strict=True)],
        "labels": labels, "mean": _matrix(mean), "median": _matrix(median), "notes": [],
    }  # fmt: skip
    return data, [Figure("", title, svg)]


# -- cost per component --------------------------------------------------------------------------

#: a run's ledger per (stage, component): as the ledger's own columns say where it has them
#: (``{stage}``, ``{component}``), else by request hash from the explanation or score whose meta
#: lists the call (an explainer's call wins over a scorer's asking the same)
_COST = """
WITH made AS (
    SELECT 'explain' AS stage, e.explainer AS component, j.value AS h
    FROM explanations e, json_each(e.meta, '$.llm_calls') j
    WHERE e.run_id = :run AND json_valid(e.meta)
    UNION ALL
    SELECT 'score', s.scorer || '/' || s.explainer, j.value
    FROM scores s, json_each(s.meta, '$.llm_calls') j WHERE s.run_id = :run AND json_valid(s.meta)
), owner AS (SELECT h, MIN(stage) AS stage, component FROM made GROUP BY h)
SELECT CASE WHEN {component} != '' THEN {stage} ELSE COALESCE(o.stage, '') END,
       CASE WHEN {component} != '' THEN {component} ELSE COALESCE(o.component, '') END,
       COALESCE(SUM(1 - l.cached), 0), COALESCE(SUM(l.cached), 0),
       COALESCE(SUM(l.prompt_tokens), 0), COALESCE(SUM(l.completion_tokens), 0),
       COALESCE(SUM(l.cost_usd), 0.0)
FROM llm_ledger l LEFT JOIN owner o ON o.h = l.request_hash
WHERE l.run_id = :run GROUP BY 1, 2 ORDER BY 1, 2
"""
BY_COLUMN = "the ledger's component column (request hashes in result meta where it is empty)"
BY_HASH = "request hashes listed in explanation and score meta (no component column in its ledger)"


def cost_by_component(run: OpenRun) -> dict[str, Any]:
    """One run's LLM usage per component: paid calls, cache hits, tokens, dollars."""
    columns = run.store.columns("llm_ledger")
    by_column = "component" in columns
    sql = _COST.format(
        component="COALESCE(l.component, '')" if by_column else "''",
        stage="COALESCE(l.stage, '')" if "stage" in columns else "''",
    )
    rows = run.store.rows(sql, {"run": run.run_id})
    return {
        "run": run.label,
        "attribution": BY_COLUMN if by_column else BY_HASH,
        "components": [
            {"component": " ".join(x for x in (stage, comp or "") if x) or "(not recorded)",
             "stage": stage, "calls": int(calls), "cache_hits": int(hits),
             "prompt_tokens": int(pt), "completion_tokens": int(ct), "cost_usd": float(usd)}
            for stage, comp, calls, hits, pt, ct, usd in rows
        ],
    }  # fmt: skip


def analyze_cost(runs: Sequence[OpenRun]) -> tuple[dict[str, Any], list[Figure]]:
    """LLM usage per component of every run; bars of dollars (tokens where nothing was paid)."""
    per_run = [cost_by_component(r) for r in runs]
    notes = [f"{d['run']}: attributed by {d['attribution']}" for d in per_run]
    notes += [f"{d['run']}: no LLM calls in its ledger" for d in per_run if not d["components"]]
    components = sorted({c["component"] for d in per_run for c in d["components"]})
    paid = any(c["cost_usd"] > 0 for d in per_run for c in d["components"])

    def amount(c: dict[str, Any]) -> float:
        return c["cost_usd"] if paid else c["prompt_tokens"] + c["completion_tokens"]

    series = []
    for run, d in zip(runs, per_run, strict=True):
        by = {c["component"]: amount(c) for c in d["components"]}
        series.append((run.ref.name, [by.get(c, math.nan) for c in components]))
    title = "LLM cost per component" + ("" if paid else " (tokens: no call was paid for)")
    svg = figures.hbars(components, series, title=title,
                        xlabel="US dollars" if paid else "tokens (prompt + completion)",
                        unit=" USD" if paid else " tokens")  # fmt: skip
    data = {"analysis": "cost", "runs": per_run, "paid": paid, "notes": notes}
    return data, [Figure("", title, svg)]


# -- running an analysis -------------------------------------------------------------------------

ANALYSES: dict[str, Callable[..., tuple[dict[str, Any], list[Figure]]]] = {
    "deciles": analyze_deciles,
    "distributions": analyze_distributions,
    "correlations": analyze_correlations,
    "similarity": analyze_similarity,
    "cost": analyze_cost,
}
#: the analyses a run's report makes of the run alone (cheap: no embedding model)
REPORT_ANALYSES = ("deciles", "correlations", "cost")


def default_out(first_run: str | Path) -> Path:
    """Where figures go unless ``--out`` says: the first run's ``report/analyses`` folder."""
    from autointerp_report.runs import parse_run_arg

    return parse_run_arg(first_run)[0] / "report" / "analyses"


def _stem(name: str, part: str, runs: Sequence[OpenRun]) -> str:
    """File stem: the analysis, its figure part, and for several runs their names (hashed when
    long), so analyses of other sets of runs in one folder do not overwrite each other."""
    stem = "-".join(x for x in (name, part) if x)
    if len(runs) > 1:
        names = "+".join(_slug(r.ref.name) for r in runs)
        if len(names) > 60:
            digest = hashlib.sha1(names.encode()).hexdigest()[:8]
            names = f"{names[:50]}-{digest}"
        stem += f"--{names}"
    return stem


def write_outputs(
    name: str, runs: Sequence[OpenRun], data: dict[str, Any], figs: list[Figure], out: Path
) -> dict[str, Any]:
    """Write the figures (SVG) and the data (JSON) of an analysis into ``out``; returns the data
    with ``figures`` (paths, titles) and ``json`` (path) added."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fig in figs:
        path = write(out / f"{_stem(name, fig.part, runs)}.svg", fig.svg)
        written.append({"file": str(path), "title": fig.title})
    data = {**data, "figures": written}
    path = out / f"{_stem(name, '', runs)}.json"
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return {**data, "json": str(path)}


def run_analysis(
    name: str, args: Sequence[str], *, out: Path | None = None, **options: Any
) -> dict[str, Any]:
    """Open ``args`` read-only, run analysis ``name`` with ``options``, write its figures and
    data into ``out`` (default :func:`default_out` of the first run); returns the data."""
    if name not in ANALYSES:
        raise RunInputError(f"unknown analysis {name!r}; one of: {', '.join(ANALYSES)}")
    if not args:
        raise RunInputError(f"analyze {name}: give at least one run directory")
    with open_runs(list(args)) as runs:
        data, figs = ANALYSES[name](runs, **options)
        return write_outputs(name, runs, data, figs, out or default_out(args[0]))


def report_figures(run_dir: Path, run_id: int, folder: Path) -> list[dict[str, str]]:
    """For a run's report: write the run's own analyses (:data:`REPORT_ANALYSES`) into ``folder``
    and list every analysis figure there (also those ``autointerp analyze`` put there earlier)
    as ``{"file": "analyses/NAME.svg", "title": ...}``, this run's first."""
    made: list[str] = []
    with open_readonly(run_dir, run_id=run_id) as run:
        for name in REPORT_ANALYSES:
            data, figs = ANALYSES[name]([run])
            if name == "correlations" and not figs:
                continue
            if name == "cost" and not any(d["components"] for d in data["runs"]):
                continue
            if name == "deciles" and not any(
                b["binary"] and b["quantiles"] for d in data["runs"] for b in d["scorers"].values()
            ):
                continue
            result = write_outputs(name, [run], data, figs, folder)
            made += [Path(f["file"]).name for f in result["figures"]]
    others = sorted(p.name for p in folder.glob("*.svg") if p.name not in made)
    return [{"file": f"{folder.name}/{n}", "title": _svg_title(folder / n)} for n in made + others]


def _svg_title(path: Path) -> str:
    m = re.search(r"<title>(.*?)</title>", path.read_text(encoding="utf-8")[:2000])
    return html.unescape(m.group(1)) if m else path.stem


# -- tables --------------------------------------------------------------------------------------


def render(data: dict[str, Any], console: Any) -> None:
    """Print an analysis as rich tables, its notes, and where its figures are."""
    from rich import box
    from rich.table import Table

    name = data["analysis"]

    def table(title: str, cols: Sequence[str]) -> Any:
        t = Table(box=box.SIMPLE_HEAD, title=title)
        for i, col in enumerate(cols):
            t.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
        return t

    def f3(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    if name == "deciles":
        qs = data["quantiles"]
        t = table("accuracy per activation quantile (1 = weakest) of 0/1 scorers",
                  ["run", "scorer", "non-act.", *(str(q + 1) for q in qs), "n"])  # fmt: skip
        for d in data["runs"]:
            for key, b in d["scorers"].items():
                if not b["binary"] or d["quantile_from"] is None:
                    continue
                cells = [b["non_activating"]] + [
                    b["quantiles"].get(str(q), {"accuracy": None, "n": 0}) for q in qs
                ]
                t.add_row(d["run"], key, *(f3(c["accuracy"]) for c in cells),
                          str(sum(c["n"] for c in cells)))  # fmt: skip
        console.print(t)
    elif name == "distributions":
        from autointerp_report.compare import sparkline

        for key, block in data["scorers"].items():
            lo, hi = block["edges"][0], block["edges"][-1]
            what = data["metric"] or "score"
            t = table(f"{key}: {what} distribution; histogram over {lo:.2f}..{hi:.2f}",
                      ["run", "n", "mean", "q25", "median", "q75", "histogram"])  # fmt: skip
            for r in block["runs"]:
                n = str(r["n"]) + (f" (+{r['missing']} none)" if r["missing"] else "")
                t.add_row(r["run"], n, f3(r["mean"]), f3(r["q25"]), f3(r["median"]),
                          f3(r["q75"]), sparkline(r["histogram"]))  # fmt: skip
            console.print(t)
    elif name == "correlations":
        blocks = [(f"scorer correlation (Spearman): {r['run']}", r) for r in data["runs"]]
        if data["pooled"] is not None:
            blocks.insert(0, ("scorer correlation (Spearman), pooled over runs", data["pooled"]))
        for title, b in blocks:
            if len(b["scorers"]) < 2:
                continue
            t = table(title, ["", *b["scorers"]])
            for key, row, ns in zip(b["scorers"], b["spearman"], b["n"], strict=True):
                t.add_row(key, *(f"{'-' if v is None else f'{v:.2f}'} ({k})"
                                 for v, k in zip(row, ns, strict=True)))  # fmt: skip
            console.print(t)
    elif name == "similarity":
        t = table(f"mean best-match explanation similarity ({data['model']}); row's latents "
                  "matched in column", ["", *data["labels"]])  # fmt: skip
        for label, row in zip(data["labels"], data["mean"], strict=True):
            t.add_row(label, *(f3(v) for v in row))
        console.print(t)
    elif name == "cost":
        t = table("LLM usage per component",
                  ["run", "component", "calls", "cache hits", "prompt tokens",
                   "completion tokens", "USD"])  # fmt: skip
        for d in data["runs"]:
            for c in d["components"]:
                t.add_row(d["run"], c["component"], str(c["calls"]), str(c["cache_hits"]),
                          f"{c['prompt_tokens']:,}", f"{c['completion_tokens']:,}",
                          f"{c['cost_usd']:.4f}")  # fmt: skip
        console.print(t)
    for note in data.get("notes", []):
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for fig in data.get("figures", []):
        console.print(f"figure: {fig['file']}", highlight=False, soft_wrap=True)
