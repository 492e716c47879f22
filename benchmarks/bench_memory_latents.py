"""Peak RSS of a whole run against the number of latents: memory must not grow with it.

    python benchmarks/bench_memory_latents.py [--latents 10000 100000] [--mode economy]

Setup: a random tiny GPT-2 and a random TopK SAE of ``--width`` latents (``--k`` per token), cached
once on ``--tokens`` tokens of the built-in corpus (every latent fires); an OpenAI-compatible
server in its own process answering at once. Then ``autointerp run`` (default explainer,
detection + fuzzing, every other setting at its default for ``--mode``) runs in a fresh process
for each number of latents, on that cache; its peak RSS (``wait4``) and wall time are printed,
and the ratio of the largest run's peak to the smallest's.
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
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SERVER = """
import json, sys
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers

plain = scripted_answers()
seen = 0

def respond(request):
    global seen
    with server._lock:  # the server's own memory stays small: forget what was answered
        if len(server.requests) > 1000:
            seen += len(server.requests)
            server.requests.clear()
    fmt = request.body.get("response_format") or {}
    keys = list((((fmt.get("json_schema") or {}).get("schema") or {}).get("properties") or {}))
    return json.dumps({k: 1 for k in keys}) if keys else plain(request)

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0  # fixed: a resumed run finds its endpoint
server = ScriptedLLMServer(responder=respond, port=port).start()
print(server.openai_base_url, flush=True)
sys.stdin.read()
print(json.dumps({"requests": seen + server.count()}), flush=True)
"""


def write_config(path: Path, run_dir: Path, root: Path, url: str, n: int, args: Any) -> Path:
    path.write_text(
        f"""
name = "mem-{n}"
run_dir = "{run_dir.as_posix()}"
mode = "{args.mode}"
threads = 1

[model]
name = "transformers"
model = "{(root / "model").as_posix()}"

[feature_source]
name = "sae"
path = "{(root / "sae.safetensors").as_posix()}"
site = "resid_post.1"
activation = "topk"
k = {args.k}

[explainer]
name = "default"

[llm]
name = "openai-compatible"
base_url = "{url}"

[[scorers]]
name = "detection"

[[scorers]]
name = "fuzzing"

[corpus]
ctx_len = 64
n_tokens = {args.tokens}

[latents]
n = {n}
min_activations = 1
""",
        encoding="utf-8",
    )
    return path


def run_child(config: Path, log: Path) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak RSS in MiB) of ``autointerp run config``."""
    t0 = time.perf_counter()
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "autointerp", "run", str(config), "--no-report"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, time.perf_counter() - t0, usage.ru_maxrss // 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latents", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--mode", default="economy")
    p.add_argument("--width", type=int, default=131_072)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--tokens", type=int, default=131_072)
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()

    import torch
    from safetensors.torch import save_file

    from autointerp.testing.adapters import save_tiny, tiny_model

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-memory-"))
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "model").exists():
        save_tiny(tiny_model("gpt2"), root / "model")
        g = torch.Generator().manual_seed(0)
        d = 32  # the tiny model's width
        save_file(
            {"W_enc": torch.randn(d, args.width, generator=g),
             "b_enc": torch.zeros(args.width),
             "W_dec": torch.randn(args.width, d, generator=g),
             "b_dec": torch.zeros(d)},
            str(root / "sae.safetensors"),
        )  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdin is not None and server.stdout is not None
    url = server.stdout.readline().strip()
    shared = root / "cache-run"
    if not (shared / "cache").exists():  # cache once (not measured)
        rc, wall, _ = run_child(write_config(root / "cache.toml", shared, root, url, 1, args),
                                root / "cache.log")  # fmt: skip
        if rc:
            raise SystemExit(f"caching failed: see {root / 'cache.log'}")
        print(f"cached {args.tokens} tokens through {args.width} latents in {wall:.0f} s")
    rows = []
    for n in args.latents:
        run_dir = root / f"run-{n}"
        run_dir.mkdir(exist_ok=True)
        if not (run_dir / "cache").exists():
            (run_dir / "cache").symlink_to(shared / "cache", target_is_directory=True)
        config = write_config(root / f"run-{n}.toml", run_dir, root, url, n, args)
        rc, wall, peak = run_child(config, root / f"run-{n}.log")
        if rc:
            raise SystemExit(f"the run of {n} latents failed (exit {rc}): see {root}/run-{n}.log")
        rows.append((n, wall, peak))
        print(f"  {n:>7} latents: peak RSS {peak:6d} MiB, {wall:7.1f} s", flush=True)
    server.stdin.close()
    requests = json.loads(server.stdout.readline())["requests"]
    server.wait()
    print(f"mode {args.mode}; {requests} LLM requests in all")
    print("| latents | peak RSS MiB | wall s | latents/s |")
    print("|---:|---:|---:|---:|")
    for n, wall, peak in rows:
        print(f"| {n:,} | {peak} | {wall:.0f} | {n / wall:.0f} |")
    small, large = min(rows), max(rows)
    print(f"peak RSS {large[0]:,} / {small[0]:,} latents: {large[2] / small[2]:.3f}")


if __name__ == "__main__":
    main()
