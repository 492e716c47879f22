"""The non-LLM stages on a local Ray cluster with 1 and 2 workers: caching (actors holding the
model and the feature source) and example building (tasks over latent ranges).

    python benchmarks/bench_ray.py [--tokens 65536] [--latents 256] [--workers 1 2]

The fixture is bench_examples.py's: a tiny random GPT-2 through a random 1,024-latent SAE. Each
worker count gets a fresh local cluster (``num_cpus`` = workers); the same work also runs in
process on one thread, for the per-unit costs that the estimate at the end scales up (seconds of
one core per 1,000 cached tokens and per latent's examples). Caching times include the actors'
start (each loads the model: what a run pays); the steady rate (seconds per chunk once every actor
has listed one) leaves it out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_examples import SITE, build_fixture


def batches(n_tokens: int) -> list[Any]:
    import torch

    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 100, (16, 64), generator=g) for _ in range(n_tokens // 1024)]


def components(root: Path) -> tuple[Any, Any, dict[str, Any]]:
    from autointerp.plugins import PluginManager

    info = {
        "adapter": "transformers", "model": {"model": str(root / "model")},
        "source": "sae", "source_options": {"path": str(root / "sae.safetensors"), "site": SITE},
    }  # fmt: skip
    plugins = PluginManager()
    adapter = plugins.build("model_adapter", info["adapter"], info["model"])
    source = plugins.build("feature_source", info["source"], info["source_options"])
    return adapter, source, info


def example_units(root: Path, n_latents: int) -> list[Any]:
    import numpy as np

    from autointerp.cache import ActivationCache
    from autointerp.examples import ExampleSettings, ExampleUnit

    cache = ActivationCache(root / "cache")
    counts = np.array([len(cache.latent(i)[0]) for i in range(cache.n_latents)])
    chosen = [int(i) for i in np.flatnonzero(counts >= 100)[:n_latents]]
    settings = ExampleSettings(window=32, n_train=40, n_test=50, n_negatives=50)
    return [
        ExampleUnit(str(cache.dir), "sae/" + SITE, settings, tuple(chosen[i : i + 16]))
        for i in range(0, len(chosen), 16)
    ]


def in_process(root: Path, n_tokens: int, units: list[Any]) -> dict[str, float]:
    from autointerp.cache import build_cache
    from autointerp.examples import build_unit

    adapter, source, info = components(root)
    out = root / "bench-inproc"
    t0 = time.perf_counter()
    build_cache(adapter, source, batches(n_tokens), out, info, progress=False)
    cache_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for unit in units:
        build_unit(unit)
    examples_s = time.perf_counter() - t0
    shutil.rmtree(out)
    return {"cache_s": cache_s, "examples_s": examples_s}


def on_ray(root: Path, n_tokens: int, units: list[Any], workers: int) -> dict[str, float]:
    import ray
    from autointerp_ray.executor import RayExecutor
    from autointerp_ray.plugin import RayConfig

    from autointerp.examples import build_unit

    ray.init(
        num_cpus=workers, include_dashboard=False, object_store_memory=200 << 20,
        logging_level=logging.WARNING,
    )  # fmt: skip
    try:
        executor = RayExecutor(RayConfig(address="auto", cache_chunk_contexts=128))
        adapter, source, info = components(root)
        out = root / f"bench-ray-{workers}"
        listed = ManifestWatch(out / "manifest.json")
        t0 = time.perf_counter()
        executor.cache_chunks(adapter, source, batches(n_tokens), out, info, progress=False)
        cache_s = time.perf_counter() - t0
        steady_s = listed.stop(skip=workers)
        list(executor.map(build_unit, units[:workers]))  # warm the task workers' imports
        t0 = time.perf_counter()
        n = sum(len(built) for built in executor.map(build_unit, units))
        examples_s = time.perf_counter() - t0
        assert n == sum(len(u.indices) for u in units)
        shutil.rmtree(out)
    finally:
        ray.shutdown()
    return {"cache_s": cache_s, "examples_s": examples_s, "steady_s": steady_s}


class ManifestWatch:
    """Times at which the manifest lists each chunk (polled): the steady caching rate, once every
    actor has started, without the actors' start-up."""

    def __init__(self, path: Path) -> None:
        self.path, self.times, self._stop = path, [], threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        seen = 0
        while not self._stop.is_set():
            try:
                n = len(json.loads(self.path.read_text())["shards"])
            except (OSError, ValueError, KeyError):
                n = 0
            self.times += [time.perf_counter()] * (n - seen)
            seen = max(seen, n)
            time.sleep(0.02)

    def stop(self, skip: int) -> float:
        """Seconds per chunk after the first ``skip`` chunks were listed."""
        self._stop.set()
        self._thread.join()
        later = self.times[skip - 1 :]
        return (later[-1] - later[0]) / max(len(later) - 1, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=65536)
    p.add_argument("--latents", type=int, default=256)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import torch

    torch.set_num_threads(1)
    root = build_fixture(Path(tempfile.mkdtemp(prefix="bench-ray-")), args.tokens)
    units = example_units(root, args.latents)
    n_latents = sum(len(u.indices) for u in units)
    base = in_process(root, args.tokens, units)
    rows = {w: on_ray(root, args.tokens, units, w) for w in args.workers}
    print(f"{args.tokens} tokens cached, examples of {n_latents} latents (40/50/50 of 32 tokens)")
    print(f"  in process, 1 thread : cache {base['cache_s']:6.1f} s, examples "
          f"{base['examples_s']:6.1f} s")  # fmt: skip
    for w, r in rows.items():
        print(f"  ray, {w} worker(s)     : cache {r['cache_s']:6.1f} s ({r['steady_s']:5.2f} s "
              f"per chunk once every actor runs), examples {r['examples_s']:6.1f} s")  # fmt: skip
    if 1 in rows and 2 in rows:
        a, b = rows[1], rows[2]
        print(f"  2 vs 1 worker: cache {a['cache_s'] / b['cache_s']:.2f}x "
              f"({a['steady_s'] / b['steady_s']:.2f}x once the actors run), "
              f"examples {a['examples_s'] / b['examples_s']:.2f}x")  # fmt: skip
    per_ktok = base["cache_s"] / (args.tokens / 1000)
    per_latent = base["examples_s"] / n_latents
    print(f"per-unit cost (one core): caching {per_ktok * 1000:.1f} ms per 1,000 tokens, "
          f"examples {per_latent * 1000:.1f} ms per latent")  # fmt: skip
    one_core_h = 1e6 * per_latent / 3600
    print(f"examples of 1M latents: {one_core_h:.1f} h on one core, "
          f"{one_core_h * 60 / 64:.1f} min on 64 cores (8 nodes x 8)")  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
