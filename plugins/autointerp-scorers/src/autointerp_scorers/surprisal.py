"""Surprisal: how much does the explanation, as a prompt prefix, lower a language model's loss on
each example? Activating examples should gain more than non-activating ones; the score is the
AUROC of the loss reduction (neutral prefix minus explanation prefix, mean nats per token).

The language model is the run's model adapter (``adapter=``); only ``forward`` with an attention
mask and the tokenizer are used, so any architecture behind the contract works. Sequences are
right-padded: padding then never changes the logits of real tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from autointerp.types import Example, Explanation, Prediction, Score
from autointerp_scorers.common import ScoringFailedError, make_score, scorable_items
from autointerp_scorers.metrics import auroc
from autointerp_scorers.plugin import SurprisalConfig


def _ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def continuation_losses(
    adapter: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 8,
    max_length: int = 256,
) -> list[float]:
    """Mean negative log-likelihood (nats per token) of each ``text`` after its ``prefix``, for
    ``(prefix, text)`` pairs. The prefix is tokenized with the tokenizer's special tokens (a BOS
    where the model uses one), the text without; the text is cut to fit ``max_length``."""
    import torch

    tokenizer = adapter.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows: list[tuple[list[int], int]] = []
    for prefix, text in pairs:
        head = _ids(tokenizer, prefix, special=True)
        body = _ids(tokenizer, text, special=False)[: max(1, max_length - len(head))]
        if not head:  # a first token needs something before it to be predicted from
            head, body = body[:1], body[1:]
        rows.append((head + body, len(head)))
    losses: list[float] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, (ids, _) in enumerate(chunk):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
        with torch.inference_mode():
            logits = adapter.forward(input_ids, attention_mask=mask).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for i, (ids, head_len) in enumerate(chunk):
            if len(ids) <= head_len:
                losses.append(float("nan"))
                continue
            targets = torch.tensor(ids[head_len:])
            predicted = logprobs[i, head_len - 1 : len(ids) - 1]
            nll = -predicted.gather(-1, targets[:, None]).squeeze(-1)
            losses.append(float(nll.mean()))
    return losses


class SurprisalScorer:
    name = "surprisal"
    prompt_version = "surprisal.v1"  # its prefixes are options (hashed into provenance)
    needs: frozenset[str] = frozenset({"adapter"})

    def __init__(self, config: SurprisalConfig) -> None:
        if "{explanation}" not in config.prefix:
            raise ValueError("surprisal: the prefix must contain {explanation}")
        self.config = config

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
        if adapter is None:
            raise ScoringFailedError(self.name, explanation.latent, "needs a model adapter")
        items, skipped = scorable_items(self.name, explanation, examples, negatives)
        c = self.config
        texts = ["".join(item.example.window(c.example_width)[0]) for item in items]
        prefix = c.prefix.replace("{explanation}", explanation.text)
        pairs = [(c.baseline_prefix, t) for t in texts] + [(prefix, t) for t in texts]
        losses = await asyncio.to_thread(
            continuation_losses, adapter, pairs, batch_size=c.batch_size, max_length=c.max_length
        )
        baseline, explained = np.array(losses[: len(items)]), np.array(losses[len(items) :])
        reduction = baseline - explained
        predictions = [
            Prediction(
                item.example_id,
                None if np.isnan(r) else float(r),
                item.actual,
                quantile=item.quantile,
            )
            for item, r in zip(items, reduction, strict=True)
        ]
        ok = ~np.isnan(reduction)
        actual = np.array([item.actual for item in items])
        metrics: dict[str, float] = {}
        if (value := auroc(actual[ok], reduction[ok])) is not None:
            metrics["auroc"] = value
        for label, name in ((1.0, "activating"), (0.0, "negatives")):
            chosen = ok & (actual == label)
            if chosen.any():
                metrics[f"mean_loss_reduction_{name}"] = float(reduction[chosen].mean())
                metrics[f"mean_loss_{name}"] = float(explained[chosen].mean())
        return make_score(
            self.name,
            explanation,
            predictions,
            headline="auroc",
            metrics=metrics,
            skipped=skipped,
            meta={
                "model": getattr(adapter, "architecture", type(adapter).__name__),
                "prefix": c.prefix,
                "baseline_prefix": c.baseline_prefix,
                "seed": seed,
            },
        )
