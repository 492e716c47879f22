"""Example building and storing, latents per second on one core, at parity sizes.

    python benchmarks/bench_examples.py [--latents 512] [--tokens 262144] [--baseline-src DIR]

A cache of a tiny random-weight GPT-2 through a random SAE (latents firing on ~1-3 % of tokens, so
each has activating and silent windows to spare) is built once in a temporary directory; then the
run's example step is timed for ``--latents`` latents: build (train 40, test 50, negatives 50 of
32 tokens), decode token strings, store in the results store, and make the Example objects an
explainer is handed: what a run does between caching and explaining. ``--baseline-src`` (the
``core/src`` of another checkout, e.g. a ``git worktree`` of an earlier commit) times the same
step with that code on the same cache, in a subprocess, and prints the ratio.
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

N_LATENTS_SAE = 1024
SITE = "resid_post.1"


def build_fixture(root: Path, n_tokens: int) -> Path:
    """A cache of ``n_tokens`` tokens and the tiny model's directory under ``root``."""
    import torch
    from safetensors.torch import save_file

    from autointerp.cache import build_cache
    from autointerp.plugins import PluginManager
    from autointerp.testing.adapters import build_tiny, save_tiny, tiny_model, torch_threads

    with torch_threads(1):
        adapter = build_tiny("gpt2", save_tiny(tiny_model("gpt2"), root / "model"))
        d = adapter.site(SITE).shape[-1]
        g = torch.Generator().manual_seed(0)
        batches = [torch.randint(0, 100, (16, 64), generator=g) for _ in range(n_tokens // 1024)]
        h0 = adapter.forward(batches[0], capture=[SITE], return_logits=False).captures[SITE]
        scale = float(h0.std()) * d**0.5
        weights = {
            "W_enc": torch.randn(d, N_LATENTS_SAE, generator=g) / scale,
            "b_enc": -torch.linspace(1.9, 2.4, N_LATENTS_SAE),  # fires on ~1-3 % of tokens
            "W_dec": torch.randn(N_LATENTS_SAE, d, generator=g),
            "b_dec": torch.zeros(d),
        }
        save_file(weights, root / "sae.safetensors")
        sae = PluginManager().build(
            "feature_source", "sae", {"path": str(root / "sae.safetensors"), "site": SITE}
        )
        build_cache(adapter, sae, batches, root / "cache", {"bench": 1}, progress=False)
    return root


def time_examples(root: Path, n_latents: int) -> dict[str, float]:
    """Seconds to build, decode and store the examples of ``n_latents`` latents (one core)."""
    import numpy as np
    from transformers import AutoTokenizer

    from autointerp import pipeline
    from autointerp.cache import ActivationCache
    from autointerp.examples import ExampleSettings, ExampleUnit, build_unit
    from autointerp.store import Store

    cache = ActivationCache(root / "cache")
    counts = np.array([len(cache.latent(i)[0]) for i in range(cache.n_latents)])
    chosen = [int(i) for i in np.flatnonzero(counts >= 200)[:n_latents]]
    decode = pipeline._decoder(AutoTokenizer.from_pretrained(root / "model"))
    decode([0])  # the same warm start for both: a run's decoder outlives its latents
    settings = ExampleSettings(window=32, n_train=40, n_test=50, n_negatives=50)
    store_dir = Path(tempfile.mkdtemp(prefix="bench-examples-"))
    units = [
        ExampleUnit(str(cache.dir), "sae/" + SITE, settings, tuple(chosen[i : i + 16]))
        for i in range(0, len(chosen), 16)
    ]
    with Store.open(store_dir) as store:
        run = store.bind(store.start_run("bench", {}))
        put = getattr(pipeline, "store_examples", None)
        t0, cpu0 = time.perf_counter(), time.process_time()
        n_examples = 0
        for unit in units:
            built = build_unit(unit)
            if put is not None:  # this checkout: one call per unit, then Example objects
                n_examples += put(run, built, decode)
                for example_set in built:
                    example_set.examples(decode)  # what the explainer is handed
            else:  # earlier checkouts: per latent, per example
                for ex in built:
                    ex = pipeline._decoded(ex, decode)
                    run.put_examples(ex.latent, [*ex.train, *ex.test, *ex.negatives])
                    n_examples += len(ex.train) + len(ex.test) + len(ex.negatives)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    size = sum(p.stat().st_size for p in store_dir.iterdir())
    return {
        "latents": len(chosen), "examples": n_examples, "wall_s": wall, "cpu_s": cpu,
        "latents_per_s": len(chosen) / wall, "store_bytes_per_example": size / max(n_examples, 1),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latents", type=int, default=512)
    p.add_argument("--tokens", type=int, default=262144)
    p.add_argument("--baseline-src", type=Path, default=None, help="core/src of another checkout")
    p.add_argument("--fixture", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    if args.fixture is not None:  # the baseline's subprocess: time only, print JSON
        print(json.dumps(time_examples(args.fixture, args.latents)))
        return
    root = build_fixture(Path(tempfile.mkdtemp(prefix="bench-examples-fixture-")), args.tokens)
    ours = time_examples(root, args.latents)
    rows = [("this checkout", ours)]
    if args.baseline_src is not None:
        env = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
        out = subprocess.run(
            [sys.executable, __file__, "--fixture", str(root), "--latents", str(args.latents)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append((f"baseline ({args.baseline_src})", json.loads(out.stdout.splitlines()[-1])))
    print(f"{ours['latents']} latents, {ours['examples']} examples (40/50/50 of 32 tokens), 1 core")
    for name, r in rows:
        print(
            f"  {name:<34} {r['latents_per_s']:7.1f} latents/s (wall), "
            f"{r['latents'] / r['cpu_s']:7.1f} per CPU second; "
            f"store {r['store_bytes_per_example']:4.0f} B/example"
        )
    if len(rows) == 2:
        base = rows[1][1]
        print(
            f"  speed-up: {ours['latents_per_s'] / base['latents_per_s']:.1f}x wall, "
            f"{base['cpu_s'] / ours['cpu_s']:.1f}x CPU"
        )


if __name__ == "__main__":
    main()
