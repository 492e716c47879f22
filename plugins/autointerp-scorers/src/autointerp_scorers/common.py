"""What the scorers share: prompt templates from files, example windows and marking, the examples a
scorer may use, batched 0/1 classification through an LLM (answers, logprobs, re-asks), and the
assembly of a :class:`~autointerp.types.Score`.

Every scorer is built from its config and called as
``await scorer.score(explanation, examples, negatives, llm, *, seed=0, adapter=None)``.
``Prediction.example_id`` indexes ``[*examples, *negatives]`` as passed in. An example whose
``key`` is in ``explanation.meta["exclude_from_scoring"]`` (shown to the explainer) is skipped.
A scorer that cannot score at all raises :class:`ScoringFailedError`; an answer that cannot be
parsed is a counted failure (``predicted=None``), never a guess.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template
from typing import Any

from autointerp.llm import (
    ChatResponse,
    LLMClient,
    LLMError,
    Message,
    ParseError,
    SamplingParams,
    TokenLogprob,
    UnparseableResponseError,
    chat_parsed,
    wrap,
)
from autointerp.types import Example, Explanation, LatentRef, Prediction, Score
from autointerp_scorers.metrics import binary_metrics


class ScoringFailedError(LLMError):
    """A scorer could not score a latent at all (no LLM answer, no model): recorded as a failure
    and retried by a resumed run, never turned into a number."""

    kind = "scoring_failed"

    def __init__(self, scorer: str, latent: LatentRef, reason: str) -> None:
        super().__init__(f"{scorer} on {latent}: {reason}")
        self.scorer = scorer
        self.latent = latent
        self.reason = reason


# -- prompt templates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorerPrompt:
    """A versioned prompt file: system text and few-shot turns (a byte-identical stable prefix for
    every latent, so provider prefix caches hit), then the turn template."""

    name: str
    version: int
    system: str
    few_shot: tuple[tuple[str, str], ...]
    turn: Template
    reask: str
    sha256: str

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"

    def prefix(self) -> list[Message]:
        out = [Message("system", self.system, cache=not self.few_shot)]
        for i, (user, assistant) in enumerate(self.few_shot):
            out += [
                Message("user", user),
                Message("assistant", assistant, cache=i == len(self.few_shot) - 1),
            ]
        return out

    def messages(self, **fields: Any) -> list[Message]:
        return [*self.prefix(), Message("user", self.turn.substitute(fields))]


@cache
def load_prompt(prompt_id: str) -> ScorerPrompt:
    """``prompts/<name>.v<version>.toml`` shipped with this package."""
    folder = files("autointerp_scorers").joinpath("prompts")
    try:
        raw = folder.joinpath(f"{prompt_id}.toml").read_bytes()
    except FileNotFoundError:
        known = sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if ".toml" in p.name)
        raise LLMError(f"no scorer prompt '{prompt_id}'; available: {', '.join(known)}") from None
    data = tomllib.loads(raw.decode("utf-8"))
    return ScorerPrompt(
        name=data["name"],
        version=int(data["version"]),
        system=data["system"],
        few_shot=tuple((s["user"], s["assistant"]) for s in data.get("few_shot", ())),
        turn=Template(data["turn"]["user"]),
        reask=data.get("reask", "Your answer could not be used: {error}"),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


# -- examples --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One example as a scorer uses it: its id in ``[*examples, *negatives]`` and the truth."""

    example_id: int
    example: Example
    actual: float


def select(
    explanation: Explanation, examples: Sequence[Example], negatives: Sequence[Example]
) -> tuple[list[Item], int]:
    """The activating (actual 1) and non-activating (actual 0) examples to score, and how many
    were skipped because the explainer was shown them."""
    shown = set(explanation.meta.get("exclude_from_scoring", ()) or ())
    items: list[Item] = []
    skipped = 0
    for i, (example, actual) in enumerate(
        [(e, 1.0) for e in examples] + [(e, 0.0) for e in negatives]
    ):
        if example.key in shown:
            skipped += 1
        else:
            items.append(Item(i, example, actual))
    return items, skipped


def clean(token: str) -> str:
    """A token made safe for a one-line, ``<<marked>>`` rendering."""
    return token.replace("\n", "\\n").replace("<<", "< <").replace(">>", "> >")


def render(tokens: Sequence[str], marks: Sequence[bool] | None = None) -> str:
    """Tokens as one line, runs of marked tokens wrapped in ``<<...>>`` (after leading spaces)."""
    text, inside = "", False
    for i, raw in enumerate(tokens):
        tok = clean(raw)
        marked = bool(marks[i]) if marks is not None else False
        if marked and not inside:
            body = tok.lstrip()
            text, tok, inside = text + tok[: len(tok) - len(body)] + "<<", body, True
        elif not marked and inside:
            text, inside = text + ">>", False
        text += tok
    return (text + (">>" if inside else "")).strip()


