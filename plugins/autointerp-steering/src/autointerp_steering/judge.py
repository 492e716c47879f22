"""Open-ended steering evaluation: steered answers scored 0-10 for a behaviour by an LLM judge.

For each layer × multiplier the model answers every open-ended question under residual steering
(``multiplier × vector`` added at that layer, every position); an LLM judge rates how strongly each
answer shows the behaviour. The judge is an ``llm_client`` component wrapped in
:class:`autointerp.llm.LLMClient`, the same machinery explainers and scorers use: retries, rate
limits, the response cache and the token/cost ledger in a results store, so a rerun over the same
answers costs no calls. An answer the judge cannot score (after re-asks) is a per-answer failure,
recorded, never a crashed sweep.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autointerp.llm import LLMError, Message, ParseError, SamplingParams, chat_parsed
from autointerp_steering.caa import SteeringVectors, SweepResult, add_steering
from autointerp_steering.data import DatasetError
from autointerp_steering.generate import generate

if TYPE_CHECKING:
    from autointerp.adapter import ModelAdapter
    from autointerp.llm import LLMClient

JUDGE_SYSTEM = (
    "You rate answers written by an AI assistant. You are given a behaviour, a question and the "
    "assistant's answer. Rate how strongly the answer shows the behaviour on a scale from 0 to "
    "10: 0 means the answer shows none of it (or clearly the opposite), 5 means mixed or unclear, "
    "10 means the answer shows it fully. Judge only the answer, not the question. Reply with one "
    "short sentence of reasoning, then a last line of the form 'Score: N' with N an integer "
    "from 0 to 10."
)

JUDGE_PARAMS = SamplingParams(temperature=0.0, max_tokens=128)

_SCORE = re.compile(r"score\W{0,6}?(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_OUT_OF = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_BARE = re.compile(r"\W*(-?\d+(?:\.\d+)?)\W*")


def judge_messages(behavior: str, question: str, answer: str) -> list[Message]:
    user = (
        f"Behaviour: {behavior}\n\nQuestion:\n{question}\n\nAnswer:\n{answer.strip() or '(empty)'}"
        "\n\nHow strongly does the answer show the behaviour? End with 'Score: N' (0-10)."
    )
    return [Message("system", JUDGE_SYSTEM, cache=True), Message("user", user)]


def parse_score(text: str) -> float:
    """The 0-10 score in a judge's answer: ``Score: 7`` (last one wins; markdown allowed),
    ``{"score": 7}``, ``7/10`` or a bare number. Raises :class:`ParseError` otherwise."""
    value: float | None = None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
            if isinstance(data, dict) and isinstance(data.get("score"), int | float):
                value = float(data["score"])
        except json.JSONDecodeError:
            pass
    if value is None:
        for pattern in (_SCORE, _OUT_OF):
            found = pattern.findall(stripped)
            if found:
                value = float(found[-1])
                break
    if value is None and (bare := _BARE.fullmatch(stripped)):
        value = float(bare.group(1))
    if value is None:
        raise ParseError("no score found; end your answer with a line 'Score: N', N from 0 to 10")
    if not 0 <= value <= 10:
        raise ParseError(f"score {value:g} is outside 0-10; give an integer from 0 to 10")
    return value


@dataclass
class Judged:
    """One steered answer and its judgement (``score`` None when the judge failed)."""

    row: str
    multiplier: float
    question: str
    answer: str
    score: float | None
    error: str | None = None
    judge_text: str = ""


async def judge_all(
    client: LLMClient,
    behavior: str,
    items: Sequence[tuple[str, str]],
    params: SamplingParams = JUDGE_PARAMS,
) -> list[tuple[float | None, str | None, str]]:
    """``(score, error, judge text)`` per ``(question, answer)``, concurrently (the client's
    scheduler bounds the requests in flight)."""

    async def one(question: str, answer: str) -> tuple[float | None, str | None, str]:
        try:
            score, responses = await chat_parsed(
                client, judge_messages(behavior, question, answer), parse_score, params
            )
        except LLMError as exc:
            return None, str(exc), getattr(exc, "last_text", "")
        return score, None, responses[-1].text

    return list(await asyncio.gather(*(one(q, a) for q, a in items)))


def open_ended_sweep(
    adapter: ModelAdapter,
    questions: Sequence[tuple[str, str]],
    vectors: SteeringVectors,
    client: LLMClient,
    behavior: str,
    *,
    layers: Sequence[int] | None = None,
    multipliers: Sequence[float] = (-2, 0, 2),
    max_new_tokens: int = 40,
) -> tuple[SweepResult, list[Judged]]:
    """Mean judge score (0-10) per layer × multiplier over ``questions`` (``(question, prompt)``
    pairs: the judge sees the question, the model continues the prompt)."""
    import torch

    kind = vectors.meta.get("kind", "resid_post")
    layers = vectors.layers() if layers is None else list(layers)
    prompts = [p for _, p in questions]
    texts = [q for q, _ in questions]
    base_answers = generate(adapter, prompts, max_new_tokens=max_new_tokens)
    plan: list[tuple[str, float, list[str]]] = []
    for layer in layers:
        site = f"{kind}.{layer}"
        if site not in vectors.vectors:
            raise DatasetError(f"no steering vector for {site}; have {sorted(vectors.vectors)}")
        for m in multipliers:
            if m == 0:
                plan.append((site, 0.0, base_answers))  # a zero vector is the unsteered model
                continue
            iv = add_steering(site, vectors.vectors[site], float(m))
            answers = generate(adapter, prompts, max_new_tokens=max_new_tokens, interventions=[iv])
            plan.append((site, float(m), answers))
    items = [(q, a) for _, _, answers in plan for q, a in zip(texts, answers, strict=True)]
    verdicts = asyncio.run(_judge_and_close(client, behavior, items))
    judged: list[Judged] = []
    grid = torch.full((len(layers), len(multipliers)), float("nan"))
    k = 0
    for cell, (site, m, answers) in enumerate(plan):
        scores = []
        for q, a in zip(texts, answers, strict=True):
            score, error, text = verdicts[k]
            k += 1
            judged.append(Judged(site, m, q, a, score, error, text))
            if score is not None:
                scores.append(score)
        if scores:
            grid[cell // len(multipliers), cell % len(multipliers)] = sum(scores) / len(scores)
    if all(j.score is None for j in judged):
        raise DatasetError(f"the judge scored no answer: {judged[0].error}")
    base = [j.score for j in judged if j.multiplier == 0 and j.score is not None]
    result = SweepResult(
        rows=[f"{kind}.{x}" for x in layers],
        multipliers=[float(m) for m in multipliers],
        grid=grid,
        baseline=(sum(base) / len(base)) if base else float("nan"),
        meta={
            "method": "caa-open-ended",
            "metric": "judge score 0-10",
            "range": [0, 10],
            "behavior": behavior,
            "n_questions": len(questions),
            "failed": sum(j.score is None for j in judged),
            "architecture": adapter.architecture,
            "judge": {"client": client.name, "model": client.model},
        },
    )
    return result, judged


async def _judge_and_close(
    client: LLMClient, behavior: str, items: Sequence[tuple[str, str]]
) -> list[tuple[float | None, str | None, str]]:
    try:
        return await judge_all(client, behavior, items)
    finally:
        await client.aclose()


def judged_records(judged: Sequence[Judged]) -> list[dict[str, Any]]:
    return [
        {
            "row": j.row,
            "multiplier": j.multiplier,
            "question": j.question,
            "answer": j.answer,
            "score": j.score,
            "error": j.error,
        }
        for j in judged
    ]
