"""``autointerp status`` on a run of N latents: kept counts (schema 8) against counting records.

Builds a synthetic store once per size in WORKDIR (N latents, one explanation and two scores
per latent, three ledger rows per latent: what an economy run of N latents holds, without the
prompts), then times ``autointerp status RUN`` in a fresh process (wall, CPU, peak RSS), and
in process the two questions it asks (progress counts, LLM usage per component) read from the
kept counts and by counting the records (what a store before schema 8, opened read-only, does).

    python benchmarks/bench_status.py --workdir /tmp/bench-status --latents 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from autointerp.store import STORE_FILENAME, Store

SRC = "hashed/resid_post.1"
CHUNK = 50_000


def build(run_dir: Path, n: int) -> None:
    """A store of ``n`` latents, written through the store's own connection (its triggers)."""
    if (run_dir / STORE_FILENAME).exists():
        return
    with Store.open(run_dir) as store:
        run = store.start_run(f"status-{n}", {})
        conn = store._conn
        for lo in range(0, n, CHUNK):
            idx = range(lo, min(n, lo + CHUNK))
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO latents VALUES (?, ?, ?, 0.01, 1.0, '{}')",
                ((run, SRC, i) for i in idx),
            )
            conn.executemany(
                "INSERT INTO explanations (run_id, source, idx, explainer, text, meta, "
                "created_at) VALUES (?, ?, ?, 'default', 'words about code', '{}', 0)",
                ((run, SRC, i) for i in idx),
            )
            for scorer in ("detection", "fuzzing"):
                conn.executemany(
                    "INSERT INTO scores (run_id, source, idx, explainer, scorer, value, metrics, "
                    "predictions, n_failures, meta, created_at) "
                    "VALUES (?, ?, ?, 'default', ?, 0.5, '{}', '[]', 0, '{}', 0)",
                    ((run, SRC, i, scorer) for i in idx),
                )
            calls = [(f"{i}-{k}", k) for i in idx for k in range(3)]
            conn.executemany(
                "INSERT INTO llm_calls VALUES (?, 'c', 'm', '{}', '{}', 400, 0, 40, 0.0, 0.1, 0)",
                ((h,) for h, _ in calls),
            )
            payers = (
                ("explain", "default"), ("score", "detection/default"), ("score", "fuzzing/default")
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO llm_ledger (request_hash, run_id, cached, prompt_tokens, "
                "cached_tokens, completion_tokens, cost_usd, latency_s, at, stage, component) "
                "VALUES (?, ?, 0, 400, 0, 40, 0.0, 0.1, 0, ?, ?)",
                ((h, run, *payers[k]) for h, k in calls),
            )
            conn.execute("COMMIT")
        store.finish_run(run)


def in_process(run_dir: Path) -> dict[str, float]:
    out = {}
    with Store(run_dir / STORE_FILENAME, readonly=True) as store:
        for counted in (True, False):
            store._counted = counted
            t = time.perf_counter()
            store.progress_counts(1), store.usage_by_component(1)
            out["kept" if counted else "counting"] = time.perf_counter() - t
    return out


def cli(run_dir: Path) -> tuple[float, float, int]:
    """``autointerp status RUN`` in a fresh process: wall s, CPU s, peak RSS MiB."""
    t = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "autointerp", "status", str(run_dir)], stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
    assert status == 0, f"status exited {status}"
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--latents", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print("| latents | build s | counts+usage kept ms | by counting ms | status wall s | CPU s "
          "| peak MiB |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.latents:
        run_dir = args.workdir / f"run-{n}"
        t = time.perf_counter()
        build(run_dir, n)
        built = time.perf_counter() - t
        reads = [in_process(run_dir) for _ in range(args.repeats)]
        kept = min(r["kept"] for r in reads) * 1000
        counting = min(r["counting"] for r in reads) * 1000
        runs = sorted(cli(run_dir) for _ in range(args.repeats))
        wall, cpu, peak = runs[len(runs) // 2]
        print(f"| {n:,} | {built:.1f} | {kept:.1f} | {counting:.0f} | {wall:.2f} | {cpu:.2f} "
              f"| {peak} |")  # fmt: skip


if __name__ == "__main__":
    main()
