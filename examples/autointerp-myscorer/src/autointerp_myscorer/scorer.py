"""A scorer without an LLM: does an example contain the explanation's words?

Each example gets the fraction of explanation keywords among its tokens; the score is the AUROC of
that number between activating examples and non-activating ones. Crude, but cheap, deterministic,
and a complete example of the scorer interface.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from autointerp.types import Example, Explanation, Prediction, Score
from autointerp_myscorer.plugin import MyScorerConfig


class KeywordScorer:
    """Built by autointerp as ``KeywordScorer(config)``; called once per explanation."""

    needs: frozenset[str] = frozenset()  # no LLM, no model adapter

    def __init__(self, config: MyScorerConfig) -> None:
        self.config = config

    def keywords(self, explanation: str) -> set[str]:
        text = explanation if self.config.case_sensitive else explanation.lower()
        return {w for w in re.findall(r"\w+", text) if len(w) >= self.config.min_word_length}

    def hit_rate(self, example: Example, keywords: set[str]) -> float:
        text = "".join(example.str_tokens)
        words = set(re.findall(r"\w+", text if self.config.case_sensitive else text.lower()))
        return len(keywords & words) / len(keywords) if keywords else 0.0

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
        shown = set(explanation.meta.get("exclude_from_scoring", ()))
        keywords = self.keywords(explanation.text)
        labelled = [(e, 1.0) for e in examples] + [(e, 0.0) for e in negatives]
        predictions = tuple(
            Prediction(i, self.hit_rate(e, keywords), actual)
            for i, (e, actual) in enumerate(labelled)
            if e.key not in shown
        )
        value = auroc(predictions)
        return Score(
            latent=explanation.latent,
            scorer="myscorer",
            explainer=explanation.explainer,
            value=value,
            metrics={"auroc": value} if value is not None else {},
            predictions=predictions,
            meta={"keywords": sorted(keywords)},
        )


def auroc(predictions: Sequence[Prediction]) -> float | None:
    """The chance that an activating example outscores a non-activating one (ties count half);
    None without both kinds. Pairwise, which is fine for the tens of examples a latent has."""
    pos = [p.predicted for p in predictions if p.actual == 1.0 and p.predicted is not None]
    neg = [p.predicted for p in predictions if p.actual == 0.0 and p.predicted is not None]
    if not pos or not neg:
        return None
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))
