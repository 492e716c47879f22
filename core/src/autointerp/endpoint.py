"""The options every LLM client shares (limits, retries, breaker, prices) and those of batch
clients: kept apart from :mod:`autointerp.llm` so that a client plugin's registration (run by
every command, ``autointerp plugins`` included) imports pydantic and nothing heavier."""

from __future__ import annotations

from pydantic import Field

from autointerp.config import ComponentConfig


class EndpointConfig(ComponentConfig):
    """Options shared by every LLM client: limits, retries, breaker, prices. Client plugins'
    configs subclass this and add their own (model, base URL, key variable ...)."""

    max_concurrency: int = Field(256, ge=1, description="requests in flight to this endpoint")
    requests_per_minute: float | None = Field(
        None, gt=0, description="request rate limit (none: unlimited)"
    )
    tokens_per_minute: float | None = Field(
        None, gt=0, description="token rate limit, prompt + completion (none: unlimited)"
    )
    timeout_s: float = Field(
        120.0,
        gt=0,
        description="seconds an attempt may wait on the network (connect, send, answer); the "
        "whole attempt is cut off at 1.5x this + 0.5 s",
    )
    max_retries: int = Field(8, ge=0, description="retries of a transient failure per request")
    backoff_base_s: float = Field(1.0, ge=0, description="first retry delay (doubles each time)")
    backoff_max_s: float = Field(60.0, ge=0, description="longest retry delay")
    breaker_threshold: int = Field(
        8, ge=1, description="consecutive failures that open the circuit breaker"
    )
    breaker_cooldown_s: float = Field(
        5.0, ge=0, description="first pause when the breaker opens (doubles per failed probe)"
    )
    breaker_max_cooldown_s: float = Field(
        60.0, ge=0, description="longest pause of the circuit breaker between probes"
    )
    breaker_give_up_s: float = Field(
        600.0,
        gt=0,
        description="an endpoint failing every request this long is declared unavailable and "
        "the run stops (finished work is kept; rerun to resume)",
    )
    price_prompt_per_mtok: float | None = Field(
        None, ge=0, description="USD per million prompt tokens (default: the client's table)"
    )
    price_cached_per_mtok: float | None = Field(
        None, ge=0, description="USD per million cached prompt tokens (default: the table)"
    )
    price_completion_per_mtok: float | None = Field(
        None, ge=0, description="USD per million completion tokens (default: the table)"
    )


class BatchEndpointConfig(EndpointConfig):
    """Options of a batch client on top of the live client's (whose ``timeout_s``,
    ``max_retries`` and backoff apply to each HTTP call: upload, create, poll, download)."""

    poll_interval_s: float = Field(30.0, gt=0, description="seconds between polls of a batch")
    flush_after_s: float = Field(
        5.0, ge=0, description="submit the queued requests once no new one came for this long"
    )
    collect_max_s: float = Field(
        60.0, ge=0, description="submit the queued requests at most this long after the first"
    )
    max_batch_requests: int = Field(10_000, ge=1, description="requests per batch at most")
    max_batch_mb: float = Field(100.0, gt=0, description="size of a batch's requests at most (MB)")
    max_batch_attempts: int = Field(
        3,
        ge=1,
        description="batches a request may go into: an expired or transiently failed request is "
        "resubmitted until then, and fails after",
    )
    batch_price_factor: float = Field(
        0.5, ge=0, description="batch price as a fraction of the live price"
    )
    batch_give_up_s: float = Field(
        48 * 3600.0,
        gt=0,
        description="a batch not ended this long after its submission is cancelled and its "
        "requests fail",
    )
