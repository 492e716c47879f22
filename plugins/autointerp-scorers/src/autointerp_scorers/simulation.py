"""Simulation: from the explanation alone, predict every token's activation (0-10); the score is
the correlation of the predictions with the true activations over all scored tokens.

All at once: one prompt per example lists its tokens and asks for one number per token. When the
client returns logprobs, each prediction is the expected value over the number tokens' top
alternatives rather than the sampled number. An example whose answer cannot be parsed is excluded
and counted, never filled with zeros.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from autointerp.llm import (
    ChatResponse,
    LLMClient,
    ParseError,
    SamplingParams,
    TokenLogprob,
    UnparseableResponseError,
    chat_parsed,
    wrap,
)
from autointerp.types import Example, Explanation, Prediction, Score
from autointerp_scorers.common import (
    Item,
    ScoringFailedError,
    gather_or_fail,
    load_prompt,
    make_score,
    scorable_items,
    usage_meta,
)
from autointerp_scorers.metrics import pearson
from autointerp_scorers.plugin import SimulationConfig

_LIST = re.compile(r"\[([^\[\]]*)\]")
_PUNCT = " \t\n\"'[](),.:;{}*`"


def parse_activations(text: str, n: int) -> list[float]:
    """``n`` numbers 0-10 from the last ``[...]`` list of a reply. Raises :class:`ParseError`."""
    lists = _LIST.findall(text)
    if not lists:
        raise ParseError(f"no list of {n} numbers found")
    words = [w for w in re.split(r"[\s,]+", lists[-1]) if w.strip(_PUNCT)]
    values = []
    for word in words:
        try:
            value = float(word.strip(_PUNCT))
        except ValueError:
            raise ParseError(f"{word!r} is not a number from 0 to 10") from None
        if not 0 <= value <= 10:
            raise ParseError(f"{value:g} is outside 0 to 10")
        values.append(value)
    if len(values) != n:
        raise ParseError(f"expected {n} numbers, one per token, but got {len(values)}")
    return values


def _as_level(token: str) -> int | None:
    word = token.strip(_PUNCT)
    return int(word) if word.isdigit() and int(word) <= 10 else None


def expected_activations(logprobs: Sequence[TokenLogprob] | None, n: int) -> list[float] | None:
    """The expected value of each of the ``n`` numbers from the number tokens' top alternatives;
    None when the number tokens cannot be matched one-to-one with the answers."""
    if not logprobs:
        return None
    slots = [t for t in logprobs if _as_level(t.token) is not None]
    if len(slots) != n:
        return None
    out = []
    for slot in slots:
        alternatives = slot.top or ((slot.token, slot.logprob),)  # top holds the chosen token
        weights = [(_as_level(tok), math.exp(lp)) for tok, lp in alternatives]
        usable = [(lvl, w) for lvl, w in weights if lvl is not None]
        total = sum(w for _, w in usable)
        if total <= 0:
            return None
        out.append(sum(lvl * w for lvl, w in usable) / total)
    return out


class SimulationScorer:
    name = "simulation"
    needs: frozenset[str] = frozenset({"llm"})

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.template = load_prompt(config.prompt or "simulation.v1")
        self.prompt_version = self.template.id

    def params(self, n: int, seed: int) -> SamplingParams:
        c = self.config
        return SamplingParams(
            temperature=c.temperature,
            max_tokens=16 + n * c.max_tokens_per_answer,
            seed=seed,
            logprobs=c.logprobs,
            top_logprobs=c.top_logprobs if c.logprobs else 0,
        )

    async def _simulate(
        self, client: LLMClient, explanation: Explanation, tokens: Sequence[str], seed: int
    ) -> tuple[list[float] | None, list[ChatResponse], str, int]:
        n = len(tokens)
        listing = "\n".join(
            f"{i} {json.dumps(t, ensure_ascii=False)}" for i, t in enumerate(tokens, 1)
        )
        messages = self.template.messages(
            explanation=explanation.text, tokens=listing, count=str(n)
        )
        try:
            values, responses = await chat_parsed(
                client,
                messages,
                lambda text: parse_activations(text, n),
                self.params(n, seed),
                max_reasks=self.config.max_reasks,
                reask=self.template.reask.replace("$count", str(n)),
            )
        except UnparseableResponseError as exc:  # paid for all the same: its calls count
            return None, list(exc.responses), str(exc), exc.attempts - len(exc.responses)
        expected = expected_activations(responses[-1].logprobs, n)
        if expected is not None and np.max(np.abs(np.subtract(expected, values))) > 5:
            expected = None  # logprobs that disagree with the text belong to other tokens
        return (expected if expected is not None else values), responses, "", 0

    async def score(
        self,
        explanation: Explanation,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        llm: Any,
        *,
        seed: int = 0,
        adapter: Any = None,
    ) -> Score:
        if llm is None:
            raise ScoringFailedError(self.name, explanation.latent, "needs an LLM client")
        client = wrap(llm)
        items, skipped = scorable_items(self.name, explanation, examples, negatives)
        windows = [item.example.window(self.config.example_width) for item in items]
        top = max((max(acts, default=0.0) for _, acts in windows), default=0.0)
        scale = 10.0 / top if top > 0 else 0.0  # true activations on the 0-10 scale shown
        results = await gather_or_fail(
            self.name,
            explanation.latent,
            (self._simulate(client, explanation, toks, seed) for toks, _ in windows),
        )
        return self._assemble(explanation, items, windows, scale, results, skipped, client, seed)

    def _assemble(
        self,
        explanation: Explanation,
        items: Sequence[Item],
        windows: Sequence[tuple[list[str], list[float]]],
        scale: float,
        results: Sequence[Any],
        skipped: int,
        client: LLMClient,
        seed: int,
    ) -> Score:
        predictions: list[Prediction] = []
        per_token: dict[str, list[float]] = {}
        simulated: list[float] = []
        true: list[float] = []
        per_example: list[float] = []
        responses: list[ChatResponse] = []
        reasons: list[str] = []
        failed_attempts = 0
        for item, (_, acts), result in zip(items, windows, results, strict=True):
            values, item_responses, reason, attempts = result
            responses += item_responses
            failed_attempts += attempts
            actual = [a * scale for a in acts]
            if values is None:
                reasons.append(reason)
                predictions.append(
                    Prediction(
                        item.example_id, None, max(actual, default=0.0), quantile=item.quantile
                    )
                )
                continue
            per_token[str(item.example_id)] = [round(v, 4) for v in values]
            simulated += values
            true += actual
            if (r := pearson(values, actual)) is not None:
                per_example.append(r)
            predictions.append(
                Prediction(
                    item.example_id,
                    max(values, default=0.0),
                    max(actual, default=0.0),
                    quantile=item.quantile,
                )
            )
        metrics: dict[str, float] = {}
        if (r := pearson(simulated, true)) is not None:
            metrics["correlation"] = r
        if per_example:
            metrics["mean_example_correlation"] = float(np.mean(per_example))
        meta = {
            "prompt": self.template.id,
            "prompt_sha256": self.template.sha256[:16],
            "token_predictions": per_token,
            "parse_failures": reasons,
            "model": client.model,
            "client": client.name,
            "seed": seed,
            **usage_meta(responses, len(items), failed_attempts),
        }
        if simulated and "correlation" not in metrics:
            meta["undefined"] = "constant predictions or activations: correlation undefined"
        return make_score(
            self.name,
            explanation,
            predictions,
            headline="correlation",
            metrics=metrics,
            skipped=skipped,
            meta=meta,
        )
