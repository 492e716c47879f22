# ruff: noqa: E501  (an analysis script behind benchmarks/RESULTS.md: tables built in long f-strings)
"""Firings per planted latent of the default set (seed 0) on builtin:python-docs, SmolLM2 tokenizer."""

import collections
import json

from autointerp_planted.plugin import PlantedConfig
from autointerp_planted.source import PlantedSource
from transformers import AutoTokenizer

from autointerp.corpus import iter_texts, token_windows

tok = AutoTokenizer.from_pretrained("/root/.cache/autointerp/models/smollm2-135m")


class A:
    tokenizer = tok
    vocab_size = len(tok)

    def tokenize(self, texts):
        return tok(texts, return_tensors="pt", padding=True)


src = PlantedSource(PlantedConfig())
src.bind_tokenizer(tok, len(tok))
counts = collections.Counter()
n = 0
for batch in token_windows(A(), iter_texts("builtin:python-docs"), seq_len=64, batch_size=8):
    sp = src.encode_tokens(batch)
    lat = sp.latents.numpy() if hasattr(sp, "latents") else sp[1].numpy()
    counts.update(lat.tolist())
    n += batch.numel()
    if n >= 16384:
        break
rows = []
for i in range(src.n_latents):
    t = src.truth(i)
    rows.append(
        {
            "i": i,
            "mode": t["mode"],
            "desc": t["description"],
            "kinds": t["kinds"],
            "keys": t["keys"],
            "noise": t["noise"],
            "count": counts[i],
        }
    )
with open("fires.json", "w") as f:
    json.dump(rows, f, indent=0)
print(n, sum(1 for r in rows if r["count"] >= 10))
