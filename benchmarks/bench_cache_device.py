"""Caching throughput on a device: the cache stage vs the model's bare forward, same batches.

    python benchmarks/bench_cache_device.py [--device auto] [--dtype auto] [--batches 4]
        [--batch 8] [--seq 64] [--width 16384] [--k 32] [--repeats 2] [--threads N] [--json]

Setup: the packaged SmolLM2-135M (``smollm2-135m``, transformers adapter, hooks backend) loaded
with ``--device`` and ``--dtype`` (both "auto" by default: the first CUDA device in bfloat16 when
torch sees one, else the CPU in float32), a random-weight TopK SAE (``--width`` latents, ``--k``)
on ``resid_post`` of the middle layer loaded through the ``sae`` plugin (its device left at
"auto": it follows the model), and the first ``--batches`` ``[--batch, --seq]`` batches of
``--corpus`` (default ``builtin:python-docs``), held on the CPU as the corpus reader yields them.

Figures, medians of ``--repeats`` interleaved runs:

- bare: ``model(input_ids)`` (logits included) on every batch, ids moved to the device per batch,
  synchronised at the end: what running the model costs at all;
- cache: ``autointerp.cache.build_cache`` on the same batches (forward stopped after the site,
  SAE encode on the device, one device-to-host copy per batch, sorting and writing shards);
- ratio cache/bare in tokens/s (above 1: caching is faster than the bare forward, as it stops
  at the site's layer).

Keep it short on a CPU (a few batches); on a GPU raise ``--batches`` and ``--batch`` until a run
takes seconds, so the one-time costs (CUDA context, kernel selection) are amortised by the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def device_words(device) -> str:
    """What the device is, for the figures' header."""
    import platform

    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return (
        f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, {os.cpu_count()} cores (torch {torch.__version__})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    parser.add_argument("--corpus", default="builtin:python-docs")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--width", type=int, default=16384, help="SAE latents")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()

    import torch
    from autointerp_transformers.adapter import TransformersAdapter
    from autointerp_transformers.plugin import TransformersConfig
    from bench_cache import corpus_batches, load_source, write_sae

    from autointerp.cache import build_cache

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TransformersConfig(model="smollm2-135m", device=args.device, dtype=args.dtype)
    adapter = TransformersAdapter.from_config(config)
    device = adapter.device
    site = f"resid_post.{adapter.n_layers // 2}"
    work = Path(tempfile.mkdtemp(prefix="autointerp-bench-device-"))
    try:
        write_sae(work / "sae.safetensors", adapter.d_model, args.width)
        source = load_source(work / "sae.safetensors", site, args.k)
        n_tokens = args.batches * args.batch * args.seq
        batches = corpus_batches(adapter, args.corpus, n_tokens, args.batch, args.seq)
        model = adapter.model

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        def bare() -> None:
            with torch.no_grad():
                for ids in batches:
                    model(input_ids=ids.to(device), use_cache=False)
            sync()

        def cache() -> None:
            out = work / "cache"
            shutil.rmtree(out, ignore_errors=True)
            build_cache(adapter, source, batches, out, {"bench": "device"}, progress=False)
            sync()

        print(
            f"# model=smollm2-135m on {adapter.placement}: {device_words(device)}\n"
            f"# site={site} sae=topk width={args.width} k={args.k} (sae on "
            f"{source.device}) corpus={args.corpus} {args.batches} batches of "
            f"{args.batch}x{args.seq} = {n_tokens} tokens, repeats={args.repeats}, "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        with torch.no_grad():  # warm-up: weights paged in, kernels chosen, SAE placed
            model(input_ids=batches[0].to(device), use_cache=False)
        build_cache(adapter, source, batches[:1], work / "warm", {"bench": "warm"}, progress=False)
        sync()
        runs: dict[str, list[float]] = {"bare": [], "cache": []}
        for _ in range(args.repeats):
            for name, fn in (("bare", bare), ("cache", cache)):
                start = time.perf_counter()
                fn()
                runs[name].append(time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    rates = {k: n_tokens / v for k, v in med.items()}
    ratio = rates["cache"] / rates["bare"]
    print(f"bare forward  {med['bare']:7.2f} s  {rates['bare']:12,.0f} tokens/s")
    print(f"cache stage   {med['cache']:7.2f} s  {rates['cache']:12,.0f} tokens/s")
    print(f"ratio cache/bare  {ratio:.2f}")
    if args.json:
        figures = {
            "device": str(device), "dtype": str(adapter.dtype), "words": device_words(device),
            "tokens": n_tokens, "batch": [args.batch, args.seq], "runs": runs,
            "bare_tokens_per_s": rates["bare"], "cache_tokens_per_s": rates["cache"],
            "ratio": ratio,
        }  # fmt: skip
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
