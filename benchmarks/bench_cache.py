"""Activation caching: throughput vs the bare forward pass, flat memory, storage, read and example
build times; optionally eai-delphi's caching on the same tokens, model and SAE, side by side.

    python benchmarks/bench_cache.py [--width 16384] [--k 32] [--tokens 16384] [--repeats 3]
        [--batch 8] [--seq 64] [--threads 1] [--delphi-python /tmp/delphi-venv/bin/python]

Setup: the packaged SmolLM2-135M (``smollm2-135m``, transformers adapter, hooks backend), a
random-weight TopK SAE (``--width`` latents, ``--k``) on ``resid_post`` of the middle layer saved in
the plain safetensors layout and loaded through the ``sae`` plugin, and the first ``--tokens``
tokens of ``--corpus`` (default ``builtin:python-docs``) cut into ``[batch, seq]`` batches.

Figures (one run prints them all, as a table):

- throughput: ``autointerp.cache.build_cache`` vs the bare HF forward of the same model on the
  same batches (``model(input_ids)``, logits included), and vs a bare forward that stops after the
  site's block (what caching cannot avoid); repeats interleaved, medians compared.
- peak RSS (``resource.getrusage`` max RSS) of caching 1x, 2x and 4x the corpus, each in a fresh
  subprocess, with shards of ``--shard-contexts`` contexts so every run closes several shards.
- bytes per stored activation (shard file bytes / stored activations) and the payload alone.
- time to read 100 latents' activations (``ActivationCache.latent``) and to build examples for
  every latent (``ExampleBuilder.build``).
- delphi (``delphi.latents.LatentCache``, run + ``save_splits``) in a subprocess of its own venv,
  driven by ``benchmarks/delphi_cache.py`` with the same tokens and SAE weights; skipped with a note
  when that python is missing. Create the venv (torch stays 2.13.0, no vllm)::

      python3 -m venv /tmp/delphi-venv
      /tmp/delphi-venv/bin/pip install torch==2.13.0
      /tmp/delphi-venv/bin/pip install eai-delphi==0.1.3 --no-deps
      echo torch==2.13.0 > /tmp/delphi-constraints.txt
      /tmp/delphi-venv/bin/pip install -c /tmp/delphi-constraints.txt transformers==5.23.0 \\
          safetensors numpy tqdm jaxtyping orjson simple_parsing blobfile asyncer faiss-cpu \\
          sentence-transformers
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rss import peak_rss_kib, reset_peak_rss

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
DELPHI_PYTHON = "/tmp/delphi-venv/bin/python"


def load_adapter(threads: int):
    import torch
    from autointerp_transformers.adapter import TransformersAdapter
    from autointerp_transformers.hooks import HFModelConfig

    torch.set_num_threads(threads)
    return TransformersAdapter.from_config(HFModelConfig(model="smollm2-135m"))


def write_sae(path: Path, d_in: int, width: int, seed: int = 0) -> None:
    """A random TopK SAE in the plain layout (W_enc [d, n], b_enc, W_dec [n, d], b_dec)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    w_enc = torch.randn(d_in, width, generator=g) / d_in**0.5
    save_file(
        {
            "W_enc": w_enc,
            "b_enc": torch.zeros(width),
            "W_dec": w_enc.T.contiguous(),
            "b_dec": torch.zeros(d_in),
        },
        str(path),
    )


def load_source(sae_path: Path, site: str, k: int):
    from autointerp.plugins import PluginManager

    options = {"path": str(sae_path), "site": site, "activation": "topk", "k": k}
    return PluginManager().build("feature_source", "sae", options)


