"""Explain-stage memory vs the number of latents: examples built per latent as workers ask for
them (what ``autointerp explain`` does) against all latents' examples built up front (what the run
did before), on the same cache.

    python benchmarks/bench_run_memory.py [--latents 256] [--width 4096] [--k 32] [--tokens 16384]

Setup: a random tiny GPT-2 (2 layers, d_model 32), a random TopK SAE (``--width`` latents, ``--k``
per token) on ``resid_post.1`` in the plain safetensors layout, ``--tokens`` tokens of the built-in
corpus, parity example sizes (32-token windows, 40 train / 50 test / 50 negatives), the scripted
LLM server answering at once through the real OpenAI-compatible client, concurrency 64.

Figures: Python heap peak (``tracemalloc``) of the explain stage for N and 4N latents, streamed,
and of building the same latents' examples up front (the old ``{ref: builder.build(...)}``); the
ratio 4N / N says whether memory grows with the number of latents. Also latents/s of the stage.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_config(root: Path, server_url: str, sae: Path, model: Path, n: int, tokens: int) -> Path:
    path = root / f"run-{n}.toml"
    path.write_text(
        f"""
name = "mem-{n}"
run_dir = "{(root / "run").as_posix()}"
concurrency = 64
threads = 1

[model]
name = "transformers"
model = "{model.as_posix()}"

[feature_source]
name = "sae"
path = "{sae.as_posix()}"

[explainer]
name = "default"

[llm]
name = "openai-compatible"
base_url = "{server_url}"

[corpus]
ctx_len = 64
batch_size = 8
n_tokens = {tokens}

[latents]
n = {n}
min_activations = 1
""",
        encoding="utf-8",
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latents", type=int, default=256, help="N (and 4N are measured)")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=16384)
    args = parser.parse_args()

    import torch
    from safetensors.torch import save_file

    from autointerp.config import load_config
    from autointerp.examples import ExampleBuilder, ExampleSettings
    from autointerp.pipeline import RunContext, _cache, _decoder, execute, plan_run, prepare_run_dir
    from autointerp.plugins import get_plugin_manager
    from autointerp.store import Store
    from autointerp.testing.adapters import save_tiny, tiny_model
    from autointerp.testing.llm_server import ScriptedLLMServer

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench-run-memory-"))
    model = save_tiny(tiny_model("gpt2"), root / "model")
    gen = torch.Generator().manual_seed(0)
    d = 32
    sae = root / "sae.safetensors"
    save_file(
        {
            "W_enc": torch.randn(d, args.width, generator=gen),
            "b_enc": torch.zeros(args.width),
            "W_dec": torch.randn(args.width, d, generator=gen),
            "b_dec": torch.zeros(d),
        },
        str(sae),
        metadata={"activation": "topk", "k": str(args.k), "site": "resid_post.1"},
    )
    rows = []
    with ScriptedLLMServer() as server:
        server.default_text = "Explanation: a benchmark feature"
        # the first size is a warm-up (imports, first connections), not reported
        for n in (8, args.latents, 4 * args.latents):
            config = load_config(
                write_config(root, server.openai_base_url, sae, model, n, args.tokens)
            )
            plan = plan_run(config, get_plugin_manager())
            run_dir, run_id = prepare_run_dir(plan)
            execute(plan, run_dir, run_id, stages=("cache",), progress=False)  # cache once

            # streamed: the explain stage as the command runs it
            tracemalloc.start()
            start = time.perf_counter()
            summary = execute(plan, run_dir, run_id, stages=("cache", "explain"), progress=False)
            seconds = time.perf_counter() - start
            _, streamed = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert summary.explain is not None and summary.explain.done == n, summary.explain

            # up front: every latent's examples in one dict before any explaining
            ctx = RunContext(plan, run_dir, run_id, progress=False)
            lat = config.latents
            settings = ExampleSettings(
                window=lat.window, n_train=lat.n_train, n_test=lat.n_test,
                n_negatives=lat.n_negatives, seed=config.seed,
            )  # fmt: skip
            with Store.open(run_dir) as store:
                refs = [s.latent for s in store.latents(run_id)]
            builder = ExampleBuilder(
                _cache(ctx), ctx.source_key, _decoder(ctx.build("model").tokenizer), settings
            )
            tracemalloc.start()
            built = {ref: builder.build(ref.index) for ref in refs}
            _, eager = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del built
            rows.append((n, streamed / 2**20, eager / 2**20, n / seconds))
        rows = rows[1:]

    print(f"explain-stage Python heap peak (tracemalloc), width {args.width}, k {args.k}, "
          f"{args.tokens} tokens, parity example sizes, concurrency 64")  # fmt: skip
    print(f"{'latents':>8} {'streamed MiB':>13} {'up-front MiB':>13} {'latents/s':>10}")
    for n, streamed, eager, rate in rows:
        print(f"{n:>8} {streamed:>13.1f} {eager:>13.1f} {rate:>10.1f}")
    (n1, s1, e1, _), (n4, s4, e4, _) = rows
    print(f"growth {n4 // n1}x latents: streamed {s4 / s1:.2f}x, up front {e4 / e1:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
