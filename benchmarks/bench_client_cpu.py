"""Client CPU per LLM call against an instant OpenAI-compatible server, at default settings.

    python benchmarks/bench_client_cpu.py [--n 5000] [--concurrency N] [--transport sdk]
                                          [--profile out.prof]

The scripted server runs in a separate process and answers at once, so this process's CPU time
(``time.process_time``) is what the client spends per call: building and sending the request,
parsing the answer, the response cache and the ledger in a real results store (a run bound as the
pipeline binds it). ``--n`` distinct chat requests go through :class:`autointerp.llm.LLMClient`
around the ``openai-compatible`` backend at its default concurrency; then the same requests again
against the same store, which must all be cache hits (zero requests to the server).
``--transport sdk`` sends them through the ``openai`` SDK instead of the lean HTTP client.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autointerp_openai.client import compatible
from autointerp_openai.plugin import OpenAICompatibleConfig

from autointerp.llm import LLMClient, Message, SamplingParams, wrap
from autointerp.store import RunStore, Store

SERVER = """
import sys, json
from autointerp.testing.llm_server import ScriptedLLMServer
server = ScriptedLLMServer().start()
print(server.openai_base_url, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
print(json.dumps({"requests": server.count(), "peak": server.peak_in_flight}), flush=True)
"""

SYSTEM = (
    "You are a meticulous AI researcher explaining the latents of a sparse autoencoder. "
    "Given text examples where a latent fires, answer with one short explanation."
)


def request(i: int) -> list[Message]:
    """A distinct explanation-sized request (a system prompt and ~20 short examples)."""
    examples = "\n".join(
        f"Example {j}: the quick brown fox <<jumps{i}>> over the lazy dog {j}" for j in range(20)
    )
    return [Message("system", SYSTEM, cache=True), Message("user", examples)]


async def run_calls(
    backend_config: OpenAICompatibleConfig, store: RunStore, n: int
) -> tuple[LLMClient, float, float, int]:
    """Send ``n`` requests at once (the scheduler bounds them); (client, cpu s, wall s, store
    commits)."""
    client = wrap(compatible(backend_config), store=store)
    params = SamplingParams(max_tokens=64)
    cpu, wall = time.process_time(), time.perf_counter()
    results = await asyncio.gather(
        *(client.chat(request(i), params) for i in range(n)), return_exceptions=True
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    # older clients (before group commits) had one commit per call
    group = getattr(client, "group_commit", None)
    commits = group().commits if group else n
    await client.aclose()
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeError(f"{len(failures)} calls failed, first: {failures[0]!r}")
    return client, cpu, wall, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=None, help="default: the client's")
    parser.add_argument("--transport", choices=["auto", "direct", "sdk"], default=None)
    parser.add_argument(
        "--profile", type=Path, default=None, help="cProfile each pass: PROFILE.paid, .rerun"
    )
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None and server.stdin is not None
    base_url = server.stdout.readline().strip()
    options: dict[str, object] = {}
    if args.concurrency is not None:
        options["max_concurrency"] = args.concurrency
    if args.transport is not None:
        options["transport"] = args.transport
    config = OpenAICompatibleConfig(base_url=base_url, model="bench", **options)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp)) as store:
        for label, suffix in (("paid calls", "paid"), ("rerun, same store (cache hits)", "rerun")):
            run = store.bind(store.start_run("bench", {}))
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            client, cpu, wall, commits = asyncio.run(run_calls(config, run, args.n))
            if profiler:
                profiler.disable()
                profiler.dump_stats(f"{args.profile}.{suffix}")
            s = client.stats
            rows.append((label, s.requests, s.cache_hits, commits, cpu, wall))
        usage = store.usage()
    server.stdin.close()
    served = json.loads(server.stdout.readline())
    server.wait()
    print(
        f"openai-compatible, transport {getattr(config, 'transport', 'sdk')}, max_concurrency "
        f"{config.max_concurrency}, {args.n} distinct requests; server peak in flight "
        f"{served['peak']}, requests served {served['requests']}"
    )
    print(
        "| pass | requests | cache hits | store commits | client CPU ms/call | wall s | calls/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, requests, hits, commits, cpu, wall in rows:
        print(
            f"| {label} | {requests} | {hits} | {commits} | {cpu / args.n * 1000:.2f} | "
            f"{wall:.2f} | {args.n / wall:,.0f} |"
        )
    print(f"ledger: {usage.calls} paid, {usage.cache_hits} cache hits")


if __name__ == "__main__":
    main()