def corpus_batches(adapter, corpus: str, n_tokens: int, batch: int, seq: int, times: int = 1):
    """The first ``n_tokens`` tokens of the corpus as ``[batch, seq]`` batches, read ``times``
    over (a bigger corpus for the memory runs, streamed like any other)."""
    from autointerp.corpus import iter_texts, token_windows

    texts = itertools.chain.from_iterable(iter_texts(corpus) for _ in range(times))
    n_batches = n_tokens // (batch * seq)
    windows = token_windows(adapter, texts, seq_len=seq, batch_size=batch)
    out = list(itertools.islice(windows, n_batches))
    if len(out) < n_batches:
        raise SystemExit(f"{corpus} has fewer than {n_tokens} tokens; lower --tokens")
    return out


def stream_batches(adapter, corpus: str, n_tokens: int, batch: int, seq: int, times: int):
    """Like :func:`corpus_batches` ``times`` over, but yielded lazily (the memory runs)."""
    from autointerp.corpus import iter_texts, token_windows

    per_pass = n_tokens // (batch * seq)
    for _ in range(times):
        windows = token_windows(adapter, iter_texts(corpus), seq_len=seq, batch_size=batch)
        yield from itertools.islice(windows, per_pass)


def stop_after(block):
    """A bare forward that ends after ``block`` (plain hook, no adapter)."""

    class _Done(Exception):
        pass

    def hook(*_args):
        raise _Done

    def run(fn, **kwargs):
        handle = block.register_forward_hook(hook)
        try:
            fn(**kwargs)
        except _Done:
            pass
        finally:
            handle.remove()

    return run


def dir_bytes(path: Path, pattern: str = "shard-*.safetensors") -> int:
    return sum(p.stat().st_size for p in path.glob(pattern))


def payload(cache_dir: Path) -> tuple[int, int]:
    """(activations, bytes of their token + value arrays) over the cache's shards."""
    from safetensors import safe_open

    n = nbytes = 0
    for shard in sorted(cache_dir.glob("shard-*.safetensors")):
        with safe_open(str(shard), framework="numpy") as f:
            for key in ("token", "value"):
                t = f.get_tensor(key)
                nbytes += t.nbytes
            n += len(t)
    return n, nbytes


# -- the memory child ------------------------------------------------------------------------------


