"""Overhead of capturing one site through the adapter vs a bare forward pass of the same model.

    python benchmarks/bench_adapters.py [--model smollm2-135m] [--batch 8] [--seq 64] [--runs 5]
        [--backend hooks|nnsight|transformer_lens] [--no-logits]

Both sides run the same HF model on the same batch under ``torch.no_grad``; the bare side calls
the model directly, the adapter side calls ``adapter.forward(ids, capture=[site])``. Runs are
interleaved and the median of each is compared (one invocation prints one ratio). ``--model tiny``
uses a random 4-layer GPT-2 (no package needed). ``--no-logits`` captures with
``return_logits=False``, which stops after the captured site: the ratio is then well below 1 for a
site early in the model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--site", default=None, help="default: resid_post of the middle layer")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="hooks", help="hooks, nnsight or transformer_lens")
    parser.add_argument("--no-logits", action="store_true", help="capture with return_logits=False")
    args = parser.parse_args()

    import torch
    from autointerp_transformers.adapter import TransformersAdapter
    from autointerp_transformers.hooks import HFModelConfig

    from autointerp.testing.adapters import random_ids, tiny_model, tiny_tokenizer

    torch.set_num_threads(args.threads)
    if args.model == "tiny":
        model = tiny_model("gpt2", n_layers=4, d_model=256)
        adapter = TransformersAdapter.wrap(model, tiny_tokenizer(), backend=args.backend)
    else:
        adapter = TransformersAdapter.from_config(
            HFModelConfig(model=args.model, backend=args.backend)
        )
    site = args.site or f"resid_post.{adapter.n_layers // 2}"
    ids = random_ids(args.batch, args.seq) % adapter.vocab_size

    def bare() -> None:
        with torch.no_grad():
            adapter.model(input_ids=ids, use_cache=False)

    def hooked() -> None:
        adapter.forward(ids, capture=[site], return_logits=not args.no_logits)

    bare(), hooked()  # warm-up
    times: dict[str, list[float]] = {"bare": [], "hooked": []}
    for _ in range(args.runs):
        for name, fn in (("bare", bare), ("hooked", hooked)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    b, h = statistics.median(times["bare"]), statistics.median(times["hooked"])
    print(
        f"model={args.model} backend={args.backend} batch={args.batch}x{args.seq} site={site} "
        f"threads={args.threads} runs={args.runs} logits={not args.no_logits}"
    )
    print(f"bare forward     median {b * 1000:8.1f} ms")
    print(f"capture one site median {h * 1000:8.1f} ms")
    print(f"overhead ratio   {h / b:.3f}x")


if __name__ == "__main__":
    main()
