"""Intervention: steer the subject model along the latent's decoder direction and ask the LLM, given
the explanation, which of two continuations of a neutral prompt was steered. Output-side latents,
which explain poorly from their activating examples, get a score too.

Per prompt: a greedy continuation without and with ``Add(site, vector=direction * strength)`` at
every position (``strength`` in units of the site's mean activation norm on the prompts when
``relative``). The two texts are shown in seeded random order. Each text gets P(judged steered):
from the answer token's logprobs when available, else 1 or 0. Headline: AUROC of steered (1)
against unsteered (0) texts. Identical continuations (no visible effect) are not asked about and
tie at 0.5.

The direction comes with the call: ``score(..., adapter=adapter, direction=vector)``; the site is
the config's ``site``, else ``site=``, else the part of the latent's source key after the last
``/`` (``sae/resid_post.6`` -> ``resid_post.6``).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from autointerp.llm import (
    ChatResponse,
    LLMClient,
    LLMError,
    ParseError,
    SamplingParams,
    TokenLogprob,
    UnparseableResponseError,
    chat_parsed,
    wrap,
)
from autointerp.prompts import clean
from autointerp.types import Example, Explanation, Prediction, Score
from autointerp_scorers.common import (
    ScoringFailedError,
    gather_or_fail,
    load_prompt,
    make_score,
    usage_meta,
)
from autointerp_scorers.metrics import auroc
from autointerp_scorers.plugin import InterventionConfig

_ANSWER = re.compile(r"answer\W*([AB])\b", re.IGNORECASE)


def parse_choice(text: str) -> str:
    """ "A" or "B": the last "Answer: X", else a reply that is just the letter."""
    found = _ANSWER.findall(text)
    if found:
        return found[-1].upper()
    bare = text.strip().strip(" .*`\"'()").upper()
    if bare in ("A", "B", "TEXT A", "TEXT B"):
        return bare[-1]
    raise ParseError('reply with "Answer: A" or "Answer: B"')


def choice_probability(logprobs: Sequence[TokenLogprob] | None) -> float | None:
    """P(A) against B from the last A/B answer token's alternatives; None if there is none."""
    slots = [t for t in logprobs or () if t.token.strip(" :*\"'()").upper() in ("A", "B")]
    if not slots:
        return None
    slot = slots[-1]
    weights = {"A": 0.0, "B": 0.0}
    # the top list includes the chosen token (perhaps spelled with a space): never add it twice
    for tok, lp in slot.top or ((slot.token, slot.logprob),):
        letter = tok.strip(" :*\"'()").upper()
        if letter in weights:
            weights[letter] += math.exp(lp)
    total = weights["A"] + weights["B"]
    return weights["A"] / total if total > 0 else None


def site_for(latent_source: str, configured: str, given: str | None) -> str:
    return configured or given or latent_source.rsplit("/", 1)[-1]


def steering_vector(
    adapter: Any, site: str, direction: Any, prompts: Sequence[str], strength: float, relative: bool
) -> Any:
    """``direction`` at unit length times ``strength`` (times the site's mean activation norm on
    the prompts, first tokens left out, when ``relative``)."""
    import torch

    width = adapter.site(site).shape[-1]
    vector = torch.as_tensor(np.asarray(direction, dtype=np.float32)).flatten()
    if vector.numel() != width:
        raise ValueError(f"direction has {vector.numel()} values but {site} has width {width}")
    norm = float(vector.norm())
    if norm == 0:
        return vector
    scale = strength
    if relative:
        norms = []
        with torch.inference_mode():
            for prompt in prompts:
                ids = adapter.tokenizer(prompt, return_tensors="pt")["input_ids"]
                acts = adapter.forward(ids, capture=[site], return_logits=False).captures[site]
                acts = acts[0, 1:] if acts.shape[1] > 1 else acts[0]  # a BOS can be outsized
                norms.append(acts.float().norm(dim=-1).mean().item())
        scale *= float(np.mean(norms))
    return vector / norm * scale


def continue_greedy(
    adapter: Any, prompt: str, new_tokens: int, interventions: Sequence[Any] = ()
) -> str:
    """A greedy continuation of ``prompt`` (the interventions applied at every position)."""
    import torch

    ids = adapter.tokenizer(prompt, return_tensors="pt")["input_ids"]
    start = ids.shape[1]
    with torch.inference_mode():
        for _ in range(new_tokens):
            logits = adapter.forward(ids, interventions=interventions).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return adapter.tokenizer.decode(ids[0, start:].tolist(), skip_special_tokens=True)


def continuations(
    adapter: Any, site: str, vector: Any, prompts: Sequence[str], new_tokens: int
) -> list[tuple[str, str]]:
    """(unsteered, steered) continuation of each prompt."""
    from autointerp.adapter import Add

    steer = [Add(site, vector=vector)]
    return [
        (continue_greedy(adapter, p, new_tokens), continue_greedy(adapter, p, new_tokens, steer))
        for p in prompts
    ]


