"""``autointerp similarity``: how alike two feature sets are, judged by their explanations.

As in the cross-layer analysis of *Automatically Interpreting Millions of Features in LLMs*: every
explanation is embedded with a sentence-embedding model (all-MiniLM-L6-v2, offline, through
:mod:`autointerp_report.embed`), and each latent of run A is matched to the latent of run B whose
explanation is nearest in cosine similarity (and each latent of B to its nearest in A). The
distribution of these best-match similarities says how much of A's vocabulary of concepts B
shares; for runs at several layers, the matrix of mean best-match similarity (row run's latents
matched into the column run) shows how the concepts drift with depth. The diagonal compares a run
with itself and is 1.

The similarity matrix is never held whole: rows of A are matched against B a chunk at a time, so
memory stays at one chunk (``chunk_elements`` floats) beyond the embeddings themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autointerp.types import LatentRef
from autointerp_report.runs import (
    RunInputError,
    RunRef,
    open_run_input,
    parse_run_arg,
    run_sources,
    unique_names,
)

#: best-match histogram: 20 bins of 0.05 on [0, 1] (a negative similarity counts in the first bin)
HIST_EDGES = np.linspace(0.0, 1.0, 21)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class RunExplanations:
    """One run's explained latents and their explanation texts, in latent order."""

    run: RunRef
    explainer: str
    latents: list[LatentRef]
    texts: list[str]


def load_run_explanations(
    arg: str, name: str | None = None, explainer: str | None = None
) -> RunExplanations:
    """Read one run's explanations (latest run in the store unless ``DIR@ID``)."""
    path, wanted_id = parse_run_arg(arg)
    with open_run_input(path, wanted_id) as (store, run_id):
        explanations = store.explanations(run_id)
        if not explanations:
            raise RunInputError(
                f"{path}: run {run_id} has no explanations yet; explain it with `autointerp run`"
            )
        explainers = sorted({e.explainer for e in explanations})
        if explainer is None:
            if len(explainers) > 1:
                raise RunInputError(
                    f"{path}: run {run_id} has explanations of several explainers "
                    f"({', '.join(explainers)}); pick one with --explainer"
                )
            explainer = explainers[0]
        elif explainer not in explainers:
            raise RunInputError(
                f"{path}: no explanations of explainer {explainer!r}; explainers here: "
                + ", ".join(explainers)
            )
        chosen = [e for e in explanations if e.explainer == explainer]
        sources = run_sources(store, run_id, {e.latent.source for e in chosen})
    run = RunRef(path, run_id, name or path.resolve().name or str(path), sources)
    return RunExplanations(run, explainer, [e.latent for e in chosen], [e.text for e in chosen])