# -- 0/1 answers -----------------------------------------------------------------------------------

_YES = {"1", "yes", "true", "y"}
_NO = {"0", "no", "false", "n"}
_LIST = re.compile(r"\[([^\[\]]*)\]")
_PUNCT = " \t\n\"'[](),.:;{}*`"


def parse_binary(text: str, n: int) -> list[int]:
    """``n`` 0/1 answers from a reply: the last ``[...]`` list (JSON ``{"answers": [...]}``
    included), else a reply made only of 0/1 words. Raises :class:`ParseError`."""
    lists = _LIST.findall(text)
    if lists:
        words = [w for w in re.split(r"[\s,]+", lists[-1]) if w.strip(_PUNCT)]
    else:
        body = re.sub(r"^\W*answers?\W*", "", text.strip(), flags=re.IGNORECASE)
        words = [w for w in re.split(r"[\s,]+", body) if w.strip(_PUNCT)]
    if not words:
        raise ParseError(f"no list of {n} answers (0 or 1) found")
    answers = []
    for word in words:
        w = word.strip(_PUNCT).lower()
        if w in _YES:
            answers.append(1)
        elif w in _NO:
            answers.append(0)
        else:
            raise ParseError(f"{word!r} is not an answer; use 1 or 0")
    if len(answers) != n:
        raise ParseError(f"expected {n} answers, one per example, but got {len(answers)}")
    return answers


def binary_probabilities(logprobs: Sequence[TokenLogprob] | None, n: int) -> list[float] | None:
    """P(answer is 1) for each of the ``n`` answers, from the answer tokens' top alternatives;
    None when the tokens cannot be matched one-to-one with the answers."""
    if not logprobs:
        return None
    slots = [t for t in logprobs if t.token.strip(_PUNCT).lower() in _YES | _NO]
    if len(slots) != n:
        return None
    out = []
    for slot in slots:
        yes = no = 0.0
        alternatives = slot.top or ((slot.token, slot.logprob),)  # top holds the chosen token
        for tok, lp in alternatives:
            word = tok.strip(_PUNCT).lower()
            if word in _YES:
                yes += math.exp(lp)
            elif word in _NO:
                no += math.exp(lp)
        if yes + no <= 0:
            return None
        out.append(yes / (yes + no))
    return out


def answers_schema(n: int) -> dict[str, Any]:
    """JSON schema of ``{"answers": [n times 0 or 1]}`` for clients with structured output."""
    return {
        "type": "object",
        "properties": {
            "answers": {
                "type": "array",
                "items": {"type": "integer", "enum": [0, 1]},
                "minItems": n,
                "maxItems": n,
            }
        },
        "required": ["answers"],
        "additionalProperties": False,
    }


def usage_meta(responses: Sequence[ChatResponse], prompts: int, failed_attempts: int = 0) -> dict:
    """Calls, re-asks, tokens and cost of a score's answered prompts (``failed_attempts``: the
    requests of prompts that ended unparseable, whose responses are not kept)."""
    requests = len(responses) + failed_attempts
    return {
        "llm_calls": [r.request_hash for r in responses],
        "llm_requests": requests,
        "reasks": requests - prompts,
        "prompt_tokens": sum(r.prompt_tokens for r in responses),
        "completion_tokens": sum(r.completion_tokens for r in responses),
        "cost_usd": sum(r.cost_usd for r in responses),
        "from_cache": bool(responses) and all(r.from_cache for r in responses),
    }


# -- assembling a score ----------------------------------------------------------------------------


def make_score(
    scorer: str,
    explanation: Explanation,
    predictions: Sequence[Prediction],
    *,
    headline: str,
    metrics: dict[str, float],
    skipped: int,
    meta: dict[str, Any],
) -> Score:
    """The :class:`Score`: ``metrics[headline]`` as value (None if undefined), failure counts and
    the exclusion rate added to the metrics."""
    failures = sum(1 for p in predictions if p.predicted is None)
    total = len(predictions)
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics |= {
        "n_scored": float(total - failures),
        "n_failures": float(failures),
        "exclusion_rate": failures / total if total else 0.0,
        "n_skipped_shown": float(skipped),
    }
    return Score(
        latent=explanation.latent,
        scorer=scorer,
        explainer=explanation.explainer,
        value=metrics.get(headline),
        metrics=metrics,
        predictions=tuple(sorted(predictions, key=lambda p: p.example_id)),
        n_failures=failures,
        meta=meta,
    )


