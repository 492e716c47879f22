"""The default explainer: the top activating examples with their firing tokens marked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autointerp.llm import Message
from autointerp.types import Example
from autointerp_explainers.common import BaseExplainer, format_examples


class DefaultExplainer(BaseExplainer):
    name = "default"

    def build_messages(
        self,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        promoted: Sequence[str | tuple[str, float]],
    ) -> tuple[list[Message], dict[str, Any]]:
        shown = self._top(examples)
        if not shown:
            raise ValueError("no activating examples")
        text, tokens = format_examples(shown, self.config)
        messages = self.template.messages(examples=text, tokens=", ".join(tokens))
        return messages, {"shown_examples": [e.key for e in shown]}
