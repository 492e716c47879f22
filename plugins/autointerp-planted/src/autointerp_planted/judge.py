"""An LLM judge of explanation correctness: does an explanation name a planted latent's concept?

The judge is asked, per explanation, whether it describes the same concept as the latent's true
description, and answers yes or no (re-asked when the answer is neither). It runs through
autointerp's LLM clients with the run's results store as the cache and ledger: answers are paid
once (a rerun is free) and their cost is recorded under stage ``bench``, component ``judge``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any

from autointerp.llm import (
    LLMError,
    Message,
    ParseError,
    SamplingParams,
    chat_parsed,
    paying,
    wrap,
)

SYSTEM = (
    "You check explanations of a language-model feature against the feature's true meaning. "
    "An explanation is correct when a reader would expect it to fire on the same tokens as the "
    "true meaning: the same concept, in other words, is fine; a broader, narrower or different "
    "concept is not. Answer with one word: yes or no."
)
#: the prompt's version: part of every request, so a changed prompt is never answered from cache
PROMPT_VERSION = "judge-v1"


def judge_messages(explanation: str, truth: str) -> list[Message]:
    return [
        Message("system", SYSTEM, cache=True),
        Message(
            "user",
            f"True meaning: {truth}\nExplanation: {explanation}\n"
            "Does the explanation describe the true meaning? Answer yes or no.",
        ),
    ]


def parse_verdict(text: str) -> bool:
    """``yes``/``no`` as the answer's first word (markdown and punctuation ignored)."""
    match = re.match(r"[\s*_`\"']*(yes|no)\b", text, re.IGNORECASE)
    if match is None:
        raise ParseError("answer with one word, yes or no")
    return match.group(1).lower() == "yes"


async def judge_all(
    client: Any, pairs: Sequence[tuple[str, str]], *, concurrency: int = 8
) -> list[bool | None]:
    """A verdict per (explanation, truth) pair; None where the judge failed (after re-asks)."""
    limit = asyncio.Semaphore(concurrency)
    params = SamplingParams(temperature=0.0, max_tokens=4)

    async def one(explanation: str, truth: str) -> bool | None:
        async with limit:
            try:
                verdict, _ = await chat_parsed(
                    client, judge_messages(explanation, truth), parse_verdict, params
                )
            except LLMError:
                return None
            return verdict

    with paying("bench", "judge"):
        return list(await asyncio.gather(*(one(e, t) for e, t in pairs)))


def run_judge(
    llm_table: Mapping[str, Any],
    pairs: Sequence[tuple[str, str]],
    *,
    store: Any = None,
    run_id: int | None = None,
) -> list[bool | None]:
    """Build the LLM client ``llm_table`` selects (``name`` plus its options, as a run config's
    ``[llm]`` table) and judge ``pairs``; answers cached in ``store`` under ``run_id``."""
    from autointerp.plugins import get_plugin_manager

    table = dict(llm_table)
    name = table.pop("name", None)
    if not name:
        from autointerp.errors import ConfigError

        raise ConfigError("the judge needs an LLM: the run's [llm] table has no name")
    backend = get_plugin_manager().build("llm_client", name, table)
    calls = store.bind(run_id) if store is not None and run_id is not None else None

    async def go() -> list[bool | None]:
        client = wrap(backend, store=calls, run_id=run_id)
        try:
            return await judge_all(client, pairs)
        finally:
            await client.aclose()

    return asyncio.run(go())
