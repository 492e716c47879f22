"""The output-side explainer: what a latent does to the next-token distribution.

Given the tokens it promotes through the unembedding (``promoted``: strings or (token, logit)
pairs, strongest first), it explains latents whose contexts say little but whose effect is clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autointerp.llm import Message
from autointerp.types import Example
from autointerp_explainers.common import BaseExplainer, format_examples


class OutputSideExplainer(BaseExplainer):
    name = "output_side"
    needs = frozenset({"promoted_tokens"})

    def build_messages(
        self,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        promoted: Sequence[str | tuple[str, float]],
    ) -> tuple[list[Message], dict[str, Any]]:
        tokens = [p if isinstance(p, str) else p[0] for p in promoted][: self.config.top_k_tokens]
        tokens = [t.strip() for t in tokens if t.strip()]
        if not tokens:
            raise ValueError("the output-side explainer needs the latent's promoted tokens")
        shown = self._top(examples)[: self.config.context_examples]
        block = ""
        if shown:
            text, _ = format_examples(shown, self.config)
            block = "\nText where it fires:\n" + text
        messages = self.template.messages(promoted=", ".join(tokens), examples_block=block)
        return messages, {"promoted": tokens, "shown_examples": [e.key for e in shown]}
