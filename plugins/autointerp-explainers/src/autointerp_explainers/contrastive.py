"""The contrastive explainer: activating examples and non-activating ones side by side.

The non-activating examples it shows are listed in ``meta["exclude_from_scoring"]``: a scorer
must not test the explanation on examples the explainer has already seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autointerp.llm import Message
from autointerp.types import Example
from autointerp_explainers.common import BaseExplainer, format_examples


class ContrastiveExplainer(BaseExplainer):
    name = "contrastive"
    needs = frozenset({"negatives"})

    def build_messages(
        self,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        promoted: Sequence[str | tuple[str, float]],
    ) -> tuple[list[Message], dict[str, Any]]:
        shown = self._top(examples)
        if not shown:
            raise ValueError("no activating examples")
        if not negatives:
            raise ValueError("the contrastive explainer needs non-activating examples")
        contrast = list(negatives)[: self.config.max_negatives]
        text, tokens = format_examples(shown, self.config)
        scale = max(e.max_activation for e in shown)
        negative_text, _ = format_examples(
            contrast, self.config, scale=scale, start=len(shown) + 1, highlight=False
        )
        messages = self.template.messages(
            examples=text, negatives=negative_text, tokens=", ".join(tokens)
        )
        meta = {
            "shown_examples": [e.key for e in shown],
            "exclude_from_scoring": [e.key for e in contrast],
        }
        return messages, meta
