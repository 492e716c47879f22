"""Run comparisons at scale: `compare` statistics, explanation embedding and chunked matching.

    python benchmarks/bench_compare.py [--latents 10000,100000] [--match 20000] [--embed 2000]
        [--export 5000]

Prints, per size, for continuous scores and for tied ones (accuracies): time to read two stores
and compute every statistic of ``compare_runs`` (split into bootstrap / permutation /
Mann-Whitney); the time and peak traced memory of ``best_matches`` on random unit vectors
(against the size of the dense matrix it never builds); MiniLM embedding throughput on short
explanation-like texts; the Neuronpedia export's speed and peak memory on a store of ``--export``
latents with examples and scores. One thread.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from autointerp_report.compare import compare_runs
from autointerp_report.similarity import best_matches
from autointerp_report.stats import bootstrap_ci, mann_whitney, permutation_test

from autointerp.store import Store
from autointerp.types import LatentRef, Score


def make_store(path: Path, source: str, values: np.ndarray) -> None:
    with Store.open(path) as store:
        run = store.start_run(path.name, {})
        for i, v in enumerate(values):
            store.put_score(run, Score(LatentRef(source, i), "detection", "default", float(v)))


def bench_compare(n: int, tmp: Path, tied: bool) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 1.0, n), rng.uniform(0.45, 0.95, n)
    if tied:  # accuracies over 20 examples: 21 distinct values
        a, b = np.round(a * 20) / 20, np.round(b * 20) / 20
    tag = f"{n}{'t' if tied else 'c'}"
    make_store(tmp / f"a{tag}", "sae/resid_post.6", a)
    make_store(tmp / f"b{tag}", "neurons/mlp_neurons.6", b)
    t0 = time.perf_counter()
    result = compare_runs([str(tmp / f"a{tag}"), str(tmp / f"b{tag}")])
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    bootstrap_ci(a)
    t_boot = time.perf_counter() - t0
    t0 = time.perf_counter()
    permutation_test(a, b, n_perm=2000)
    t_perm = time.perf_counter() - t0
    t0 = time.perf_counter()
    mann_whitney(a, b)
    t_mwu = time.perf_counter() - t0
    p = result["scorers"]["detection"]["runs"][1]["vs_first"]["p_permutation"]
    with Store.open(tmp / f"a{tag}") as store:  # what compare reads now vs the full records
        t0 = time.perf_counter()
        store.score_values(1)
        t_values = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.scores(1)
        t_records = time.perf_counter() - t0
    kind = "tied (21 values)" if tied else "continuous"
    print(
        f"compare {n:>7} + {n:<7} latents, {kind}: {total:6.2f} s in all | bootstrap CI "
        f"{t_boot:.3f} s, permutation test (2000) {t_perm:.2f} s, Mann-Whitney {t_mwu:.3f} s "
        f"| p={p:.4f} | one run's scores read: score_values {t_values:.2f} s, "
        f"scores (full records) {t_records:.2f} s"
    )


def bench_match(n: int) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(n, 384)).astype(np.float32)
    b = rng.normal(size=(n, 384)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    tracemalloc.start()
    t0 = time.perf_counter()
    best_matches(a, b)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    dense = n * n * 4
    print(
        f"best_matches {n} x {n} (384-d): {elapsed:.2f} s, peak traced memory "
        f"{peak / 2**20:.0f} MiB (dense matrix: {dense / 2**20:.0f} MiB)"
    )


def bench_embed(n: int) -> None:
    from autointerp_report.embed import TextEncoder, default_model_path

    words = [
        "tokens",
        "names",
        "dates",
        "numbers",
        "code",
        "python",
        "function",
        "class",
        "loop",
        "error",
        "list",
    ]
    rng = np.random.default_rng(2)
    texts = [" ".join(rng.choice(words, size=5)) + f" {i}" for i in range(n)]
    encoder = TextEncoder(default_model_path(), max_length=128, threads=1)
    encoder.encode(texts[:8])  # load the model outside the timing
    t0 = time.perf_counter()
    encoder.encode(texts, batch_size=64)
    elapsed = time.perf_counter() - t0
    print(f"MiniLM embedding, 1 thread: {n / elapsed:.0f} explanations/s ({n} in {elapsed:.1f} s)")


def bench_export(n: int, tmp: Path) -> None:
    from autointerp_report.export import export_run

    from autointerp.types import Example, Explanation, Prediction

    rng = np.random.default_rng(3)
    src = "sae/resid_post.6"
    run_dir = tmp / "export"
    t0 = time.perf_counter()
    with Store.open(run_dir) as store:
        run = store.start_run("export", {"model": {"model": "smollm2-135m"}})
        store.put_latents(
            run, src, [{"index": i, "frequency": 0.01, "max_activation": 3.0} for i in range(n)]
        )
        for i in range(n):
            ref = LatentRef(src, i)
            acts = rng.exponential(size=(30, 32)).round(3)
            store.put_examples(
                run,
                ref,
                [
                    Example(tuple(range(32)), tuple(f" t{k}" for k in range(32)), tuple(a), "top")
                    for a in acts.tolist()
                ],
            )
            store.put_explanation(run, Explanation(ref, f"concept number {i}", "default"))
            preds = tuple(Prediction(k, 1.0, float(k % 2)) for k in range(40))
            for scorer in ("detection", "fuzzing"):
                store.put_score(run, Score(ref, scorer, "default", 0.7, {"f1": 0.7}, preds))
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    (path,) = export_run(run_dir, "neuronpedia")
    elapsed = time.perf_counter() - t0
    tracemalloc.start()  # a second, traced pass for memory (tracing slows Python down)
    export_run(run_dir, "neuronpedia", tmp / "export-traced")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"export --format neuronpedia, {n} latents x 30 examples x 32 tokens, 2 scores: "
        f"{elapsed:.1f} s ({n / elapsed:.0f} latents/s), {path.stat().st_size / 2**20:.0f} MiB, "
        f"peak traced memory {peak / 2**20:.0f} MiB (store built in {built:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", default="10000,100000")
    parser.add_argument("--match", type=int, default=20000)
    parser.add_argument("--embed", type=int, default=2000)
    parser.add_argument("--export", type=int, default=5000, help="latents in the export store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.latents.split(",")):
            for tied in (False, True):
                bench_compare(n, Path(tmp), tied)
        if args.export:
            bench_export(args.export, Path(tmp))
    if args.match:
        bench_match(args.match)
    if args.embed:
        bench_embed(args.embed)


if __name__ == "__main__":
    main()
