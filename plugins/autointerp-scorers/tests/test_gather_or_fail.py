"""gather_or_fail: how every LLM scorer turns its concurrent requests into results or a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from autointerp_scorers.common import ScoringFailedError, gather_or_fail

from autointerp.llm import EndpointUnavailableError, LLMError
from autointerp.types import LatentRef

LATENT = LatentRef("sae/resid_post.3", 7)


async def ok(value: int) -> int:
    await asyncio.sleep(0.001 * (3 - value))  # finishing out of order
    return value


async def fails(error: BaseException) -> int:
    raise error


def gather(*jobs: Coroutine[Any, Any, int]) -> list[int]:
    async def main() -> list[int]:
        return await gather_or_fail("demo", LATENT, jobs)

    return asyncio.run(main())


def test_results_come_back_in_the_order_asked() -> None:
    assert gather(ok(1), ok(2), ok(3)) == [1, 2, 3]


def test_an_llm_without_an_answer_fails_the_latent_only() -> None:
    with pytest.raises(ScoringFailedError, match=r"demo on .*: HTTP 400"):
        gather(ok(1), fails(LLMError("HTTP 400")))


@pytest.mark.parametrize("error", [EndpointUnavailableError("gone"), KeyError("bug")])
def test_a_gone_endpoint_or_a_bug_is_not_a_latent_failure(error: BaseException) -> None:
    with pytest.raises(type(error)) as raised:
        gather(fails(LLMError("HTTP 400")), fails(error))
    assert raised.value is error