@dataclass(frozen=True)
class Shown:
    """One example as shown in a classification prompt, and the right answer."""

    item: Item
    text: str
    actual: float


class BinaryLLMScorer:
    """Shows several examples per prompt and asks for one 0/1 answer each (detection, fuzzing)."""

    name = "binary"
    default_prompt = ""
    needs: frozenset[str] = frozenset({"llm"})

    def __init__(self, config: Any) -> None:
        self.config = config
        self.template = load_prompt(config.prompt or self.default_prompt)

    def shown(self, items: Sequence[Item], rng: random.Random) -> list[Shown]:
        raise NotImplementedError

    def params(self, n: int, seed: int) -> SamplingParams:
        c = self.config
        return SamplingParams(
            temperature=c.temperature,
            max_tokens=16 + 4 * n,
            seed=seed,
            logprobs=c.logprobs,
            top_logprobs=c.top_logprobs if c.logprobs else 0,
            json_schema=answers_schema(n) if c.structured else None,
        )

    async def _ask(
        self, client: LLMClient, explanation: Explanation, batch: Sequence[Shown], seed: int
    ) -> tuple[list[int] | None, list[float] | None, list[ChatResponse], str, int]:
        """Answers, P(1)s and responses for one prompt; if unparseable: (None, None, [], reason,
        attempts)."""
        n = len(batch)
        listing = "\n".join(f"Example {i}: {s.text}" for i, s in enumerate(batch, 1))
        messages = self.template.messages(
            explanation=explanation.text, examples=listing, count=str(n)
        )
        parse: Callable[[str], list[int]] = lambda text: parse_binary(text, n)  # noqa: E731
        try:
            answers, responses = await chat_parsed(
                client,
                messages,
                parse,
                self.params(n, seed),
                max_reasks=self.config.max_reasks,
                reask=self.template.reask.replace("$count", str(n)),
            )
        except UnparseableResponseError as exc:
            return None, None, [], str(exc), exc.attempts
        probabilities = binary_probabilities(responses[-1].logprobs, n)
        if probabilities is not None and any(
            (p >= 0.5) != bool(a) for p, a in zip(probabilities, answers, strict=True)
        ):
            probabilities = None  # logprobs that disagree with the text belong to other tokens
        return answers, probabilities, responses, "", 0

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
        items, skipped = select(explanation, examples, negatives)
        if not items:
            raise ScoringFailedError(self.name, explanation.latent, "no examples left to score")
        rng = random.Random(f"{self.name}:{explanation.latent}:{seed}")
        shown = self.shown(items, rng)
        rng.shuffle(shown)  # activating and non-activating mixed in every prompt
        size = self.config.batch_size
        batches = [shown[i : i + size] for i in range(0, len(shown), size)]
        results = await asyncio.gather(
            *(self._ask(client, explanation, b, seed) for b in batches), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, LLMError):
                raise error
        if errors:  # no answer at all (not a bad answer): retry the latent later, score nothing
            raise ScoringFailedError(self.name, explanation.latent, str(errors[0]))

        predictions: list[Prediction] = []
        responses: list[ChatResponse] = []
        reasons: list[str] = []
        failed_attempts = 0
        for batch, result in zip(batches, results, strict=True):
            assert not isinstance(result, BaseException)
            answers, probabilities, batch_responses, reason, attempts = result
            responses += batch_responses
            failed_attempts += attempts
            if reason:
                reasons.append(reason)
            for j, s in enumerate(batch):
                predictions.append(
                    Prediction(
                        example_id=s.item.example_id,
                        predicted=None if answers is None else float(answers[j]),
                        actual=s.actual,
                        probability=None if probabilities is None else probabilities[j],
                    )
                )
        scored = [p for p in predictions if p.predicted is not None]
        with_probability = all(p.probability is not None for p in scored) and bool(scored)
        metrics = (
            binary_metrics(
                [p.actual for p in scored],
                [p.predicted or 0.0 for p in scored],
                [p.probability or 0.0 for p in scored] if with_probability else None,
            )
            if scored
            else {}
        )
        meta = {
            "prompt": self.template.id,
            "prompt_sha256": self.template.sha256[:16],
            "batches": len(batches),
            "parse_failures": reasons,
            "model": client.model,
            "client": client.name,
            "seed": seed,
            **usage_meta(responses, len(batches), failed_attempts),
        }
        return make_score(
            self.name,
            explanation,
            predictions,
            headline="balanced_accuracy",
            metrics=metrics,
            skipped=skipped,
            meta=meta,
        )
