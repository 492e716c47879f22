"""What the scorers share: their prompt templates (read by :mod:`autointerp.prompts`), the examples
a scorer may use, concurrent LLM requests that fail a latent together, batched 0/1 classification
through an LLM (answers, logprobs, re-asks), and the assembly of a :class:`~autointerp.types.Score`.

Every scorer is built from its config and called as
``await scorer.score(explanation, examples, negatives, llm, *, seed=0, adapter=None)``.
``Prediction.example_id`` indexes ``[*examples, *negatives]`` as passed in, and
``Prediction.quantile`` is that example's activation quantile (None for negatives), so accuracy
per quantile can be read from the predictions alone. An example whose
``key`` is in ``explanation.meta["exclude_from_scoring"]`` (shown to the explainer) is skipped.
A scorer that cannot score at all raises :class:`ScoringFailedError`; an answer that cannot be
parsed is a counted failure (``predicted=None``), never a guess.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any, NamedTuple, TypeVar, cast

from autointerp.components import NotScorable
from autointerp.llm import (
    ChatResponse,
    EndpointUnavailableError,
    LLMClient,
    LLMError,
    ParseError,
    SamplingParams,
    TokenLogprob,
    UnparseableResponseError,
    chat_parsed,
    wrap,
)
from autointerp.prompts import PromptTemplate, load_template, numbered
from autointerp.prompts import clean as clean  # moved to core; still importable from here
from autointerp.prompts import render as render
from autointerp.types import Example, Explanation, LatentRef, Prediction, Score
from autointerp_scorers.metrics import binary_metrics

T = TypeVar("T")


class ScoringFailedError(LLMError):
    """A scorer could not score a latent at all (no LLM answer, no model): recorded as a failure
    and retried by a resumed run, never turned into a number."""

    kind = "scoring_failed"

    def __init__(self, scorer: str, latent: LatentRef, reason: str) -> None:
        super().__init__(f"{scorer} on {latent}: {reason}")
        self.scorer = scorer
        self.latent = latent
        self.reason = reason


async def gather_or_fail(scorer: str, latent: LatentRef, jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``jobs`` concurrently; their results in order. If any raised, the latent is not
    scored: a bug (not an :class:`~autointerp.llm.LLMError`) or a given-up endpoint
    (:class:`~autointerp.llm.EndpointUnavailableError`, which ends the run) is re-raised, and an
    LLM that gave no answer at all (not a bad answer) becomes :class:`ScoringFailedError`, so a
    resumed run retries the latent."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if isinstance(error, EndpointUnavailableError) or not isinstance(error, LLMError):
            raise error
    if errors:
        raise ScoringFailedError(scorer, latent, str(errors[0]))
    return cast("list[T]", results)


# -- prompt templates ------------------------------------------------------------------------------


def load_prompt(prompt_id: str) -> PromptTemplate:
    """``prompts/<name>.v<version>.toml`` shipped with this package."""
    return load_template("autointerp_scorers", prompt_id)


# -- examples --------------------------------------------------------------------------------------


class Item(NamedTuple):
    """One example as a scorer uses it: its id in ``[*examples, *negatives]`` and the truth (a
    named tuple: built for every example of every score, faster than a frozen dataclass)."""

    example_id: int
    example: Example
    actual: float

    @property
    def quantile(self) -> int | None:
        """The example's activation quantile (None for a negative): every prediction carries it."""
        return self.example.quantile


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
        if shown and example.key in shown:  # no key to compute when nothing was shown
            skipped += 1
        else:
            items.append(Item(i, example, actual))
    return items, skipped


def scorable_items(
    scorer: str, explanation: Explanation, examples: Sequence[Example], negatives: Sequence[Example]
) -> tuple[list[Item], int]:
    """:func:`select`, refusing what no score can be made of: nothing left (a failure), or no
    held-out activating example (:class:`~autointerp.components.NotScorable`: accuracy over
    negatives alone would be a number that means nothing)."""
    items, skipped = select(explanation, examples, negatives)
    if not items:
        raise ScoringFailedError(scorer, explanation.latent, "no examples left to score")
    if not any(item.actual for item in items):
        raise NotScorable("no held-out activating examples (the latent fires too rarely)")
    return items, skipped


# -- 0/1 answers -----------------------------------------------------------------------------------

_YES = {"1", "yes", "true", "y"}
_NO = {"0", "no", "false", "n"}
_LIST = re.compile(r"\[([^\[\]]*)\]")
_WORD = re.compile(r"[^\s,]+")
_PUNCT = " \t\n\"'[](),.:;{}*`"
# `"12": 1`, `12: yes`, `Example 12 - 0` (JSON or a text fallback), one answer each
_KEYED = re.compile(
    r"(?:example\s*)?[\"']?(\d+)[\"']?\s*[:=\-]\s*[\"']?(yes|no|true|false|1|0)\b[\"']?",
    re.IGNORECASE,
)

Span = tuple[int, int]


