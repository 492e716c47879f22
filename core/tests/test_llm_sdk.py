"""What autointerp.llm gives backends built on a vendor SDK: one SDK client per event loop, and
the SDK's exceptions turned into the LLMError kinds the retry logic understands."""

from __future__ import annotations

import asyncio
import json
from types import ModuleType

import pytest

from autointerp.llm import (
    LLMConnectionError,
    LLMTimeoutError,
    MalformedResponseError,
    PerLoop,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    sdk_errors,
)


class FakeSDK:
    closed = 0

    async def close(self) -> None:
        FakeSDK.closed += 1


def test_one_client_per_event_loop_closed_with_that_loop() -> None:
    holder: PerLoop[FakeSDK] = PerLoop()

    async def use() -> FakeSDK:
        first = holder.get(FakeSDK)
        assert holder.get(FakeSDK) is first  # made once per loop
        await holder.aclose()
        await holder.aclose()  # closing twice closes once
        return first

    before = FakeSDK.closed
    assert asyncio.run(use()) is not asyncio.run(use())  # another loop, another client
    assert FakeSDK.closed == before + 2
    asyncio.run(PerLoop().aclose())  # nothing made: nothing to close


@pytest.fixture(params=["openai", "anthropic"])
def sdk(request: pytest.FixtureRequest) -> ModuleType:
    return pytest.importorskip(request.param)


def raised(sdk: ModuleType, exc: BaseException) -> BaseException:
    try:
        with sdk_errors("svc", sdk, 2.0):
            raise exc
    except BaseException as out:
        return out
    raise AssertionError("nothing raised")


def test_status_errors_carry_status_and_retry_after(sdk: ModuleType) -> None:
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1:9/v1")

    def status(code: int, headers: dict[str, str]) -> BaseException:
        response = httpx.Response(code, headers=headers, request=request)
        return raised(sdk, sdk.APIStatusError("no", response=response, body=None))

    error = status(429, {"retry-after": "2"})
    assert isinstance(error, RateLimitedError) and error.retry_after == 2.0
    assert str(error) == "svc: HTTP 429: no" and error.__suppress_context__
    assert status(429, {"retry-after": "2", "retry-after-ms": "1500"}).retry_after == 1.5
    assert isinstance(status(503, {}), ServerError)
    assert isinstance(status(401, {}), RequestRejectedError)


def test_transport_and_body_errors_become_transient_kinds(sdk: ModuleType) -> None:
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1:9/v1")
    assert isinstance(raised(sdk, sdk.APITimeoutError(request=request)), LLMTimeoutError)
    assert isinstance(raised(sdk, sdk.APIConnectionError(request=request)), LLMConnectionError)
    invalid = sdk.APIResponseValidationError(
        response=httpx.Response(200, request=request), body=None
    )
    assert isinstance(raised(sdk, invalid), MalformedResponseError)
    garbled = raised(sdk, json.JSONDecodeError("Expecting value", "", 0))
    assert isinstance(garbled, MalformedResponseError) and "JSONDecodeError" in str(garbled)


def test_other_exceptions_pass_unchanged(sdk: ModuleType) -> None:
    bug = KeyError("k")
    assert raised(sdk, bug) is bug
