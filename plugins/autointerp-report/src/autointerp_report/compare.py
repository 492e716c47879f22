"""``autointerp compare``: score distributions of several runs side by side.

For every scorer present: per run the number of scored latents, the median with a percentile
bootstrap confidence interval, the mean and a histogram; for every run after the first, the
difference of medians against the first run with two p-values (a permutation test of that
difference, and Mann-Whitney U). Per run, the Spearman agreement matrix between its scorers.
The typical use: an SAE run against a top-k-neuron run on the same model and layer.

Scores are grouped by scorer name; a run scored by several explainers gets one group per
``scorer/explainer`` unless ``explainer`` picks one. Latents whose score is None (every prediction
failed) are counted as ``missing`` and left out of the statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from autointerp_report.runs import (
    RunInputError,
    RunRef,
    open_run_input,
    parse_run_arg,
    run_sources,
    unique_names,
)
from autointerp_report.stats import (
    Column,
    ScoreColumns,
    agreement_arrays,
    bootstrap_ci,
    mann_whitney,
    median_difference_ci,
    permutation_test,
)

#: histogram bins shown per run and scorer (shared edges across runs, so bars compare)
HIST_BINS = 10


@dataclass(frozen=True)
class RunScores:
    """One run's scores: ``values[key]`` = (latent codes, values) for each scorer key (arrays,
    as :func:`autointerp_report.analyses.score_values` gives them), and None-valued counts."""

    run: RunRef
    values: dict[str, Column]
    missing: dict[str, int]


def load_run_scores(arg: str, name: str | None = None, explainer: str | None = None) -> RunScores:
    """Read one run's scores (latest run in the store unless ``DIR@ID``)."""
    path, wanted_id = parse_run_arg(arg)
    with open_run_input(path, wanted_id) as (store, run_id):
        keys = store.score_keys(run_id)  # (explainer, scorer) pairs, without reading scores
        if not keys:
            raise RunInputError(
                f"{path}: run {run_id} has no scores yet; score it with `autointerp run` first"
            )
        explainers = sorted({e for e, _ in keys})
        if explainer is not None:
            if explainer not in explainers:
                raise RunInputError(
                    f"{path}: no scores of explainer {explainer!r}; explainers here: "
                    + ", ".join(explainers)
                )
            keys = [(e, sc) for e, sc in keys if e == explainer]
        several = explainer is None and len(explainers) > 1
        columns = ScoreColumns()
        # headline values only, from the cursor: predictions, metrics and provenance are never
        # decoded, and a million scores are arrays, not dicts
        for source, idx, scorer, expl, value in store.iter_score_values(run_id, None, explainer):
            key = f"{scorer}/{expl}" if several else scorer
            columns.add(key, source, idx, value)
        sources = run_sources(store, run_id, columns.sources)
    run = RunRef(path, run_id, name or path.resolve().name or str(path), sources)
    return RunScores(run, columns.arrays(), columns.missing)


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[_num(float(v)) for v in row] for row in m]


