"""Fixtures of the scorer tests: examples, a client on the scripted server, one-call scoring."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from autointerp.llm import LLMClient, Scheduler
from autointerp.plugins import PluginManager
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.types import Example, Explanation, LatentRef, Score

LATENT = LatentRef("sae/resid_post.1", 3)
WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}


def make_example(text: str, fire: Sequence[str] = (), value: float = 5.0) -> Example:
    """An example whose words in ``fire`` activate (ids from the text: keys differ)."""
    words = text.split(" ")
    toks = tuple(w if i == 0 else " " + w for i, w in enumerate(words))
    acts = tuple(value if w.strip(".,") in fire else 0.0 for w in words)
    base = sum(map(ord, text)) * 1000
    ids = tuple(base + i for i in range(len(toks)))
    return Example(tokens=ids, str_tokens=toks, activations=acts)


ACTIVATING_TEXTS = [
    "I met her on Monday morning",
    "the shop closes Friday at noon",
    "see you on Sunday then",
    "every Tuesday we play chess",
    "the meeting moved to Wednesday afternoon",
    "Saturday was sunny and warm",
    "on Thursday the train was late",
    "he left early on Monday again",
]
NEGATIVE_TEXTS = [
    "the cat sat on the mat",
    "prices rose again this year",
    "she plays the violin well",
    "a storm hit the northern coast",
    "the recipe needs two eggs",
    "they painted the fence blue",
    "my phone battery died quickly",
    "the river flows to the sea",
]


@pytest.fixture
def activating() -> list[Example]:
    return [make_example(t, WEEKDAYS) for t in ACTIVATING_TEXTS]


@pytest.fixture
def negatives() -> list[Example]:
    return [make_example(t) for t in NEGATIVE_TEXTS]


@pytest.fixture
def explanation() -> Explanation:
    return Explanation(LATENT, "days of the week", "default")


def openai_client(server: ScriptedLLMServer, **options: Any) -> LLMClient:
    from autointerp_openai.client import OpenAIClient
    from autointerp_openai.plugin import OpenAICompatibleConfig

    config = OpenAICompatibleConfig(
        base_url=server.openai_base_url, backoff_base_s=0.01, backoff_max_s=0.05, **options
    )
    return LLMClient(OpenAIClient(config), scheduler=Scheduler())


ScoreRunner = Callable[..., Score]


@pytest.fixture
def score_with(autointerp_llm_server: ScriptedLLMServer) -> ScoreRunner:
    """``score_with(scorer, explanation, examples, negatives, llm=None, **kwargs)``: one scoring
    call in a fresh event loop; the LLM is an OpenAI-compatible client on the scripted server
    unless ``llm`` (a backend or client) is given."""

    def run(
        scorer: Any,
        explanation: Explanation,
        examples: Sequence[Example],
        negatives: Sequence[Example],
        llm: Any = None,
        client_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Score:
        async def go() -> Score:
            client = (
                llm
                if llm is not None
                else openai_client(autointerp_llm_server, **(client_options or {}))
            )
            try:
                return await scorer.score(explanation, examples, negatives, client, **kwargs)
            finally:
                if llm is None:
                    await client.aclose()

        return asyncio.run(go())

    return run


@pytest.fixture
def build_scorer() -> Callable[..., Any]:
    def build(name: str, **options: Any) -> Any:
        return PluginManager().build("scorer", name, options)

    return build


def last_examples(request: Any) -> list[str]:
    """The ``Example i: ...`` lines of the last user turn that lists examples."""
    for message in reversed(request.messages):
        content = message.get("content") or ""
        if isinstance(content, str) and "Example 1:" in content and message["role"] == "user":
            lines = [line for line in content.splitlines() if line.startswith("Example ")]
            return [line.split(": ", 1)[1] for line in lines]
    return []


@pytest.fixture
def example_lines() -> Callable[[Any], list[str]]:
    return last_examples


@pytest.fixture
def example_maker() -> Callable[..., Example]:
    """``make_example(text, fire=(), value=5.0)``: an example firing on the words in ``fire``."""
    return make_example


@pytest.fixture
def make_client(autointerp_llm_server: ScriptedLLMServer) -> Callable[..., LLMClient]:
    """An OpenAI-compatible client on the scripted server (close it with ``aclose``)."""
    return lambda **options: openai_client(autointerp_llm_server, **options)
