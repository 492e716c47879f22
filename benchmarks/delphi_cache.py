"""eai-delphi's caching on given tokens, model and SAE weights; run by bench_cache.py with the
python of a separate venv that has eai-delphi (see bench_cache.py's docstring for that venv).

    /tmp/delphi-venv/bin/python benchmarks/delphi_cache.py --model DIR --sae SAE.safetensors \\
        --tokens TOKENS.safetensors --layer 15 --k 32 --batch 8 --out DIR

Delphi's ``LatentCache`` takes a dense encode function per hook point; ours is a small module over
the same plain-layout weights computing the same TopK encode (``relu(topk(x @ W_enc + b_enc))``),
scattered into the dense ``[batch, seq, latents]`` tensor delphi expects. Timed: ``run`` plus
``save_splits`` (its on-disk format), interleaved with a bare forward of the same model on the same
batches; medians. Prints one JSON line. Uses only delphi's public classes; no delphi code is copied.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

from rss import peak_rss_kib, reset_peak_rss  # beside this file

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--model", "--sae", "--tokens", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--layer", type=int, required=True)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--splits", type=int, default=5, help="delphi's default n_splits")
    parser.add_argument(
        "--times",
        type=int,
        default=0,
        help="memory mode: cache the tokens this many times over, "
        "once, and print the peak RSS of caching alone (no timing)",
    )
    args = parser.parse_args()

    import logging

    import torch
    from delphi.latents import LatentCache
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    weights = load_file(args.sae)
    tokens = load_file(args.tokens)["tokens"]
    if args.times:
        tokens = tokens.repeat(args.times, 1)
    hookpoint = f"model.layers.{args.layer}"

    class TopKEncode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.W_enc, self.b_enc = weights["W_enc"], weights["b_enc"]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values, index = (x @ self.W_enc + self.b_enc).topk(args.k, dim=-1)
            dense = x.new_zeros(*x.shape[:-1], self.W_enc.shape[1])
            return dense.scatter_(-1, index, values.relu())

    encode = TopKEncode()
    batches = tokens.split(args.batch)
    out = Path(args.out)

    def bare() -> None:
        with torch.no_grad():
            for ids in batches:
                model(input_ids=ids, use_cache=False)

    result: dict[str, float] = {}

    def cache() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        lc = LatentCache(model, {hookpoint: encode}, batch_size=args.batch)
        lc.run(tokens.numel(), tokens)
        lc.save_splits(n_splits=args.splits, save_dir=out)
        result["activations"] = len(lc.cache.latent_activations[hookpoint])

    if args.times:
        with torch.no_grad():  # weights paged in before the reset
            model(input_ids=batches[0], use_cache=False)
        reset, start = reset_peak_rss()
        cache()
        peak = peak_rss_kib()
        print(
            json.dumps({"start_mb": start / 1024, "caching_peak_mb": peak / 1024, "reset": reset})
        )
        shutil.rmtree(out, ignore_errors=True)
        return
    with torch.no_grad():
        model(input_ids=batches[0], use_cache=False)
    runs: dict[str, list[float]] = {"bare": [], "cache": []}
    for _ in range(args.repeats):
        for name, fn in (("bare", bare), ("cache", cache)):
            start = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - start)
    files = list(out.rglob("*.safetensors"))
    result.update(
        bare=statistics.median(runs["bare"]),
        cache=statistics.median(runs["cache"]),
        bytes=sum(p.stat().st_size for p in files),
        files=len(files),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        raw=runs,  # type: ignore[dict-item]
    )
    print(json.dumps(result))
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
