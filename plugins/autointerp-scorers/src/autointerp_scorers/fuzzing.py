"""Fuzzing: given the explanation, are the marked tokens of each example the ones that activate?

Each activating example is shown once, marked correctly (answer 1) or, for a seeded share
``incorrect_fraction``, with as many non-firing tokens marked instead (answer 0); non-activating
examples (``include_negatives``) are shown with random marks (answer 0). Headline: balanced
accuracy; AUROC from logprobs when available.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from autointerp.prompts import render
from autointerp_scorers.common import BinaryLLMScorer, Item, Shown
from autointerp_scorers.plugin import FuzzingConfig


def firing(activations: Sequence[float], threshold: float) -> list[bool]:
    """Tokens at or above ``threshold`` times the example's peak (and above zero)."""
    cut = threshold * max(activations, default=0.0)
    return [a > 0 and a >= cut for a in activations]


def random_marks(
    n_tokens: int, count: int, avoid: Sequence[bool], rng: random.Random
) -> list[bool]:
    """``count`` marks on tokens not in ``avoid`` (fewer if there are not enough)."""
    free = [i for i in range(n_tokens) if not avoid[i]] if any(avoid) else range(n_tokens)
    marks = [False] * n_tokens
    for i in rng.sample(free, min(count, len(free))):
        marks[i] = True
    return marks


class FuzzingScorer(BinaryLLMScorer):
    name = "fuzzing"
    default_prompt = "fuzzing.v1"
    structured_prompt = "fuzzing-json.v1"
    prompt_version = default_prompt
    config: FuzzingConfig

    def __init__(self, config: FuzzingConfig) -> None:
        super().__init__(config)

    def shown(self, items: Sequence[Item], rng: random.Random) -> list[Shown]:
        c = self.config
        out: list[Shown] = []
        counts: list[int] = []
        pending_negatives: list[tuple[Item, list[str]]] = []
        for item in items:
            tokens, acts = item.example.window(c.example_width)
            if not item.actual:
                if c.include_negatives:
                    pending_negatives.append((item, tokens))
                continue
            marks = firing(acts, c.highlight_threshold)
            counts.append(max(1, sum(marks)))
            wrong = rng.random() < c.incorrect_fraction
            if wrong:
                decoy = random_marks(len(tokens), sum(marks), marks, rng)
                if any(decoy):  # an example firing everywhere cannot be marked wrongly
                    out.append(Shown(item, render(tokens, decoy), 0.0))
                    continue
            out.append(Shown(item, render(tokens, marks), 1.0))
        typical = sorted(counts)[len(counts) // 2] if counts else 1
        for item, tokens in pending_negatives:
            marks = random_marks(len(tokens), typical, [False] * len(tokens), rng)
            out.append(Shown(item, render(tokens, marks), 0.0))
        return out