class InterventionScorer:
    name = "intervention"
    needs: frozenset[str] = frozenset({"llm", "adapter", "direction"})

    def __init__(self, config: InterventionConfig) -> None:
        self.config = config
        self.template = load_prompt(config.prompt or "intervention.v1")
        self.prompt_version = self.template.id

    def params(self, seed: int) -> SamplingParams:
        c = self.config
        return SamplingParams(
            temperature=c.temperature,
            max_tokens=12,
            seed=seed,
            logprobs=c.logprobs,
            top_logprobs=c.top_logprobs if c.logprobs else 0,
        )

    async def _judge(
        self, client: LLMClient, explanation: Explanation, prompt: str, a: str, b: str, seed: int
    ) -> tuple[float | None, list[ChatResponse], str, int]:
        """P(A is the steered text) (1/0 without logprobs), or None with the parse failure."""
        messages = self.template.messages(
            explanation=explanation.text,
            prompt=clean(prompt),
            text_a=clean(a).strip(),
            text_b=clean(b).strip(),
        )
        try:
            choice, responses = await chat_parsed(
                client,
                messages,
                parse_choice,
                self.params(seed),
                max_reasks=self.config.max_reasks,
                reask=self.template.reask,
            )
        except UnparseableResponseError as exc:  # paid for all the same: its calls count
            return None, list(exc.responses), str(exc), exc.attempts - len(exc.responses)
        p_a = choice_probability(responses[-1].logprobs) if self.config.logprobs else None
        if p_a is None or (p_a >= 0.5) != (choice == "A"):
            p_a = 1.0 if choice == "A" else 0.0
        return p_a, responses, "", 0

    async def score(
        self,
        explanation: Explanation,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        llm: Any,
        *,
        seed: int = 0,
        adapter: Any = None,
        direction: Any = None,
        site: str | None = None,
    ) -> Score:
        latent = explanation.latent
        if llm is None or adapter is None:
            raise ScoringFailedError(self.name, latent, "needs an LLM client and a model adapter")
        if direction is None:
            raise ScoringFailedError(
                self.name, latent, "needs the latent's decoder direction (direction=)"
            )
        c = self.config
        site_name = site_for(latent.source, c.site, site)
        try:
            adapter.site(site_name)
            vector = await asyncio.to_thread(
                steering_vector, adapter, site_name, direction, c.prompts, c.strength, c.relative
            )
            pairs = await asyncio.to_thread(
                continuations, adapter, site_name, vector, c.prompts, c.new_tokens
            )
        except (ValueError, LLMError) as exc:
            raise ScoringFailedError(self.name, latent, str(exc)) from None
        except Exception as exc:  # adapter errors (unknown site ...) carry one-line messages
            if type(exc).__module__.startswith("autointerp"):
                raise ScoringFailedError(self.name, latent, str(exc)) from None
            raise

        client = wrap(llm)
        rng = random.Random(f"{self.name}:{latent}:{seed}")
        steered_first = [rng.random() < 0.5 for _ in pairs]
        jobs = []
        for i, ((plain, steered), first) in enumerate(zip(pairs, steered_first, strict=True)):
            if plain == steered:
                continue
            a, b = (steered, plain) if first else (plain, steered)
            jobs.append((i, self._judge(client, explanation, c.prompts[i], a, b, seed)))
        results = await gather_or_fail(self.name, latent, (job for _, job in jobs))

        judged = {i: r for (i, _), r in zip(jobs, results, strict=True)}
        predictions: list[Prediction] = []
        responses: list[ChatResponse] = []
        reasons: list[str] = []
        failed_attempts = 0
        correct: list[bool] = []
        for i, first in enumerate(steered_first):
            if i not in judged:  # identical texts: nothing to tell apart, a tie
                predictions += [
                    Prediction(2 * i, 0.5, 0.0, 0.5),
                    Prediction(2 * i + 1, 0.5, 1.0, 0.5),
                ]
                continue
            p_a, item_responses, reason, attempts = judged[i]
            responses += item_responses
            failed_attempts += attempts
            if p_a is None:
                reasons.append(reason)
                predictions += [Prediction(2 * i, None, 0.0), Prediction(2 * i + 1, None, 1.0)]
                continue
            p_steered = p_a if first else 1.0 - p_a
            correct.append(p_steered >= 0.5)
            predictions += [
                Prediction(2 * i, float(p_steered < 0.5), 0.0, 1.0 - p_steered),
                Prediction(2 * i + 1, float(p_steered >= 0.5), 1.0, p_steered),
            ]
        scored = [p for p in predictions if p.predicted is not None]
        metrics: dict[str, float] = {"n_identical": float(len(pairs) - len(jobs))}
        if (
            value := auroc([p.actual for p in scored], [p.probability or 0.0 for p in scored])
        ) is not None:
            metrics["auroc"] = value
        if correct:
            metrics["accuracy"] = float(np.mean(correct))
        meta = {
            "prompt": self.template.id,
            "prompt_sha256": self.template.sha256[:16],
            "site": site_name,
            "strength": c.strength,
            "relative": c.relative,
            "continuations": [
                {"prompt": p, "unsteered": plain, "steered": steered}
                for p, (plain, steered) in zip(c.prompts, pairs, strict=True)
            ],
            "parse_failures": reasons,
            "model": client.model,
            "client": client.name,
            "seed": seed,
            **usage_meta(responses, len(jobs), failed_attempts),
        }
        return make_score(
            self.name,
            explanation,
            predictions,
            headline="auroc",
            metrics=metrics,
            skipped=0,
            meta=meta,
        )
