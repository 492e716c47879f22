"""Economy mode vs parity mode: the same latents, explanations and LLM; scores, LLM calls and
tokens per latent, and the Spearman correlation between the two modes' scores.

    python benchmarks/bench_economy.py [--n-latents 30] [--llm local] [--llm-option K=V ...]
        [--n-train 10] [--n-test 10] [--n-negatives 10] [--run-dir runs/bench-economy]

The subject is the quickstart's: neurons of SmolLM2-135M layer 6 on the built-in corpus (cached
once into ``--run-dir``, reused on a rerun). Each latent is explained once (parity explainer) and
scored by detection and fuzzing twice: parity (5 examples per prompt, 0/1 lists) and economy
(every example in one prompt, a JSON object keyed by example number). ``--llm`` is any LLM
client (``local``: the packaged Qwen through llama.cpp; ``openai-compatible`` with
``--llm-option base_url=... --llm-option model=...`` for a served model). Figures go to stdout
and, as JSON, to ``RUN_DIR/bench_economy.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from autointerp_report.stats import spearman

from autointerp.config import load_config, parse_value
from autointerp.plugins import PluginManager
from autointerp.types import Explanation, LatentRef

SCORERS = ("detection", "fuzzing")
MODES = ("parity", "economy")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-latents", type=int, default=30)
    p.add_argument("--llm", default="local", help="LLM client name (autointerp plugins)")
    p.add_argument("--llm-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--n-train", type=int, default=10, help="examples shown to the explainer")
    p.add_argument("--n-test", type=int, default=10, help="activating examples scored")
    p.add_argument("--n-negatives", type=int, default=10, help="non-activating examples scored")
    p.add_argument("--concurrency", type=int, default=2, help="latents in flight")
    p.add_argument("--threads", type=int, default=1, help="torch threads while caching")
    p.add_argument("--run-dir", type=Path, default=Path("runs/bench-economy"))
    p.add_argument(
        "--max-minutes", type=float, default=None, help="start no latent after this long"
    )
    return p.parse_args()


def cached_latents(args: argparse.Namespace) -> tuple[Any, list[LatentRef], Any]:
    """Cache the quickstart's subject once; the first latents with enough activations."""
    import torch

    from autointerp.cache import ActivationCache, build_cache
    from autointerp.corpus import iter_texts, token_windows
    from autointerp.examples import ExampleBuilder, ExampleSettings
    from autointerp.pipeline import plan_run

    torch.set_num_threads(args.threads)
    plan = plan_run(load_config(), PluginManager())
    model_step, source_step = plan.step("model"), plan.step("feature_source")
    adapter = model_step.component.build(model_step.options)
    source = source_step.component.build(source_step.options)
    c = plan.config.corpus
    windows = token_windows(
        adapter, iter_texts(c.path, c.text_field), seq_len=c.ctx_len, batch_size=c.batch_size,
        bos=c.bos, seed=plan.config.seed,
    )  # fmt: skip
    n_batches = max(1, c.n_tokens // (c.ctx_len * c.batch_size))
    info = {
        "model": model_step.options.model_dump(), "adapter": model_step.component.name,
        "source": source_step.component.name, "source_options": source_step.options.model_dump(),
        "corpus": c.model_dump(), "seed": plan.config.seed,
    }  # fmt: skip
    cache_dir = build_cache(
        adapter, source, itertools.islice(windows, n_batches),
        args.run_dir / "cache" / source.site, info, total_batches=n_batches,
    )  # fmt: skip
    cache = ActivationCache(cache_dir)
    key = f"{source_step.component.name}/{source.site}"
    need = 3 * (args.n_train + args.n_test)  # activations, so that the windows differ
    eligible = (cache.stats()["count"] >= need).nonzero()[0][: args.n_latents]
    tokenizer = adapter.tokenizer

    @lru_cache(maxsize=1 << 16)
    def one(token: int) -> str:
        return tokenizer.decode([token])

    settings = ExampleSettings(
        window=32, n_train=args.n_train, n_test=args.n_test, n_negatives=args.n_negatives,
        seed=plan.config.seed,
    )  # fmt: skip
    builder = ExampleBuilder(cache, key, lambda ids: [one(int(t)) for t in ids], settings)
    return builder, [LatentRef(key, int(i)) for i in eligible], plan


def usage(meta: dict[str, Any]) -> tuple[int, int, int]:
    """(requests, prompt tokens, completion tokens) of one explanation or score."""
    requests = meta.get("llm_requests", len(meta.get("llm_calls", ())))
    return int(requests), int(meta.get("prompt_tokens", 0)), int(meta.get("completion_tokens", 0))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from autointerp.llm import wrap

    builder, latents, _plan = cached_latents(args)
    manager = PluginManager()
    options = {k: parse_value(v) for k, _, v in (o.partition("=") for o in args.llm_option)}
    llm_component = manager.get("llm_client", args.llm)
    backend = llm_component.build(llm_component.validate(options))
    # one client per stage on the same backend: each client's stats are that stage's usage
    clients = {key: wrap(backend) for key in ["explain", *itertools.product(MODES, SCORERS)]}
    client = clients["explain"]
    client.check()
    explainer = manager.build("explainer", "default", {})
    scorers = {
        (mode, name): manager.get("scorer", name).build(
            manager.get("scorer", name).validate({}, mode=mode)
        )
        for mode in MODES
        for name in SCORERS
    }
    gate = asyncio.Semaphore(args.concurrency)
    rows: dict[int, dict[str, Any]] = {}
    started = time.perf_counter()

    async def one(ref: LatentRef) -> None:
        async with gate:
            elapsed = (time.perf_counter() - started) / 60
            if args.max_minutes is not None and elapsed > args.max_minutes:
                return  # out of time: the summary says how many latents were done
            ex = builder.build(ref.index)
            try:
                explanation: Explanation = await explainer.explain(ref, ex.train, client, seed=0)
            except Exception as exc:  # a failed latent is reported, not fatal
                rows[ref.index] = {"error": f"explain: {exc}"}
                return
            row: dict[str, Any] = {
                "explanation": explanation.text,
                "explain": usage(explanation.meta),
            }
            for (mode, name), scorer in scorers.items():
                t0 = time.perf_counter()
                try:
                    score = await scorer.score(
                        explanation, ex.test, ex.negatives, clients[mode, name], seed=0
                    )
                except Exception as exc:
                    row[f"{mode}.{name}"] = {"error": str(exc)}
                    continue
                row[f"{mode}.{name}"] = {
                    "value": score.value,
                    "auroc": score.metrics.get("auroc"),
                    "exclusion_rate": score.metrics["exclusion_rate"],
                    "usage": usage(score.meta),
                    "seconds": time.perf_counter() - t0,
                }
            rows[ref.index] = row
            done = len(rows)
            partial = args.run_dir / "bench_economy.partial.json"
            partial.write_text(json.dumps(rows, indent=1), encoding="utf-8")
            print(f"[{done}/{len(latents)}] latent {ref.index}: {explanation.text!r} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip

    try:
        await asyncio.gather(*(one(ref) for ref in latents))
    finally:
        for c in clients.values():
            await c.aclose()
    stats = {
        "explain" if key == "explain" else ".".join(key): {
            "requests": c.stats.requests,
            "prompt_tokens": c.stats.prompt_tokens,
            "cached_tokens": c.stats.cached_tokens,
            "completion_tokens": c.stats.completion_tokens,
        }
        for key, c in clients.items()
    }
    return {
        "latents": len(latents), "rows": rows, "stats": stats,
        "seconds": time.perf_counter() - started,
    }  # fmt: skip


def summarize(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    rows = [r for r in result["rows"].values() if "error" not in r]
    out: dict[str, Any] = {
        "n_latents": result["latents"],
        "n_done": len(result["rows"]),
        "n_explained": len(rows),
        "examples": {"train": args.n_train, "test": args.n_test, "negatives": args.n_negatives},
        "llm": args.llm,
        "llm_options": args.llm_option,
        "seconds": round(result["seconds"], 1),
    }
    stats = result["stats"]
    n = max(1, len(rows))
    for mode in MODES:
        calls = [r["explain"][0] for r in rows]
        for name in SCORERS:
            cells = [r[f"{mode}.{name}"] for r in rows]
            ok = [c for c in cells if "error" not in c]
            for i, c in enumerate(cells):
                if "error" not in c:
                    calls[i] += c["usage"][0]
            values = [c["value"] for c in ok if c["value"] is not None]
            out[f"{mode}.{name}"] = {
                "mean": round(statistics.fmean(values), 3) if values else None,
                "scored": len(values),
                "failed_latents": len(cells) - len(ok),
                "mean_exclusion_rate": round(
                    statistics.fmean(c["exclusion_rate"] for c in ok), 3
                ) if ok else None,
                "seconds_per_latent": round(
                    statistics.fmean(c["seconds"] for c in ok), 1
                ) if ok else None,
            }  # fmt: skip
        used = [stats["explain"], *(stats[f"{mode}.{name}"] for name in SCORERS)]
        out[f"{mode}.per_latent"] = {  # explain + detection + fuzzing, every attempt counted
            "llm_calls_mean": round(sum(u["requests"] for u in used) / n, 2),
            "llm_calls_max": max(calls, default=None),
            "prompt_tokens_mean": round(sum(u["prompt_tokens"] for u in used) / n),
            "cached_prompt_tokens_mean": round(sum(u["cached_tokens"] for u in used) / n),
            "completion_tokens_mean": round(sum(u["completion_tokens"] for u in used) / n),
        }
    for name in SCORERS:
        pairs = [
            (r[f"parity.{name}"]["value"], r[f"economy.{name}"]["value"])
            for r in rows
            if r[f"parity.{name}"].get("value") is not None
            and r[f"economy.{name}"].get("value") is not None
        ]
        rho = spearman([a for a, _ in pairs], [b for _, b in pairs]) if pairs else float("nan")
        out[f"spearman.{name}"] = {"rho": round(rho, 3), "n": len(pairs)}
    return out


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.run_dir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(bench(args))
    summary = summarize(result, args)
    (args.run_dir / "bench_economy.json").write_text(
        json.dumps({"summary": summary, "rows": result["rows"]}, indent=2), encoding="utf-8"
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
