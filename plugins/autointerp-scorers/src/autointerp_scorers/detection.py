"""Detection: given the explanation, does each whole example activate the latent?

Activating and non-activating examples are shuffled together, ``batch_size`` per prompt, and the
LLM answers 1 or 0 for each. Headline: balanced accuracy; AUROC from the answer tokens' logprobs
when the client returns them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from autointerp.prompts import render
from autointerp_scorers.common import BinaryLLMScorer, Item, Shown
from autointerp_scorers.plugin import DetectionConfig


class DetectionScorer(BinaryLLMScorer):
    name = "detection"
    default_prompt = "detection.v1"
    structured_prompt = "detection-json.v1"
    prompt_version = default_prompt

    def __init__(self, config: DetectionConfig) -> None:
        super().__init__(config)

    def shown(self, items: Sequence[Item], rng: random.Random) -> list[Shown]:
        return [
            Shown(item, render(item.example.window(self.config.example_width)[0]), item.actual)
            for item in items
        ]