@dataclass(frozen=True)
class Answers:
    """0/1 answers parsed from a reply, one per example (None: that example got no answer), with
    where each answer stands in the reply's text (to find its token's logprobs)."""

    values: tuple[int | None, ...]
    spans: tuple[Span | None, ...]


@lru_cache(maxsize=1 << 14)  # top alternatives repeat: " 1", "0", " yes" ... in every reply
def _word_value(word: str) -> int | None:
    w = word.strip(_PUNCT).lower()
    return 1 if w in _YES else 0 if w in _NO else None


def parse_list(text: str, n: int) -> Answers:
    """``n`` 0/1 answers from a reply: the last ``[...]`` list (JSON ``{"answers": [...]}``
    included), else a reply made only of 0/1 words. Raises :class:`ParseError`."""
    found = list(_LIST.finditer(text))
    if found:
        offset, body = found[-1].start(1), found[-1].group(1)
    else:
        head = re.match(r"^\W*answers?\W*", text, flags=re.IGNORECASE)
        offset = head.end() if head else 0
        body = text[offset:]
    words = [(m.group(), m.start() + offset) for m in _WORD.finditer(body)]
    words = [(w, at) for w, at in words if w.strip(_PUNCT)]
    if not words:
        raise ParseError(f"no list of {n} answers (0 or 1) found")
    values, spans = [], []
    for word, at in words:
        value = _word_value(word)
        if value is None:
            raise ParseError(f"{word!r} is not an answer; use 1 or 0")
        lead = len(word) - len(word.lstrip(_PUNCT))
        core = len(word.strip(_PUNCT))
        values.append(value)
        spans.append((at + lead, at + lead + core))
    if len(values) != n:
        raise ParseError(f"expected {n} answers, one per example, but got {len(values)}")
    return Answers(tuple(values), tuple(spans))


def parse_binary(text: str, n: int) -> list[int]:
    """The 0/1 answers of :func:`parse_list` (raises :class:`ParseError`)."""
    return [int(v) for v in parse_list(text, n).values if v is not None]


def parse_keyed(text: str, n: int) -> Answers:
    """0/1 answers keyed by example number (``{"1": 1, "2": 0}``, or ``1: yes`` lines). An
    example without an answer gets None (a counted failure, never a 0); a number answered twice
    differently, or a reply with no answer for any example, raises :class:`ParseError`."""
    values: list[int | None] = [None] * n
    spans: list[Span | None] = [None] * n
    for m in _KEYED.finditer(text):
        number, value = int(m.group(1)), _word_value(m.group(2))
        if not 1 <= number <= n or value is None:
            continue
        if values[number - 1] is not None and values[number - 1] != value:
            raise ParseError(f"example {number} was answered twice, differently")
        values[number - 1], spans[number - 1] = value, m.span(2)
    if all(v is None for v in values):
        raise ParseError(f"no answers found; map each example number 1..{n} to 1 or 0")
    return Answers(tuple(values), tuple(spans))


def span_probabilities(
    logprobs: Sequence[TokenLogprob] | None, text: str, spans: Sequence[Span | None]
) -> list[float | None] | None:
    """P(answer is 1) per answer, from the top alternatives of the token holding it; None when
    the tokens do not spell the text (so positions cannot be matched)."""
    if not logprobs:
        return None
    tokens = [t.token for t in logprobs]
    if not "".join(tokens).startswith(text.rstrip()):
        return None
    starts = list(accumulate(map(len, tokens), initial=0))
    starts.pop()  # where each token starts in the text
    out: list[float | None] = []
    for span in spans:
        if span is None:
            out.append(None)
            continue
        i = max(0, bisect_right(starts, span[0]) - 1)
        slot = logprobs[i]
        yes = no = 0.0
        for tok, lp in slot.top or ((slot.token, slot.logprob),):  # top holds the chosen token
            value = _word_value(tok)
            if value == 1:
                yes += math.exp(lp)
            elif value == 0:
                no += math.exp(lp)
        out.append(yes / (yes + no) if yes + no > 0 else None)
    return out


@lru_cache(maxsize=256)  # one per prompt size; shared, so never mutate it
def keyed_schema(n: int) -> dict[str, Any]:
    """JSON schema of ``{"1": 0|1, ..., "n": 0|1}`` for clients with structured output."""
    return {
        "type": "object",
        "properties": {str(i): {"type": "integer", "enum": [0, 1]} for i in range(1, n + 1)},
        "required": [str(i) for i in range(1, n + 1)],
        "additionalProperties": False,
    }


