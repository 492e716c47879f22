"""Run comparisons at scale: `compare` statistics, explanation embedding and chunked matching.

    python benchmarks/bench_compare.py [--latents 10000,100000] [--match 20000] [--embed 2000]

Prints, per size, for continuous scores and for tied ones (accuracies): time to read two stores
and compute every statistic of ``compare_runs`` (split into bootstrap / permutation /
Mann-Whitney), the time and peak traced memory of
``best_matches`` on random unit vectors (against the size of the dense matrix it never builds),
and MiniLM embedding throughput on short explanation-like texts. One torch / BLAS thread.
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

from autointerp.report.compare import compare_runs
from autointerp.report.similarity import best_matches
from autointerp.report.stats import bootstrap_ci, mann_whitney, permutation_test
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
    kind = "tied (21 values)" if tied else "continuous"
    print(
        f"compare {n:>7} + {n:<7} latents, {kind}: {total:6.2f} s in all | bootstrap CI "
        f"{t_boot:.3f} s, permutation test (2000) {t_perm:.2f} s, Mann-Whitney {t_mwu:.3f} s "
        f"| p={p:.4f}"
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
    from autointerp.embed import TextEncoder, default_model_path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", default="10000,100000")
    parser.add_argument("--match", type=int, default=20000)
    parser.add_argument("--embed", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.latents.split(",")):
            for tied in (False, True):
                bench_compare(n, Path(tmp), tied)
    bench_match(args.match)
    bench_embed(args.embed)


if __name__ == "__main__":
    main()
