"""Bytes per latent of a run's store, per table, and the CPU of storing its LLM calls compressed.

    python benchmarks/bench_store_calls.py RUN_DIR [--calls 2000] [--levels 1 6]

Per table: ``SUM(pgsize)`` of SQLite's ``dbstat`` over the run's ``results.sqlite`` (read-only),
per latent of the store. Then, on up to ``--calls`` of its stored calls (either form), per call:
the JSON text a store of schema < 9 wrote (:func:`autointerp.fastjson.dumps`), and
:func:`autointerp.store.pack_json` at each zlib ``--levels``, with the bytes they take and
the CPU (``time.process_time``, best of 7) to write and to read them back.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autointerp import fastjson
from autointerp import store as store_mod
from autointerp.store import STORE_FILENAME, unpack_json


def best_us(f: Callable[[], Any], n: int, repeats: int = 7) -> float:
    """CPU microseconds per item of ``f()`` over ``n`` items, best of ``repeats``."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        f()
        times.append(time.process_time() - t)
    return min(times) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 6])
    args = parser.parse_args()
    path = args.run_dir / STORE_FILENAME
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    latents = conn.execute("SELECT COUNT(*) FROM latents").fetchone()[0] or 1
    sizes = conn.execute(
        "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
    ).fetchall()
    total = sum(size for _, size in sizes)
    print(f"{path}: {total:,} B in {latents:,} latents: {total / latents / 1024:.1f} KiB/latent")
    for name, size in sizes[:6]:
        print(f"  {name}: {size:,} B, {size / latents / 1024:.1f} KiB/latent")
    forms = conn.execute(
        "SELECT typeof(request), COUNT(*), SUM(length(request)), SUM(length(response)) "
        "FROM llm_calls GROUP BY 1"
    ).fetchall()
    for form, n, q, a in forms:
        print(f"  llm_calls stored as {form}: {n:,} calls, {(q + a) / n:,.0f} B/call")
    rows = conn.execute(
        "SELECT request, response FROM llm_calls ORDER BY request_hash LIMIT ?", (args.calls,)
    ).fetchall()
    conn.close()
    calls = [(unpack_json(q), unpack_json(a)) for q, a in rows]
    n = len(calls)
    if not n:
        return
    texts = [(fastjson.dumps(q), fastjson.dumps(a)) for q, a in calls]
    size = sum(len(q.encode()) + len(a.encode()) for q, a in texts) / n
    write = best_us(lambda: [(fastjson.dumps(q), fastjson.dumps(a)) for q, a in calls], n)
    read = best_us(lambda: [(unpack_json(q), unpack_json(a)) for q, a in texts], n)
    print(f"{n:,} calls | B/call | write CPU us/call | read CPU us/call")
    print(f"JSON text (schema < 9) | {size:,.0f} | {write:.0f} | {read:.0f}")
    pack = store_mod.pack_json
    for level in args.levels:
        store_mod.JSON_LEVEL = level
        packed = [(pack(q), pack(a)) for q, a in calls]
        size = sum(len(q) + len(a) for q, a in packed) / n
        write = best_us(lambda: [(pack(q), pack(a)) for q, a in calls], n)
        read = best_us(lambda p=packed: [(unpack_json(q), unpack_json(a)) for q, a in p], n)
        print(f"zlib level {level} | {size:,.0f} | {write:.0f} | {read:.0f}")


if __name__ == "__main__":
    main()
