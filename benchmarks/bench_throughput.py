"""Latents per hour of a whole run against a served LLM with a fixed latency, at the defaults.

    python benchmarks/bench_throughput.py [--latents 600] [--latency 1.0] [--mode parity economy]

What the throughput issue measured: ``autointerp run`` on SmolLM2-135M layer-6 MLP neurons (the
packaged model, offline), the default explainer, detection + fuzzing, an OpenAI-compatible server
(in its own process) that answers every request after ``--latency`` seconds, every other setting
at its default. The activations are cached once (not timed); then the explain and score stages of
``--latents`` latents are timed in this process, per mode. Prints latents/hour, LLM calls per
latent, calls/s, the server's peak of requests in flight and this process's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SERVER = """
import json, re, sys
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers

plain = scripted_answers()

def respond(request):
    fmt = request.body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or {}
    keys = list((schema.get("properties") or {}).keys())
    if keys:  # economy: one JSON object keyed by example number
        return json.dumps({k: 1 for k in keys})
    return plain(request)

server = ScriptedLLMServer(latency=float(sys.argv[1]), responder=respond).start()
print(server.openai_base_url, flush=True)
sys.stdin.read()
import time
cpu = time.process_time()
print(json.dumps({"requests": server.count(), "peak": server.peak_in_flight, "cpu_s": cpu}),
      flush=True)
"""


def config_text(run_dir: Path, base_url: str, n: int, mode: str) -> str:
    return f"""
name = "throughput-{mode}"
run_dir = "{run_dir.as_posix()}"
mode = "{mode}"

[model]
name = "transformers"
model = "smollm2-135m"

[feature_source]
name = "neurons"
layer = 6

[explainer]
name = "default"

[llm]
name = "openai-compatible"
base_url = "{base_url}"
model = "bench"

[[scorers]]
name = "detection"

[[scorers]]
name = "fuzzing"

[latents]
n = {n}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latents", type=int, default=600)
    p.add_argument("--latency", type=float, default=1.0)
    p.add_argument("--mode", nargs="+", default=["parity", "economy"])
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()

    from autointerp.config import load_config
    from autointerp.pipeline import plan_run, run
    from autointerp.plugins import PluginManager
    from autointerp.store import Store

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdin is not None and server.stdout is not None
    base_url = server.stdout.readline().strip()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    plugins = PluginManager()
    rows = []
    cache = work / "cache-shared"
    for mode in args.mode:
        run_dir = work / mode
        path = work / f"{mode}.toml"
        path.write_text(config_text(run_dir, base_url, args.latents, mode), encoding="utf-8")
        plan = plan_run(load_config(path), plugins)
        if cache.exists() and not (run_dir / "cache").exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "cache").symlink_to(cache, target_is_directory=True)
        run(plan, plugins, stages=("cache",), skip=frozenset({"report"}), progress=False)
        if not cache.exists():
            (run_dir / "cache").rename(cache)
            (run_dir / "cache").symlink_to(cache, target_is_directory=True)
        t0, cpu0 = time.perf_counter(), time.process_time()
        outcome = run(plan, plugins, skip=frozenset({"report"}), progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        with Store.open(run_dir) as store:
            usage = store.usage(outcome.run_id)
            n = len(store.explanations(outcome.run_id))
            scored = len(store.scores(outcome.run_id))
        rows.append((mode, n, scored, usage.calls, wall, cpu))
    server.stdin.close()
    stats = json.loads(server.stdout.readline())
    server.wait()
    print(
        f"server latency {args.latency:g} s; server peak in flight {stats['peak']}; "
        f"server CPU {stats['cpu_s']:.1f} s in all (its own process)"
    )
    print("| mode | latents | scores | LLM calls | calls/latent | wall s | calls/s | CPU s "
          "| latents/hour |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, n, scored, calls, wall, cpu in rows:
        print(
            f"| {mode} | {n} | {scored} | {calls} | {calls / max(n, 1):.1f} | {wall:.1f} | "
            f"{calls / wall:.0f} | {cpu:.1f} | {n / wall * 3600:,.0f} |"
        )


if __name__ == "__main__":
    main()
