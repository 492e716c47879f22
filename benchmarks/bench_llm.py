"""Explanation throughput against a local OpenAI-compatible server with a fixed latency.

    python benchmarks/bench_llm.py [--latency 1.0] [--n 2048] [--concurrency 256] [--serial 8]

The scripted server runs in a separate process (its own GIL) and answers every request after
``--latency`` seconds. The default explainer explains ``--n`` distinct latents through the
``openai`` client at its default concurrency, then ``--serial`` latents one request at a time; then
the first run is repeated against the same results store, which must make zero requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autointerp_explainers.default import DefaultExplainer
from autointerp_explainers.plugin import ExplainerConfig
from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAIConfig

from autointerp.llm import LLMClient, Scheduler
from autointerp.store import Store
from autointerp.types import Example, LatentRef

SERVER = """
import sys, time, json
from autointerp.testing.llm_server import ScriptedLLMServer
server = ScriptedLLMServer(latency=float(sys.argv[1])).start()
print(server.openai_base_url, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
print(json.dumps({"requests": server.count(), "peak": server.peak_in_flight}), flush=True)
"""


def examples(i: int) -> list[Example]:
    words = f"latent {i} fires on the word alpha{i} in this short text".split()
    toks = tuple(" " + w for w in words)
    acts = tuple(5.0 if w.startswith("alpha") else 0.0 for w in words)
    return [Example(tuple(range(len(toks))), toks, acts)] * 3


async def explain_all(
    base_url: str, store: Store, latents: range, concurrency: int | None
) -> tuple[float, int]:
    options = {} if concurrency is None else {"max_concurrency": concurrency}
    backend = OpenAIClient(OpenAIConfig(base_url=base_url, model="bench", **options))
    client = LLMClient(backend, store=store, scheduler=Scheduler())
    explainer = DefaultExplainer(ExplainerConfig())
    start = time.perf_counter()
    results = await asyncio.gather(
        *(explainer.explain(LatentRef("bench", i), examples(i), client) for i in latents),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - start
    await client.aclose()
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeError(f"{len(failures)} explanations failed, first: {failures[0]!r}")
    return elapsed, client.stats.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=None, help="default: the client's")
    parser.add_argument("--serial", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-not-a-real-key")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    base_url = server.stdout.readline().strip()
    default_concurrency = OpenAIConfig().max_concurrency
    with tempfile.TemporaryDirectory() as tmp:
        with Store.open(Path(tmp) / "a") as store:
            t_conc, req_conc = asyncio.run(
                explain_all(base_url, store, range(args.n), args.concurrency)
            )
            t_rerun, req_rerun = asyncio.run(
                explain_all(base_url, store, range(args.n), args.concurrency)
            )
        with Store.open(Path(tmp) / "b") as store:
            t_ser, req_ser = asyncio.run(explain_all(base_url, store, range(args.serial), 1))
    server.stdin.close()
    stats = json.loads(server.stdout.readline())
    server.wait()
    per_hour_conc = args.n / t_conc * 3600
    per_hour_ser = args.serial / t_ser * 3600
    print(
        f"server latency {args.latency:g}s; client concurrency "
        f"{args.concurrency or default_concurrency}; server peak in flight {stats['peak']}"
    )
    print("| run | explanations | requests | wall s | explanations/hour |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| one request at a time | {args.serial} | {req_ser} | {t_ser:.2f} | {per_hour_ser:,.0f} |"
    )
    print(f"| default concurrency | {args.n} | {req_conc} | {t_conc:.2f} | {per_hour_conc:,.0f} |")
    print(
        f"| rerun, same store | {args.n} | {req_rerun} | {t_rerun:.2f} | "
        f"{args.n / t_rerun * 3600:,.0f} |"
    )
    print(f"speed-up: {per_hour_conc / per_hour_ser:.0f}x; rerun requests: {req_rerun}")


if __name__ == "__main__":
    main()