def compare_runs(
    args: list[str],
    *,
    scorers: list[str] | None = None,
    explainer: str | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The comparison as plain data (JSON-ready: NaN becomes None); see the module docstring."""
    if not args:
        raise RunInputError("compare: give at least one run directory")
    if not 0 < confidence < 1:
        raise RunInputError(f"--confidence {confidence}: expected a number between 0 and 1")
    for flag, value in (("--n-boot", n_boot), ("--n-perm", n_perm)):
        if value < 1:
            raise RunInputError(f"{flag} {value}: expected a positive number of resamples")
    paths = [parse_run_arg(a)[0] for a in args]
    names = unique_names(list(args), paths)
    runs = [load_run_scores(a, n, explainer) for a, n in zip(args, names, strict=True)]
    present = sorted({k for r in runs for k in r.values})
    if scorers:
        for name in scorers:
            for r in runs:
                if name not in r.values:
                    raise RunInputError(
                        f"--scorer {name}: not in {r.run.path} (scorers there: "
                        + ", ".join(sorted(r.values))
                        + ")"
                    )
        present = list(dict.fromkeys(scorers))
    result: dict[str, Any] = {
        "confidence": confidence,
        "n_boot": n_boot,
        "n_perm": n_perm,
        "seed": seed,
        "runs": [
            {
                "label": r.run.label,
                "name": r.run.name,
                "path": str(r.run.path),
                "run_id": r.run.run_id,
                "sources": list(r.run.sources),
                "scorers": sorted(r.values),
            }
            for r in runs
        ],
        "scorers": {},
        "agreement": [],
    }
    for key in present:
        samples = [r.values[key][1] if key in r.values else np.zeros(0) for r in runs]
        pooled = np.concatenate(samples)
        lo, hi = (float(pooled.min()), float(pooled.max())) if len(pooled) else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        rows = []
        for r, x in zip(runs, samples, strict=True):
            med, ci_lo, ci_hi = bootstrap_ci(x, confidence=confidence, n_boot=n_boot, seed=seed)
            row: dict[str, Any] = {
                "run": r.run.label,
                "n": len(x),
                "missing": r.missing.get(key, 0),
                "median": _num(med),
                "ci": [_num(ci_lo), _num(ci_hi)],
                "mean": _num(float(x.mean())) if len(x) else None,
                "histogram": np.histogram(x, bins=HIST_BINS, range=(lo, hi))[0].tolist(),
                "vs_first": None,
            }
            if r is not runs[0] and len(x) and len(samples[0]):
                diff, p_perm = permutation_test(samples[0], x, n_perm=n_perm, seed=seed)
                u, p_mwu = mann_whitney(samples[0], x)
                _, d_lo, d_hi = median_difference_ci(
                    samples[0], x, confidence=confidence, n_boot=n_boot, seed=seed
                )
                row["vs_first"] = {
                    "median_diff": _num(diff),
                    "median_diff_ci": [_num(d_lo), _num(d_hi)],
                    "p_permutation": _num(p_perm),
                    "u": _num(u),
                    "p_mann_whitney": _num(p_mwu),
                }
            rows.append(row)
        result["scorers"][key] = {"histogram_range": [lo, hi], "runs": rows}
    for r in runs:
        # every scorer of the run, whatever --scorer says
        names_, rho, n = agreement_arrays(r.values)
        result["agreement"].append(
            {"run": r.run.label, "scorers": names_, "spearman": _matrix(rho), "n": n.tolist()}
        )
    return result


_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    """A histogram as one line of block characters (tallest bar = full block)."""
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    return "".join(_BARS[0 if c == 0 else max(1, round(c / top * 8))] for c in counts)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _fmt_diff(vs: dict[str, Any]) -> str:
    if not vs or vs.get("median_diff") is None:
        return "-"
    lo, hi = vs["median_diff_ci"]
    return f"{vs['median_diff']:+.3f} [{_fmt(lo)}, {_fmt(hi)}]"


def render(result: dict[str, Any], console: Any) -> None:
    """Print the comparison as rich tables: one per scorer, then each run's agreement matrix."""
    from rich import box
    from rich.table import Table

    pct = round(result["confidence"] * 100)
    for key, block in result["scorers"].items():
        lo, hi = block["histogram_range"]
        table = Table(
            box=box.SIMPLE_HEAD,
            title=f"{key}: median [{pct}% bootstrap CI]; histogram over {lo:.2f}..{hi:.2f}",
        )
        cols = ("run", "n", "median [CI]", "mean", "histogram", "Δ median [CI]", "p perm", "p MWU")
        for col in cols:
            table.add_column(col, justify="left" if col in ("run", "histogram") else "right")
        for i, row in enumerate(block["runs"]):
            vs = row["vs_first"] or {}
            n = str(row["n"]) + (f" (+{row['missing']} failed)" if row["missing"] else "")
            lo_ci, hi_ci = row["ci"]
            table.add_row(
                row["run"],
                n,
                "-"
                if row["median"] is None
                else f"{row['median']:.3f} [{_fmt(lo_ci)}, {_fmt(hi_ci)}]",
                _fmt(row["mean"]),
                sparkline(row["histogram"]),
                "(first)" if i == 0 else _fmt_diff(vs),
                _fmt_p(vs.get("p_permutation")),
                _fmt_p(vs.get("p_mann_whitney")),
            )
        console.print(table)
    for item in result["agreement"]:
        if len(item["scorers"]) < 2:
            continue
        table = Table(box=box.SIMPLE_HEAD, title=f"scorer agreement (Spearman): {item['run']}")
        table.add_column("")
        for name in item["scorers"]:
            table.add_column(name, justify="right")
        for name, rho, n in zip(item["scorers"], item["spearman"], item["n"], strict=True):
            cells = [f"{_fmt(v, 2)} ({k})" for v, k in zip(rho, n, strict=True)]
            table.add_row(name, *cells)
        console.print(table)