def usage_meta(responses: Sequence[ChatResponse], prompts: int, failed_attempts: int = 0) -> dict:
    """Calls, re-asks, tokens and the answers' price of a score's answered prompts
    (``failed_attempts``: the requests of prompts that ended unparseable, whose responses are not
    kept); like the explainers', the same for a resumed run as for an uninterrupted one."""
    requests = len(responses) + failed_attempts
    return {
        "llm_calls": [r.request_hash for r in responses],
        "llm_requests": requests,
        "reasks": requests - prompts,
        "prompt_tokens": sum(r.prompt_tokens for r in responses),
        "completion_tokens": sum(r.completion_tokens for r in responses),
        "cost_usd": sum(r.price_usd for r in responses),
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


class Shown(NamedTuple):
    """One example as shown in a classification prompt, and the right answer (a named tuple, as
    :class:`Item`)."""

    item: Item
    text: str
    actual: float


class BinaryLLMScorer:
    """Shows several examples per prompt and asks for one 0/1 answer each (detection, fuzzing).

    ``batch_size`` examples per prompt (0: all in one). With ``structured`` the answer is a JSON
    object keyed by example number (sent as a JSON schema to clients that support one, parsed
    from plain text otherwise), so a long prompt's answers stay aligned with its examples.
    """

    name = "binary"
    default_prompt = ""
    structured_prompt = ""
    #: the prompt template id (``<name>.v<version>``) recorded as provenance; per instance the
    #: template actually used
    prompt_version = ""
    needs: frozenset[str] = frozenset({"llm"})

    def __init__(self, config: Any) -> None:
        self.config = config
        default = self.structured_prompt if config.structured else self.default_prompt
        self.template = load_prompt(config.prompt or default)
        self.prompt_version = self.template.id

    def shown(self, items: Sequence[Item], rng: random.Random) -> list[Shown]:
        raise NotImplementedError

    def params(self, n: int, seed: int) -> SamplingParams:
        c = self.config
        return SamplingParams(
            temperature=c.temperature,
            # a keyed answer spends ~8 tokens per example (`"12": 1, `), a list ~2-4
            max_tokens=16 + (8 if c.structured else 4) * n,
            seed=seed,
            logprobs=c.logprobs,
            top_logprobs=c.top_logprobs if c.logprobs else 0,
            json_schema=keyed_schema(n) if c.structured else None,
        )

    def parse(self, text: str, n: int) -> Answers:
        return parse_keyed(text, n) if self.config.structured else parse_list(text, n)

    async def _ask(
        self, client: LLMClient, explanation: Explanation, batch: Sequence[Shown], seed: int
    ) -> tuple[Answers | None, list[float | None] | None, list[ChatResponse], str, int]:
        """Answers, P(1)s, responses and the reason of missing answers for one prompt; if
        unparseable: (None, None, the responses paid for, reason, 0)."""
        n = len(batch)
        messages = self.template.messages(
            explanation=explanation.text, examples=numbered([s.text for s in batch]), count=str(n)
        )
        parse: Callable[[str], Answers] = lambda text: self.parse(text, n)  # noqa: E731
        try:
            answers, responses = await chat_parsed(
                client,
                messages,
                parse,
                self.params(n, seed),
                max_reasks=self.config.max_reasks,
                reask=self.template.reask.replace("$count", str(n)),
            )
        except UnparseableResponseError as exc:  # paid for all the same: its calls count
            return None, None, list(exc.responses), str(exc), exc.attempts - len(exc.responses)
        last = responses[-1]
        probabilities = span_probabilities(last.logprobs, last.text, answers.spans)
        if probabilities is not None and any(
            p is not None and a is not None and (p >= 0.5) != bool(a)
            for p, a in zip(probabilities, answers.values, strict=True)
        ):
            probabilities = None  # logprobs that disagree with the text belong to other tokens
        missing = [i for i, v in enumerate(answers.values, 1) if v is None]
        reason = f"no answer for example(s) {', '.join(map(str, missing))} of {n}" * bool(missing)
        return answers, probabilities, responses, reason, 0

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
        rng = random.Random(f"{self.name}:{explanation.latent}:{seed}")
        shown = self.shown(items, rng)
        rng.shuffle(shown)  # activating and non-activating mixed in every prompt
        size = self.config.batch_size or len(shown)
        batches = [shown[i : i + size] for i in range(0, len(shown), size)]
        asks = (self._ask(client, explanation, b, seed) for b in batches)
        results = await gather_or_fail(self.name, explanation.latent, asks)

        predictions: list[Prediction] = []
        responses: list[ChatResponse] = []
        reasons: list[str] = []
        failed_attempts = 0
        for batch, result in zip(batches, results, strict=True):
            answers, probabilities, batch_responses, reason, attempts = result
            responses += batch_responses
            failed_attempts += attempts
            if reason:
                reasons.append(reason)
            for j, s in enumerate(batch):
                predictions.append(
                    Prediction(
                        example_id=s.item.example_id,
                        predicted=_value(answers, j),
                        actual=s.actual,
                        probability=None if probabilities is None else probabilities[j],
                        quantile=s.item.quantile,
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
        headline = (
            self.config.headline
            if self.config.headline in metrics or not metrics  # nothing scored: as configured
            else "balanced_accuracy"
        )
        meta = {
            "prompt": self.template.id,
            "headline": headline,
            "structured": bool(self.config.structured),
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
            headline=headline,
            metrics=metrics,
            skipped=skipped,
            meta=meta,
        )


def _value(answers: Answers | None, j: int) -> float | None:
    if answers is None or answers.values[j] is None:
        return None
    return float(answers.values[j])  # type: ignore[arg-type]