def rss_child(args: argparse.Namespace) -> None:
    """Cache ``--times`` x the corpus in this fresh process; print peak RSS as JSON."""
    from autointerp.cache import build_cache

    adapter = load_adapter(args.threads)
    site = f"resid_post.{adapter.n_layers // 2}"
    source = load_source(Path(args.sae), site, args.k)
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    warm = next(stream_batches(adapter, args.corpus, args.tokens, args.batch, args.seq, 1))
    adapter.forward(warm, capture=[site], return_logits=False)  # weights paged in before the reset
    reset, start_rss = reset_peak_rss()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    batches = stream_batches(adapter, args.corpus, args.tokens, args.batch, args.seq, args.times)
    build_cache(
        adapter,
        source,
        batches,
        out,
        {"bench": "rss", "times": args.times},
        contexts_per_shard=args.shard_contexts,
        progress=False,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    print(
        json.dumps(
            {
                "times": args.times,
                "seconds": time.perf_counter() - start,
                "tokens": manifest["n_tokens"],
                "shards": len(manifest["shards"]),
                "load_peak_mb": load_peak / 1024,
                "caching_peak_mb": peak_rss_kib() / 1024,
                "reset": reset,
                "start_mb": start_rss / 1024,
            }
        )
    )
    shutil.rmtree(out, ignore_errors=True)


# -- the parent ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="builtin:python-docs")
    parser.add_argument("--tokens", type=int, default=16384, help="corpus size (1x)")
    parser.add_argument("--width", type=int, default=16384, help="SAE latents")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shard-contexts", type=int, default=64, help="memory runs' shard size")
    parser.add_argument("--delphi-python", default=DELPHI_PYTHON)
    parser.add_argument("--skip", default="", help="comma list of: rss, delphi, examples")
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    # the memory child's own options
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--times", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--sae", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return
    skip = set(filter(None, args.skip.split(",")))

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from autointerp.cache import ActivationCache, build_cache

    work = Path(args.workdir or tempfile.mkdtemp(prefix="autointerp-bench-cache-"))
    work.mkdir(parents=True, exist_ok=True)
    adapter = load_adapter(args.threads)
    layer = adapter.n_layers // 2
    site = f"resid_post.{layer}"
    sae_path = work / "sae.safetensors"
    write_sae(sae_path, adapter.d_model, args.width)
    source = load_source(sae_path, site, args.k)
    batches = corpus_batches(adapter, args.corpus, args.tokens, args.batch, args.seq)
    n_tokens = sum(b.numel() for b in batches)
    tokens_path = work / "tokens.safetensors"
    save_file({"tokens": torch.cat(batches)}, str(tokens_path))
    model = adapter.model
    block = model.get_submodule(adapter.site(site).module_path)
    truncated = stop_after(block)
    cache_dir = work / "cache"

    def bare_full() -> None:
        with torch.no_grad():
            for ids in batches:
                model(input_ids=ids, use_cache=False)

    def bare_to_site() -> None:
        with torch.no_grad():
            for ids in batches:
                truncated(model.model, input_ids=ids, use_cache=False)

    def encode_only() -> None:  # forward to the site + SAE encode, nothing kept
        for ids in batches:
            h = adapter.forward(ids, capture=[site], return_logits=False).captures[site]
            source.encode(h.reshape(-1, h.shape[-1]))

    def cache() -> None:
        shutil.rmtree(cache_dir, ignore_errors=True)
        build_cache(adapter, source, batches, cache_dir, {"bench": "cache"}, progress=False)

    print(
        f"# model=smollm2-135m site={site} sae=topk width={args.width} k={args.k} "
        f"corpus={args.corpus} tokens={n_tokens} batch={args.batch}x{args.seq} "
        f"threads={args.threads} repeats={args.repeats}",
        flush=True,
    )
    print(f"# load before: {os.getloadavg()[0]:.2f} (1-min load average)", flush=True)
    with torch.no_grad():  # warm-up
        model(input_ids=batches[0], use_cache=False)
        adapter.forward(batches[0], capture=[site], return_logits=False)
    runs: dict[str, list[float]] = {"bare": [], "bare_to_site": [], "encode": [], "cache": []}
    steps = (("bare", bare_full), ("bare_to_site", bare_to_site), ("encode", encode_only),
             ("cache", cache))  # fmt: skip
    for _ in range(args.repeats):
        for name, fn in steps:
            start = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in runs.items()}

    def rate(key: str) -> str:
        return f"{med[key]:.2f} s  {n_tokens / med[key]:,.0f} tok/s"

    rows: list[tuple[str, str]] = [
        ("bare forward (full, logits)", rate("bare")),
        (f"bare forward to block {layer}", rate("bare_to_site")),
        ("adapter forward to site + SAE encode", rate("encode")),
        ("build_cache", rate("cache")),
        ("ratio cache / bare full (goal <= 1.15)", f"{med['cache'] / med['bare']:.3f}x"),
        ("ratio cache / bare to site", f"{med['cache'] / med['bare_to_site']:.3f}x"),
        ("ratio cache / (forward to site + encode)", f"{med['cache'] / med['encode']:.3f}x"),
    ]

    n_act, pay = payload(cache_dir)
    total = dir_bytes(cache_dir)
    rows += [
        ("stored activations", f"{n_act:,} ({n_act / n_tokens:.1f} per token)"),
        ("bytes / activation, shard files (goal <= 6)", f"{total / n_act:.3f}"),
        ("bytes / activation, token+value arrays", f"{pay / n_act:.3f}"),
    ]

    rng = np.random.default_rng(0)
    picks = rng.choice(args.width, size=min(100, args.width), replace=False)
    start = time.perf_counter()
    reader = ActivationCache(cache_dir)
    got = sum(len(reader.latent(int(i))[0]) for i in picks)
    rows.append(
        ("read 100 latents", f"{(time.perf_counter() - start) * 1000:.1f} ms ({got:,} acts)")
    )

    if "examples" not in skip:
        from autointerp.examples import ExampleBuilder, ExampleSettings
        from autointerp.pipeline import _decoder  # the decoder `autointerp run` uses

        start = time.perf_counter()
        builder = ExampleBuilder(reader, "sae", _decoder(adapter.tokenizer), ExampleSettings())
        built = sum(len(builder.build(i).train) > 0 for i in range(reader.n_latents))
        seconds = time.perf_counter() - start
        rows.append(
            (
                f"examples for all {reader.n_latents:,} latents",
                f"{seconds:.1f} s ({seconds / reader.n_latents * 1000:.2f} ms/latent, "
                f"{built:,} with examples)",
            )
        )

    if "rss" not in skip:
        for times in (1, 2, 4):
            cmd = [
                sys.executable, __file__, "--rss-child", "--times", str(times),
                "--sae", str(sae_path), "--out", str(work / f"rss-{times}"),
                "--corpus", args.corpus, "--tokens", str(n_tokens), "--k", str(args.k),
                "--batch", str(args.batch), "--seq", str(args.seq),
                "--threads", str(args.threads), "--shard-contexts", str(args.shard_contexts),
            ]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            what = "peak RSS while caching" if r["reset"] else "peak RSS (process)"
            rows.append(
                (
                    f"{what}, {times}x corpus ({r['tokens']:,} tok, {r['shards']} shards)",
                    f"{r['caching_peak_mb']:,.1f} MB (+{r['caching_peak_mb'] - r['start_mb']:.1f} "
                    f"over the RSS at its start; load peak {r['load_peak_mb']:,.0f} MB; "
                    f"{r['seconds']:.0f} s)",
                )
            )

    if "delphi" not in skip:
        if not Path(args.delphi_python).exists():
            rows.append(("delphi", f"skipped: {args.delphi_python} not found (see the docstring)"))
        else:
            cmd = [
                args.delphi_python, str(HERE / "delphi_cache.py"),
                "--model", str(getattr(model.config, "_name_or_path", "")),
                "--sae", str(sae_path), "--tokens", str(tokens_path), "--k", str(args.k),
                "--layer", str(layer), "--batch", str(args.batch),
                "--repeats", str(args.repeats), "--threads", str(args.threads),
                "--out", str(work / "delphi"),
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
                rows.append(("delphi", f"failed: {tail}"))
            else:
                d = json.loads(proc.stdout.strip().splitlines()[-1])
                rows += [
                    ("delphi: bare forward (its venv)", f"{d['bare']:.2f} s"),
                    ("delphi: LatentCache.run + save_splits", f"{d['cache']:.2f} s"),
                    ("delphi ratio cache / bare full", f"{d['cache'] / d['bare']:.3f}x"),
                    ("delphi stored activations", f"{d['activations']:,}"),
                    ("delphi bytes / activation, files", f"{d['bytes'] / d['activations']:.3f}"),
                    ("delphi peak RSS (1x, with its repeats)", f"{d['peak_rss_mb']:,.0f} MB"),
                ]
                for times in (1, 4):  # its memory, measured like ours: fresh process, one pass
                    proc = subprocess.run([*cmd, "--times", str(times), "--repeats", "0"],
                                          capture_output=True, text=True)  # fmt: skip
                    if proc.returncode:
                        rows.append((f"delphi RSS {times}x", "failed"))
                        continue
                    m = json.loads(proc.stdout.strip().splitlines()[-1])
                    rows.append(
                        (
                            f"delphi peak RSS while caching, {times}x corpus",
                            f"{m['caching_peak_mb']:,.1f} MB "
                            f"(+{m['caching_peak_mb'] - m['start_mb']:.1f} over its start)",
                        )
                    )
                same = d["activations"] == n_act
                rows.append(("delphi vs ours: same activation count", str(same)))

    print(f"# load after: {os.getloadavg()[0]:.2f}")
    print(f"# raw seconds: {json.dumps({k: [round(x, 3) for x in v] for k, v in runs.items()})}")
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
