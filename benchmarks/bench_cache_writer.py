"""Caching with shards written in the background vs in line, on the same batches.

    python benchmarks/bench_cache_writer.py [--baseline 6323d69] [--tokens 262144] [--repeats 3]

Both builds run in this process, alternately: ``build_cache`` of this checkout (a closed shard is
sorted and written on a background thread while the next batches are encoded) and of
``--baseline`` (loaded from git: the shard written in line). The source is the ``hashed`` one
(1,048,576 latents, 16 per token, no forward pass) over a tiny GPT-2's ids: the cost of caching is
then the shards' sorting and writing, as it is on a GPU whose forward pass is fast. Prints wall
and CPU seconds per build (median) and checks that both caches hold the same shards.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def baseline_module(rev: str, tmp: Path):
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:core/src/autointerp/cache.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = tmp / "cache_baseline.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("cache_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cache_baseline"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default="6323d69")
    p.add_argument("--tokens", type=int, default=262_144)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import torch
    from safetensors.numpy import load_file

    import autointerp.cache as current
    from autointerp.plugins import PluginManager
    from autointerp.testing.adapters import save_tiny, tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-cache-writer-"))
    plugins = PluginManager()
    model = save_tiny(tiny_model("gpt2"), tmp / "model")
    adapter = plugins.build("model_adapter", "transformers", {"model": str(model)})
    source = plugins.build(
        "feature_source", "hashed", {"site": "resid_post.1", "width": 1 << 20, "k": 16}
    )
    g = torch.Generator().manual_seed(0)
    vocab = adapter.vocab_size
    data = [torch.randint(0, vocab, (64, 64), generator=g) for _ in range(args.tokens // 4096)]
    info = {"model": "tiny", "site": "resid_post.1", "source": "hashed"}
    builds = {"in line (baseline)": baseline_module(args.baseline, tmp), "background": current}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in builds}
    for _ in range(args.repeats):
        for name, module in builds.items():
            out = tmp / name.split()[0]
            if out.exists():
                subprocess.run(["rm", "-rf", str(out)], check=True)
            t0, c0 = time.perf_counter(), time.process_time()
            module.build_cache(adapter, source, data, out, info, progress=False)
            times[name].append((time.perf_counter() - t0, time.process_time() - c0))
    a, b = (sorted((tmp / n.split()[0]).glob("shard-*")) for n in builds)
    assert [x.name for x in a] == [y.name for y in b]
    for x, y in zip(a, b, strict=True):
        tx, ty = load_file(str(x)), load_file(str(y))
        assert all((tx[k] == ty[k]).all() for k in tx), f"{x.name} differs"
    print(f"{args.tokens:,} tokens, {len(a)} shards, hashed source of 1,048,576 latents (k=16)")
    print("| shards written | wall s (median) | CPU s (median) |")
    print("|---|---:|---:|")
    for name, rows in times.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
