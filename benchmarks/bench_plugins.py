"""Wall time of `autointerp plugins` (all installed plugins loaded), and what it imports.

    python benchmarks/bench_plugins.py [--runs 10]

Prints the median and best wall time of the command as a user runs it (a fresh interpreter each
time), the same for bare `python -c pass` as a floor, and any heavy module the listing imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "transformers", "transformer_lens", "nnsight", "numpy", "openai", "anthropic")


def wall(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "autointerp", "plugins", "--json"]
    rows = json.loads(subprocess.run(cli, check=True, capture_output=True, text=True).stdout)
    listing = wall(cli, args.runs)
    floor = wall([sys.executable, "-c", "pass"], args.runs)
    profile = subprocess.run(
        cli, capture_output=True, text=True, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    ).stderr
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in profile.splitlines()
        if line.startswith("import time:")
    }
    heavy = sorted(imported & set(HEAVY))
    print(f"plugins listed: {len({r['plugin'] for r in rows})}, components: {len(rows)}")
    print(
        f"autointerp plugins --json: median {statistics.median(listing):.3f} s, "
        f"best {min(listing):.3f} s over {args.runs} runs"
    )
    print(f"python -c pass (floor):    median {statistics.median(floor):.3f} s")
    print(f"heavy modules imported: {', '.join(heavy) if heavy else 'none'}")


if __name__ == "__main__":
    main()