def best_matches(
    a: np.ndarray, b: np.ndarray, *, chunk_elements: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest neighbours both ways between two sets of unit vectors ``a`` [N, d], ``b`` [M, d].

    Returns ``(sim_a, idx_a, sim_b, idx_b)``: for each row of ``a`` the best cosine similarity in
    ``b`` and its index, and the same for each row of ``b`` in ``a``. One pass over row chunks of
    ``a``; a chunk's ``rows x M`` block is the only similarity matrix ever held.
    """
    n, m = len(a), len(b)
    sim_a = np.full(n, -np.inf, dtype=np.float32)
    idx_a = np.zeros(n, dtype=np.int64)
    sim_b = np.full(m, -np.inf, dtype=np.float32)
    idx_b = np.zeros(m, dtype=np.int64)
    if n == 0 or m == 0:
        return sim_a, idx_a, sim_b, idx_b
    rows = max(1, chunk_elements // m)
    for start in range(0, n, rows):
        block = a[start : start + rows] @ b.T  # [rows, m]
        best = block.argmax(axis=1)
        idx_a[start : start + len(block)] = best
        sim_a[start : start + len(block)] = block[np.arange(len(block)), best]
        col = block.argmax(axis=0)
        col_sim = block[col, np.arange(m)]
        better = col_sim > sim_b
        sim_b[better] = col_sim[better]
        idx_b[better] = col[better] + start
    return sim_a, idx_a, sim_b, idx_b


def summarize(sim: np.ndarray) -> dict[str, Any]:
    """Mean, median, quantiles and histogram counts of best-match similarities."""
    if len(sim) == 0:
        return {"n": 0, "mean": None, "median": None, "quantiles": {}, "histogram": []}
    counts = np.histogram(np.clip(sim, 0.0, 1.0), bins=HIST_EDGES)[0]
    return {
        "n": len(sim),
        "mean": float(sim.mean()),
        "median": float(np.median(sim)),
        "quantiles": dict(
            zip(map(str, QUANTILES), np.quantile(sim, QUANTILES).tolist(), strict=True)
        ),
        "histogram": counts.tolist(),
    }


def _pairs_shown(
    src: RunExplanations, dst: RunExplanations, sim: np.ndarray, idx: np.ndarray, k: int
) -> dict[str, list[dict[str, Any]]]:
    order = np.argsort(-sim, kind="stable")

    def item(i: int) -> dict[str, Any]:
        j = int(idx[i])
        return {
            "latent": src.latents[i].index,
            "text": src.texts[i],
            "match": dst.latents[j].index,
            "match_text": dst.texts[j],
            "similarity": float(sim[i]),
        }

    return {
        "best": [item(int(i)) for i in order[:k]],
        "worst": [item(int(i)) for i in order[::-1][:k]],
    }


def embed_runs(
    runs: list[RunExplanations],
    *,
    model: str | Path | None = None,
    batch_size: int = 64,
    threads: int | None = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """Unit embeddings of every run's explanations; each distinct text is embedded once."""
    from rich.progress import Progress

    from autointerp_report.embed import TextEncoder, default_model_path

    path = Path(model).expanduser() if model else default_model_path()
    if not path.is_dir():
        raise RunInputError(f"--model {path}: no such model folder")
    encoder = TextEncoder(path, max_length=128, threads=threads)
    # by length, so a batch pads little
    unique = sorted({t for r in runs for t in r.texts}, key=lambda t: (len(t), t))
    vectors: list[np.ndarray] = []
    step = max(batch_size, 512)
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("embedding explanations", total=len(unique))
        for i in range(0, len(unique), step):
            vectors.append(encoder.encode(unique[i : i + step], batch_size))
            bar.advance(task, len(unique[i : i + step]))
    table = np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
    row = {t: i for i, t in enumerate(unique)}
    return [table[[row[t] for t in r.texts]] for r in runs]


def _write_matches(
    path: Path,
    runs: list[RunExplanations],
    per_latent: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for (src, dst), (sim, idx) in sorted(per_latent.items()):
            a, b = runs[src], runs[dst]
            for i, (s, j) in enumerate(zip(sim.tolist(), idx.tolist(), strict=True)):
                row = {
                    "from": a.run.label,
                    "to": b.run.label,
                    "latent": a.latents[i].index,
                    "text": a.texts[i],
                    "match": b.latents[j].index,
                    "match_text": b.texts[j],
                    "similarity": s,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def similarity_runs(
    args: list[str],
    *,
    explainer: str | None = None,
    model: str | Path | None = None,
    batch_size: int = 64,
    threads: int | None = None,
    n_shown: int = 3,
    chunk_elements: int = 4_000_000,
    progress: bool = False,
    matches: Path | None = None,
) -> dict[str, Any]:
    """Best-match similarity between every ordered pair of runs, as JSON-ready data; with
    ``matches``, every latent's best match in every other run is written there as JSON lines
    (``from``, ``to``, ``latent``, ``text``, ``match``, ``match_text``, ``similarity``)."""
    if len(args) < 2:
        raise RunInputError("similarity: give at least two run directories")
    if batch_size < 1:
        raise RunInputError(f"--batch-size {batch_size}: expected a positive number")
    paths = [parse_run_arg(a)[0] for a in args]
    names = unique_names(list(args), paths)
    runs = [load_run_explanations(a, n, explainer) for a, n in zip(args, names, strict=True)]
    vectors = embed_runs(
        runs, model=model, batch_size=batch_size, threads=threads, progress=progress
    )
    k = len(runs)
    mean = np.full((k, k), np.nan)
    median = np.full((k, k), np.nan)
    found: dict[tuple[int, int], dict[str, Any]] = {}
    per_latent: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for i in range(k):
        for j in range(i, k):
            sim_a, idx_a, sim_b, idx_b = best_matches(
                vectors[i], vectors[j], chunk_elements=chunk_elements
            )
            for src, dst, sim, idx in ((i, j, sim_a, idx_a), (j, i, sim_b, idx_b)):
                mean[src, dst] = float(sim.mean())
                median[src, dst] = float(np.median(sim))
                if src != dst:
                    if matches is not None:
                        per_latent[src, dst] = (sim, idx)
                    found[src, dst] = {
                        "from": runs[src].run.label,
                        "to": runs[dst].run.label,
                        **summarize(sim),
                        **_pairs_shown(runs[src], runs[dst], sim, idx, n_shown),
                    }
    pairs = [found[key] for key in sorted(found)]
    if matches is not None:
        _write_matches(matches, runs, per_latent)
    return {
        "model": str(Path(model).expanduser() if model else "all-MiniLM-L6-v2"),
        "runs": [
            {
                "label": r.run.label,
                "name": r.run.name,
                "path": str(r.run.path),
                "run_id": r.run.run_id,
                "sources": list(r.run.sources),
                "layer": r.run.layer,
                "explainer": r.explainer,
                "n_explanations": len(r.texts),
            }
            for r in runs
        ],
        "histogram_edges": HIST_EDGES.tolist(),
        "pairs": pairs,
        "matrix": {
            "labels": [r.run.label for r in runs],
            "mean": mean.tolist(),
            "median": median.tolist(),
        },
    }


def render(result: dict[str, Any], console: Any) -> None:
    """Print the best-match distributions, examples of matches, and the run-by-run matrix."""
    from rich import box
    from rich.table import Table

    from autointerp_report.compare import sparkline

    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"best-match explanation similarity ({result['model']}); histogram over 0..1",
    )
    for col in ("latents of", "matched in", "n", "mean", "median", "q05", "q95", "histogram"):
        table.add_column(col, justify="left" if col in ("latents of", "matched in") else "right")
    for p in result["pairs"]:
        q = p["quantiles"]
        table.add_row(
            p["from"],
            p["to"],
            str(p["n"]),
            f"{p['mean']:.3f}",
            f"{p['median']:.3f}",
            f"{q['0.05']:.3f}",
            f"{q['0.95']:.3f}",
            sparkline(p["histogram"]),
        )
    console.print(table)
    first = result["pairs"][0]
    examples = Table(box=box.SIMPLE_HEAD, title=f"{first['from']} -> {first['to']}: examples")
    for col in ("", "latent", "explanation", "match", "its explanation", "cosine"):
        examples.add_column(col, overflow="fold", justify="right" if col == "cosine" else "left")
    for kind in ("best", "worst"):
        for item in first[kind]:
            examples.add_row(
                kind,
                str(item["latent"]),
                item["text"],
                str(item["match"]),
                item["match_text"],
                f"{item['similarity']:.3f}",
            )
    console.print(examples)
    labels = result["matrix"]["labels"]
    matrix = Table(
        box=box.SIMPLE_HEAD, title="mean best-match similarity (row's latents matched in column)"
    )
    matrix.add_column("")
    for label in labels:
        matrix.add_column(label, justify="right", overflow="fold")
    for label, row in zip(labels, result["matrix"]["mean"], strict=True):
        matrix.add_row(label, *(f"{v:.3f}" for v in row))
    console.print(matrix)
