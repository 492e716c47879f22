"""What every explainer shares: prompt templates from files, example formatting, tolerant parsing,
the ask/re-ask loop and the failure error.

An explainer is built from its config and called as
``await explainer.explain(latent, examples, llm, negatives=..., promoted=..., seed=...)``;
it returns an :class:`~autointerp.types.Explanation` or raises :class:`ExplanationFailedError` (an
:class:`~autointerp.llm.LLMError`) with the reason, so a failure is recorded and never scored.

With ``chain_of_thought`` an explainer uses its prompt's ``<name>_cot`` variant, which asks the LLM
to reason first and answer on a final ``Explanation:`` line: only that line becomes the
explanation (:func:`parse_final_line`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from autointerp import prompts
from autointerp.llm import (
    ChatResponse,
    LLMClient,
    LLMError,
    Message,
    ParseError,
    SamplingParams,
    chat_parsed,
    wrap,
)
from autointerp.prompts import PromptTemplate, clean, numbered, render
from autointerp.types import Example, Explanation, LatentRef
from autointerp_explainers.plugin import ExplainerConfig

REASK = (
    "That answer could not be used: {error}\n"
    'Reply with exactly one line: "Explanation: " followed by a short noun phrase.'
)
REASK_COT = (
    "That answer could not be used: {error}\n"
    'Reason briefly, then end your reply with one final line: "Explanation: " followed by a '
    "short noun phrase."
)
#: the suffix of a prompt's chain-of-thought variant: ``default.v1`` -> ``default_cot.v1``
COT_SUFFIX = "_cot"


class ExplanationFailedError(LLMError):
    """No explanation could be obtained for a latent; ``reason`` says why (never scored)."""

    kind = "explanation_failed"

    def __init__(self, latent: LatentRef, reason: str) -> None:
        super().__init__(f"{latent}: no explanation: {reason}")
        self.latent = latent
        self.reason = reason


def load_template(prompt_id: str) -> PromptTemplate:
    """Load ``prompts/<name>.v<version>.toml`` shipped with this package."""
    return prompts.load_template("autointerp_explainers", prompt_id)


def cot_prompt_id(prompt_id: str) -> str:
    """The chain-of-thought variant of a prompt id (``default.v1`` -> ``default_cot.v1``); an id
    that already names one is kept."""
    name, dot, version = prompt_id.rpartition(".v")
    if not dot or not version.isdigit():
        name, version = prompt_id, ""
    if name.endswith(COT_SUFFIX):
        return prompt_id
    return f"{name}{COT_SUFFIX}" + (f".v{version}" if version else "")


def format_examples(
    examples: Sequence[Example],
    config: ExplainerConfig,
    *,
    scale: float | None = None,
    start: int = 1,
    highlight: bool = True,
) -> tuple[str, list[str]]:
    """Numbered examples with firing spans marked ``<<...>>``; also the marked tokens, most
    frequent first (with 0–10 activation values when ``config.show_activations``)."""
    top = scale or max((e.max_activation for e in examples), default=0.0) or 1.0
    texts: list[str] = []
    marked: Counter[str] = Counter()
    strongest: dict[str, float] = {}
    for example in examples:
        toks, acts = example.window(config.example_width)
        fires = [highlight and a > 0 and a >= config.highlight_threshold * top for a in acts]
        texts.append(render(toks, fires))
        for tok, act, fired in zip(toks, acts, fires, strict=True):
            word = clean(tok).strip() if fired else ""
            if word:
                marked[word] += 1
                strongest[word] = max(strongest.get(word, 0.0), act)
    words = [w for w, _ in marked.most_common(config.max_marked_tokens)]
    if config.show_activations:
        words = [f"{w} ({round(10 * strongest[w] / top)})" for w in words]
    return numbered(texts, start), words


#: a bare line labelled as something else ("Answer: maybe"): not an explanation
_OTHER_LABEL = re.compile(r"^\W*[A-Za-z][A-Za-z ]{0,19}:\s")
_EXPLANATION = re.compile(r"^\W*explanation\W*[:\-–]\s*(.*)$", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(i (can ?not|can't|am unable|'m unable|don't know|do not know|am not sure|'m not sure)|"
    r"i'm sorry|as an ai|no (clear|obvious) pattern|could not be parsed|unclear|"
    r"what you (mean|asked)|not sure what)\b",
    re.IGNORECASE,
)


def parse_explanation(text: str, max_words: int = 16) -> str:
    """The explanation in a reply, tolerantly: the last "Explanation:" line, else a lone short
    line; quotes, markdown and a trailing period are dropped. Raises :class:`ParseError`."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    found = [m.group(1) for line in lines if (m := _EXPLANATION.match(line))]
    if found:
        candidate = found[-1]
    elif len(lines) == 1 and len(lines[0].split()) <= max_words:
        candidate = lines[0]
    elif not lines:
        raise ParseError("the reply was empty")
    else:
        raise ParseError('no line starting with "Explanation:"')
    return _checked(candidate, labelled=bool(found), max_words=max_words)


