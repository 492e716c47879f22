"""Re-score a planted run's stored explanations with a scorer config variant, through the packaged
local LLM (item 4 of issue 21: parse-failure diagnosis, before/after).

usage: python rescore.py RUN_DIR SCORER N_LATENTS KEY=VALUE...   (e.g. structured=true)
Writes nothing to the run; prints one row per latent and a summary.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from autointerp_scorers.detection import DetectionScorer
from autointerp_scorers.fuzzing import FuzzingScorer
from autointerp_scorers.plugin import DetectionConfig, FuzzingConfig

from autointerp.examples import scored_examples
from autointerp.plugins import get_plugin_manager
from autointerp.store import Store

run, scorer_name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
options = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])}
cls, cfg = {
    "detection": (DetectionScorer, DetectionConfig),
    "fuzzing": (FuzzingScorer, FuzzingConfig),
}[scorer_name]
scorer = cls(cfg.model_validate(options))

with Store(f"{run}/results.sqlite", readonly=True) as store:
    rid = store.pick_run(None)
    explanations = store.explanations(rid)[:n]
    data = [(e, store.examples(rid, e.latent)) for e in explanations]


async def main() -> None:
    llm = get_plugin_manager().build(
        "llm_client", "local", {"model": "qwen2.5-coder-0.5b-instruct", "threads": 1, "parallel": 2}
    )
    try:
        t0 = time.time()
        for e, examples in data:
            test, neg = scored_examples(examples)
            s = await scorer.score(e, test, neg, llm, seed=0)
            m = s.metrics
            print(
                json.dumps(
                    {
                        "latent": e.latent.index,
                        "explanation": e.text,
                        "value": s.value,
                        "balanced_accuracy": m.get("balanced_accuracy"),
                        "auroc": m.get("auroc"),
                        "n_scored": m["n_scored"],
                        "n_failures": m["n_failures"],
                        "answers_1": sum(p.predicted == 1 for p in s.predictions),
                        "reasks": s.meta["reasks"],
                        "parse_failures": s.meta["parse_failures"],
                    }
                ),
                flush=True,
            )
        print(f"# {len(data)} latents in {time.time() - t0:.0f} s", flush=True)
    finally:
        await llm.aclose()


asyncio.run(main())
