"""Readers of a large run (report, export, status): peak RSS and time as the run grows.

    python benchmarks/bench_report_scale.py --run RUN_DIR --workdir W [--times 1 10]

Takes a finished run (for example bench_scale.py's 10k-latent run) and, for each factor ``k`` of
``--times``, writes a copy of its store holding ``k`` times its latents: every latent's row,
example set, explanations, scores and failures repeated ``k`` times under new indices (one
``INSERT ... SELECT`` per table and copy, so a 100k-latent run of real content takes a minute, no
LLM). Then ``autointerp status``, ``export`` and ``report`` run on each copy in fresh processes,
their wall time, CPU time and peak RSS (``wait4``: the largest process of the command's tree,
report workers included) printed as a table; the ratio of the largest size's peak to the
smallest's is the figure (flat: ~1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

#: tables keyed by (run_id, source, idx) whose rows are a latent's
TABLES = ("latents", "example_sets", "examples", "explanations", "scores", "failures")


def replicate(run_dir: Path, out: Path, times: int) -> int:
    """Copy ``run_dir``'s store to ``out`` with its latents repeated ``times`` times; returns
    the number of latents."""
    out.mkdir(parents=True, exist_ok=True)
    db = out / "results.sqlite"
    for name in ("config.toml",):  # what the commands read beside the store
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, out / name)
    if not db.exists():
        src = sqlite3.connect(run_dir / "results.sqlite")
        dst = sqlite3.connect(db)
        src.backup(dst)  # a consistent copy even with a -wal beside the source
        src.close()
        run_id, stride = dst.execute("SELECT run_id, MAX(idx) + 1 FROM latents").fetchone()
        for k in range(1, times):
            for table in TABLES:
                cols = [r[1] for r in dst.execute(f"PRAGMA table_info({table})")]
                picked = ", ".join(f"idx + {k * stride}" if c == "idx" else c for c in cols)
                dst.execute(
                    f"INSERT INTO {table} ({', '.join(cols)}) SELECT {picked} FROM {table} "
                    f"WHERE run_id = ? AND idx < ?",
                    (run_id, stride),
                )
            dst.commit()
        dst.close()
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute("SELECT COUNT(*) FROM latents").fetchone()
    return int(n)


def timed(argv: list[str], log: Path) -> tuple[float, float, int]:
    """Wall s, CPU s and peak RSS (MiB) of ``autointerp ARGV`` in a fresh process."""
    t0 = time.perf_counter()
    with log.open("ab") as f:
        child = subprocess.Popen([sys.executable, "-m", "autointerp", *argv],
                                 stdout=f, stderr=subprocess.STDOUT)  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"autointerp {' '.join(argv)} failed: see {log}")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a finished run directory")
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--times", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--commands", nargs="+", default=["status", "export", "report"])
    args = ap.parse_args()
    rows = []
    for k in args.times:
        run = args.workdir / f"x{k}"
        t0 = time.perf_counter()
        n = replicate(args.run, run, k)
        print(f"{n} latents in {run} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for command in args.commands:
            target = [str(run)] if command != "export" else [str(run), "--out", str(run / "x")]
            if command == "export":
                shutil.rmtree(run / "x", ignore_errors=True)
            wall, cpu, peak = timed([command, *target], args.workdir / f"x{k}.log")
            rows.append((n, command, wall, cpu, peak))
            print(f"  {command}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak {peak} MiB", flush=True)
    print("\n| latents | command | wall s | CPU s | CPU ms / latent | peak MiB |")
    print("|---:|---|---:|---:|---:|---:|")
    for n, command, wall, cpu, peak in rows:
        print(f"| {n} | {command} | {wall:.1f} | {cpu:.1f} | {1000 * cpu / n:.2f} | {peak} |")
    for command in args.commands:
        peaks = [(n, p) for n, c, _, _, p in rows if c == command]
        if len(peaks) > 1:
            (n0, p0), (n1, p1) = peaks[0], peaks[-1]
            print(f"{command}: peak RSS {p0} -> {p1} MiB from {n0} to {n1} latents "
                  f"({p1 / p0:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