def parse_final_line(text: str, max_words: int = 16) -> str:
    """The explanation at the end of a reasoned reply (chain of thought): the last line marked
    "Explanation:" (its text, or the next line when the marker stands alone), else the last
    non-empty line; the reasoning before it is dropped. Raises :class:`ParseError`, e.g. for an
    empty reply."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise ParseError("the reply was empty")
    marked = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _EXPLANATION.match(line))]
    if marked:
        at, candidate = marked[-1]
        if not candidate.strip(" \t*_`\"'") and at + 1 < len(lines):
            candidate = lines[at + 1]
        return _checked(candidate, labelled=True, max_words=max_words)
    return _checked(lines[-1], labelled=False, max_words=max_words, strict=False)


def _checked(candidate: str, *, labelled: bool, max_words: int, strict: bool = True) -> str:
    """``candidate`` cleaned (quotes, markdown, a trailing period) if it can be an explanation;
    else :class:`ParseError`. ``strict`` checks an unlabelled line harder (no markup)."""
    quotes = " \t*_`\"'“”‘’"
    candidate = re.sub(r"\s+", " ", candidate.strip(quotes).rstrip(".").strip(quotes))
    if not candidate:
        raise ParseError('nothing follows "Explanation:"')
    if (junk := _junk(candidate, strict=strict and not labelled)) is not None:
        raise ParseError(
            f"{candidate!r} is not an explanation ({junk}); describe the pattern in words"
        )
    if _REFUSAL.search(candidate):
        raise ParseError(f"{candidate!r} does not describe a pattern; name the common pattern")
    if len(candidate.split()) > max_words:
        raise ParseError(f"the explanation has {len(candidate.split())} words; use at most 8")
    return candidate


def _junk(candidate: str, *, strict: bool) -> str | None:
    """Why ``candidate`` cannot be an explanation (None: it can). ``strict`` for a bare line
    taken without an "Explanation:" label: then no brackets at all, and mostly letters."""
    letters = sum(c.isalpha() for c in candidate)
    if letters < 2:
        return "no words"
    unbalanced = any(candidate.count(a) != candidate.count(b) for a, b in ("{}", "[]"))
    if candidate[0] in "}]" or unbalanced or (candidate[0] in "{[" and _is_json(candidate)):
        return "it looks like JSON"
    if strict and (
        any(c in candidate for c in "{}[]<>") or letters < 0.6 * len(candidate.replace(" ", ""))
    ):
        return "it looks like JSON or markup"
    if strict and _OTHER_LABEL.match(candidate):
        return "it answers another question"
    return None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def usage_meta(responses: Sequence[ChatResponse]) -> dict[str, Any]:
    """Calls, re-asks, tokens and the answers' price: what the result holds, not how this run got
    it (whether from the cache is the ledger's to say), so a resumed run's meta is the same."""
    return {
        "llm_calls": [r.request_hash for r in responses],
        "reasks": len(responses) - 1,
        "prompt_tokens": sum(r.prompt_tokens for r in responses),
        "completion_tokens": sum(r.completion_tokens for r in responses),
        "cost_usd": sum(r.price_usd for r in responses),
    }


class BaseExplainer:
    """Builds the messages (subclasses), asks with re-asks, parses, wraps the result."""

    name = "base"
    #: inputs beyond the activating examples that this explainer uses
    needs: frozenset[str] = frozenset()
    #: the prompt template id (``<name>.v<version>``) recorded as provenance
    prompt_version = ""

    def __init__(self, config: ExplainerConfig) -> None:
        self.config = config
        cot = config.chain_of_thought
        self.template = load_template(cot_prompt_id(config.prompt) if cot else config.prompt)
        #: the CoT variant's own id ("default_cot.v1"): another prompt version, cache key too
        self.prompt_version = self.template.id

    def params(self, seed: int | None, temperature: float | None) -> SamplingParams:
        return SamplingParams(
            temperature=self.config.temperature if temperature is None else temperature,
            max_tokens=self.config.max_tokens,
            seed=seed,
        )

    def build_messages(
        self,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        promoted: Sequence[str | tuple[str, float]],
    ) -> tuple[list[Message], dict[str, Any]]:
        raise NotImplementedError

    async def explain(
        self,
        latent: LatentRef,
        examples: Sequence[Example],
        llm: Any,
        *,
        negatives: Sequence[Example] = (),
        promoted: Sequence[str | tuple[str, float]] = (),
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Explanation:
        """Explain one latent; raises :class:`ExplanationFailedError` with the reason."""
        client: LLMClient = wrap(llm)
        try:
            messages, meta = self.build_messages(examples, negatives, promoted)
        except ValueError as exc:
            raise ExplanationFailedError(latent, str(exc)) from None
        try:
            cot = self.config.chain_of_thought
            text, responses = await chat_parsed(
                client,
                messages,
                parse_final_line if cot else parse_explanation,
                self.params(seed, temperature),
                max_reasks=self.config.max_reasks,
                reask=REASK_COT if cot else REASK,
            )
        except LLMError as exc:
            raise ExplanationFailedError(latent, str(exc)) from None
        meta |= {"prompt": self.template.id, "prompt_sha256": self.template.sha256[:16]}
        meta |= usage_meta(responses) | {"model": client.model, "client": client.name}
        if seed is not None:
            meta["seed"] = seed
        return Explanation(latent=latent, text=text, explainer=self.name, meta=meta)

    def _top(self, examples: Sequence[Example]) -> list[Example]:
        chosen = sorted(examples, key=lambda e: e.max_activation, reverse=True)
        return [e for e in chosen if e.max_activation > 0][: self.config.max_examples]
