"""Batch APIs (OpenAI Batch, Anthropic Message Batches) behind the ordinary ``llm.chat()``.

A provider's batch API answers a file of requests within a day at half the price of live calls.
A *batch backend* (:class:`BatchBackend`, subclassed by a client plugin for its wire format) has
``batched = True``; :class:`autointerp.llm.LLMClient` then hands it each request that the cache
cannot answer (``answer``) instead of making live attempts with timeouts, retries and a breaker:

- requests queue up; a batch is submitted when ``max_batch_requests`` (or ``max_batch_mb``) are
  queued, when no new request came for ``flush_after_s``, or ``collect_max_s`` after the first;
- the batch, and which request hashes it holds (the hash is the batch's ``custom_id``) with the
  stage and component that asked for each (:func:`autointerp.llm.paying`, for the ledger), go
  into the run's store at once; each live batch is polled every ``poll_interval_s``;
- when a batch ends, every answer in it is stored (LLM cache and ledger, at batch prices: the
  live price times ``batch_price_factor``), also those nobody in this process awaits, so a paid
  answer is never lost; requests that expired or failed with a transient error go into a new
  batch, at most ``max_batch_attempts`` batches per request, then fail with
  :class:`BatchRequestError`; a batch that has not ended after ``batch_give_up_s`` is cancelled
  and its requests fail;
- a new process on the same store polls the live batches it finds there and never resubmits a
  request one of them holds; requests already answered never reach the backend (the cache).

Without a results store (``LLMClient(store=None)``) the same works with in-memory bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from autointerp.endpoint import BatchEndpointConfig
from autointerp.llm import (
    ChatResponse,
    LLMClient,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    MalformedResponseError,
    Message,
    Pricing,
    SamplingParams,
    TransientLLMError,
    current_payer,
    error_for_status,
    parse_retry_after,
    request_hash,
    request_payload,
)
from autointerp.store import LLMBatch
from autointerp.types import LLMCall

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("autointerp.llm.batch")


class BatchRequestError(LLMError):
    """A request the batch API did not answer: rejected, or unanswered in every batch it was
    allowed into, or held by a batch that never ended."""

    kind = "batch_failed"


@dataclass(frozen=True)
class ItemFailure:
    """Why one request of an ended batch has no answer; ``retryable``: worth another batch."""

    reason: str
    retryable: bool = True


@dataclass(frozen=True)
class BatchStatus:
    """What the provider says about a batch: its status, whether it has ended (its results can
    be read), its files, and details to keep (counts, errors, results URL)."""

    id: str
    status: str
    ended: bool = False
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: why a request missing from the results has no answer (e.g. the batch failed validation)
    detail: str = ""


class BatchStore(Protocol):
    """The part of the results store a batch backend uses (``autointerp.store.RunStore``)."""

    def put_llm_batch(
        self,
        batch: LLMBatch,
        requests: Mapping[str, Mapping[str, Any]],
        payers: Mapping[str, tuple[str, str]] | None = None,
    ) -> Any: ...

    def update_llm_batch(
        self,
        batch_id: str,
        status: str,
        *,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Any: ...

    def end_llm_batch(self, batch_id: str, status: str, outcomes: Mapping[str, str]) -> Any: ...

    def llm_batches(
        self, client: str | None = None, endpoint: str | None = None, *, live: bool | None = None
    ) -> list[LLMBatch]: ...

    def llm_batch_requests(self, batch_id: str) -> dict[str, dict[str, Any] | None]: ...

    def llm_batch_payers(self, batch_id: str) -> dict[str, tuple[str, str]]: ...

    def live_llm_batch_of(self, request_hash: str, client: str, endpoint: str) -> str | None: ...

    def llm_batch_attempts(self, request_hash: str) -> int: ...


class MemoryBatchStore:
    """:class:`BatchStore` in memory, for clients without a results store (nothing survives)."""

    def __init__(self) -> None:
        self.batches: dict[str, LLMBatch] = {}
        self.requests: dict[str, dict[str, dict[str, Any] | None]] = {}
        self.payers: dict[str, dict[str, tuple[str, str]]] = {}

    def put_llm_batch(
        self,
        batch: LLMBatch,
        requests: Mapping[str, Mapping[str, Any]],
        payers: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.batches[batch.id] = batch
        self.requests[batch.id] = {h: dict(p) for h, p in requests.items()}
        self.payers[batch.id] = dict(payers or {})

    def update_llm_batch(
        self,
        batch_id: str,
        status: str,
        *,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        b = self.batches[batch_id]
        self.batches[batch_id] = replace(
            b,
            status=status,
            output_file_id=output_file_id or b.output_file_id,
            error_file_id=error_file_id or b.error_file_id,
            meta=dict(meta) if meta is not None else b.meta,
            updated_at=time.time(),
        )

    def end_llm_batch(self, batch_id: str, status: str, outcomes: Mapping[str, str]) -> None:
        self.batches[batch_id] = replace(
            self.batches[batch_id], status=status, ended_at=time.time()
        )
        self.requests[batch_id] = dict.fromkeys(self.requests[batch_id])

    def llm_batches(
        self, client: str | None = None, endpoint: str | None = None, *, live: bool | None = None
    ) -> list[LLMBatch]:
        return [
            b
            for b in self.batches.values()
            if (client is None or b.client == client)
            and (endpoint is None or b.endpoint == endpoint)
            and (live is None or live == (b.ended_at is None))
        ]

    def llm_batch_requests(self, batch_id: str) -> dict[str, dict[str, Any] | None]:
        return dict(self.requests.get(batch_id, {}))

    def llm_batch_payers(self, batch_id: str) -> dict[str, tuple[str, str]]:
        return dict(self.payers.get(batch_id, {}))

    def live_llm_batch_of(self, request_hash: str, client: str, endpoint: str) -> str | None:
        for b in self.llm_batches(client, endpoint, live=True):
            if request_hash in self.requests[b.id]:
                return b.id
        return None

    def llm_batch_attempts(self, request_hash: str) -> int:
        return sum(request_hash in r for r in self.requests.values())


@dataclass
class _Waiter:
    """A request awaited in this process: its future, cache payload and provider body, and the
    ``(stage, component)`` that asked for it first (who pays, in the ledger)."""

    future: asyncio.Future[ChatResponse]
    payload: dict[str, Any]
    body: dict[str, Any]
    size: int
    payer: tuple[str, str] = ("", "")


class _LoopState:
    """A backend's batches within one event loop (futures and tasks are loop-bound)."""

    def __init__(self, client: LLMClient, batches: BatchStore) -> None:
        self.client = client  #: whose store, run id and stats the answers go to
        self.batches = batches
        self.waiters: dict[str, _Waiter] = {}
        self.queue: list[str] = []
        self.queued_bytes = 0
        self.first_queued = 0.0
        self.last_queued = 0.0
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.polled: set[str] = set()
        self.http: httpx.AsyncClient | None = None


class BatchBackend:
    """An :class:`autointerp.llm.LLMBackend` that answers through a provider's batch API.

    A subclass sets ``name``, ``model``, ``endpoint``, ``config`` (a :class:`BatchEndpointConfig`)
    and ``live_pricing`` in its ``__init__`` and implements the wire format: ``request_body``,
    ``headers``, ``create_batch``, ``get_batch``, ``batch_results`` and ``cancel_batch``, using
    :meth:`http` for every call (it applies the timeout and retries transient errors).
    """

    batched = True
    name: str
    model: str
    endpoint: str
    config: BatchEndpointConfig
    live_pricing: Pricing

    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._rng = random.Random()
        self._own_client: LLMClient | None = None

    @property
    def pricing(self) -> Pricing:
        """Batch prices: the live prices times ``batch_price_factor``."""
        f, p = self.config.batch_price_factor, self.live_pricing
        return Pricing(p.prompt * f, p.cached * f, p.completion * f)

    def check(self) -> None:
        """Keys are resolved when the backend is built; nothing else to check offline."""

    # -- the provider's wire format (subclasses) -------------------------------------------------

    def request_body(self, messages: Sequence[Message], params: SamplingParams) -> dict[str, Any]:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    async def create_batch(self, items: Sequence[tuple[str, dict[str, Any]]]) -> BatchStatus:
        """Submit ``(custom_id, body)`` pairs as one batch."""
        raise NotImplementedError

    async def get_batch(self, batch: LLMBatch) -> BatchStatus:
        raise NotImplementedError

    async def batch_results(self, batch: LLMBatch) -> dict[str, ChatResponse | ItemFailure]:
        """The answers of an ended batch by ``custom_id``; responses cost at live prices (or
        zero: then the wrapper prices them), they are converted to batch prices here."""
        raise NotImplementedError

    async def cancel_batch(self, batch: LLMBatch) -> None:
        raise NotImplementedError

    # -- HTTP ------------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        state = self._states.get(asyncio.get_running_loop())
        if state is None:  # the client lives as long as the loop's batches (closed by aclose)
            raise LLMError(f"{self.name}: HTTP calls happen only while requests are answered")
        if state.http is None:
            import httpx

            state.http = httpx.AsyncClient(headers=self.headers(), timeout=self.config.timeout_s)
        return state.http

    async def http(
        self,
        method: str,
        url: str,
        *,
        what: str,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP call with the config's timeout, retried on transient errors (``max_retries``
        times with backoff); a call that is not ``idempotent`` (creating a batch) is retried only
        when it surely did not arrive (connection refused, 429), so no batch is paid twice."""
        import httpx

        cfg = self.config
        attempt = 0
        while True:
            try:
                try:
                    async with asyncio.timeout(cfg.timeout_s * 1.5 + 0.5):
                        response = await self._http().request(method, url, **kwargs)
                except TimeoutError:
                    raise LLMTimeoutError(
                        f"{self.name}: {what}: no answer within {cfg.timeout_s:g}s",
                        where="deadline",
                    ) from None
                except httpx.TimeoutException as exc:
                    where = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
                    raise LLMTimeoutError(
                        f"{self.name}: {what}: no answer within {cfg.timeout_s:g}s", where=where
                    ) from None
                except httpx.TransportError as exc:
                    raise LLMConnectionError(
                        f"{self.name}: {what}: connection failed: {exc}"
                    ) from None
                if response.status_code >= 400:
                    retry = parse_retry_after(response.headers.get("retry-after"))
                    raise error_for_status(
                        response.status_code,
                        f"{self.name}: {what}: HTTP {response.status_code}: "
                        f"{_error_message(response.text)}",
                        retry,
                    )
                return response
            except TransientLLMError as exc:
                arrived = not (
                    exc.status == 429
                    or isinstance(exc, LLMConnectionError)
                    or (isinstance(exc, LLMTimeoutError) and exc.where == "connect")
                )
                attempt += 1
                if attempt > cfg.max_retries or (arrived and not idempotent):
                    raise
                ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
                delay = exc.retry_after if exc.retry_after is not None else ceiling
                delay = min(delay, cfg.backoff_max_s * 5) * self._rng.uniform(0.5, 1.0)
                log.info(
                    "%s: %s; retry %d/%d in %.2fs", self.name, exc, attempt, cfg.max_retries, delay
                )
                await asyncio.sleep(delay)

    async def http_json(self, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """:meth:`http`, and its JSON object body (:class:`MalformedResponseError` if none)."""
        response = await self.http(method, url, what=what, **kwargs)
        try:
            data = response.json()
        except ValueError as exc:
            raise MalformedResponseError(f"{self.name}: {what}: malformed JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{self.name}: {what}: expected a JSON object")
        return data

    # -- the LLMClient side ----------------------------------------------------------------------

    async def complete(
        self, messages: Sequence[Message], params: SamplingParams, *, timeout: float
    ) -> ChatResponse:
        """One request through a batch (``timeout`` does not apply: batches take hours); meant
        for use without :class:`LLMClient`, which calls :meth:`answer` with its store instead."""
        if self._own_client is None:
            self._own_client = LLMClient(self)
        payload = request_payload(self.name, self.model, messages, params)
        key = request_hash(payload)
        return await self.answer(self._own_client, messages, params, key, payload)

    async def answer(
        self,
        client: LLMClient,
        messages: Sequence[Message],
        params: SamplingParams,
        key: str,
        payload: dict[str, Any],
    ) -> ChatResponse:
        """The answer to one request (``key``: its hash, the batch ``custom_id``), from a live
        batch that holds it already or from a new one. Stored by this backend, not the client."""
        state = self._state(client)
        waiter = state.waiters.get(key)
        if waiter is None:
            body = self.request_body(messages, params)
            size = len(json.dumps(body)) + 200
            future = asyncio.get_running_loop().create_future()
            waiter = state.waiters[key] = _Waiter(future, payload, body, size, current_payer())
            client.stats.in_flight += 1
            live = state.batches.live_llm_batch_of(key, self.name, self.endpoint)
            if live is None:
                self._enqueue(state, key)
            else:  # submitted by an earlier process: its results will answer this one
                log.info("%s: request %s is in live batch %s", self.name, key[:12], live)
        return await asyncio.shield(waiter.future)

    async def aclose(self) -> None:
        """Stop polling and collecting in the running loop; live batches stay live at the
        provider and in the store, for the next run to collect."""
        with contextlib.suppress(RuntimeError):
            state = self._states.pop(asyncio.get_running_loop(), None)
            if state is None:
                return
            for task in state.tasks:
                task.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)
            for waiter in state.waiters.values():
                waiter.future.cancel()
            if state.http is not None:
                await state.http.aclose()

    # -- the machinery ---------------------------------------------------------------------------

    def _state(self, client: LLMClient) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            store = client.store
            batches: BatchStore = (
                store if hasattr(store, "put_llm_batch") else MemoryBatchStore()  # type: ignore[assignment]
            )
            state = self._states[loop] = _LoopState(client, batches)
            self._spawn(state, self._collect(state))
            for batch in batches.llm_batches(self.name, self.endpoint, live=True):
                log.info(
                    "%s: resuming live batch %s (%s, %d requests)",
                    self.name,
                    batch.id,
                    batch.status,
                    batch.n_requests,
                )
                self._poll_later(state, batch, first_wait=0.0)
        return state

    def _spawn(self, state: _LoopState, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        return task

    def _enqueue(self, state: _LoopState, key: str) -> None:
        now = time.monotonic()
        if not state.queue:
            state.first_queued = now
        state.last_queued = now
        state.queue.append(key)
        state.queued_bytes += state.waiters[key].size
        state.wake.set()

    async def _collect(self, state: _LoopState) -> None:
        """Cut the queue into batches: full ones at once, the rest after the flush window."""
        while True:
            try:
                await self._collect_until_error(state)
            except Exception as exc:  # a bug: fail what is queued, never hang it
                log.exception("%s: collecting requests: %s", self.name, exc)
                queued, state.queue, state.queued_bytes = state.queue, [], 0
                for key in queued:
                    self._fail(state, key, BatchRequestError(f"{self.name}: {exc}"))

    async def _collect_until_error(self, state: _LoopState) -> None:
        cfg = self.config
        max_bytes = cfg.max_batch_mb * 1e6
        while True:
            await state.wake.wait()
            state.wake.clear()
            while state.queue:
                now = time.monotonic()
                full = len(state.queue) >= cfg.max_batch_requests or state.queued_bytes >= max_bytes
                due = min(
                    state.last_queued + cfg.flush_after_s, state.first_queued + cfg.collect_max_s
                )
                if not full and now < due:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(state.wake.wait(), due - now)
                    state.wake.clear()
                    continue
                take: list[str] = []
                size = 0
                while state.queue and len(take) < cfg.max_batch_requests:
                    key = state.queue[0]
                    waiter = state.waiters.get(key)
                    if take and waiter is not None and size + waiter.size > max_bytes:
                        break
                    state.queue.pop(0)
                    if waiter is not None:
                        take.append(key)
                        size += waiter.size
                state.queued_bytes = sum(
                    state.waiters[k].size for k in state.queue if k in state.waiters
                )
                state.first_queued = now
                if take:
                    self._spawn(state, self._submit(state, take))

    async def _submit(self, state: _LoopState, keys: list[str]) -> None:
        items = [(k, state.waiters[k].body) for k in keys]
        stats = state.client.stats
        try:
            status = await self.create_batch(items)
        except LLMError as exc:
            for key in keys:
                self._fail(
                    state,
                    key,
                    BatchRequestError(f"{self.name}: could not submit a batch: {exc}"),
                )
            return
        now = time.time()
        batch = LLMBatch(
            id=status.id,
            client=self.name,
            endpoint=self.endpoint,
            status=status.status,
            n_requests=len(keys),
            created_at=now,
            updated_at=now,
            input_file_id=status.input_file_id,
            output_file_id=status.output_file_id,
            error_file_id=status.error_file_id,
            meta=status.meta,
            run_id=state.client.run_id,
        )
        state.batches.put_llm_batch(
            batch,
            {k: state.waiters[k].payload for k in keys},
            {k: state.waiters[k].payer for k in keys},
        )
        stats.requests += len(keys)
        log.info("%s: submitted batch %s with %d requests", self.name, batch.id, len(keys))
        self._poll_later(state, batch, first_wait=self.config.poll_interval_s)

    def _poll_later(self, state: _LoopState, batch: LLMBatch, *, first_wait: float) -> None:
        if batch.id not in state.polled:
            state.polled.add(batch.id)
            self._spawn(state, self._poll(state, batch, first_wait))

    async def _poll(self, state: _LoopState, batch: LLMBatch, wait: float) -> None:
        try:
            await self._poll_until_settled(state, batch, wait)
        except Exception as exc:  # a bug or a broken store: fail its requests, never hang them
            log.exception("%s: batch %s: %s", self.name, batch.id, exc)
            for key in state.batches.llm_batch_requests(batch.id):
                self._fail(state, key, BatchRequestError(f"{self.name}: batch {batch.id}: {exc}"))

    async def _poll_until_settled(self, state: _LoopState, batch: LLMBatch, wait: float) -> None:
        cfg = self.config
        while True:
            await asyncio.sleep(wait)
            wait = cfg.poll_interval_s
            if time.time() - batch.created_at > cfg.batch_give_up_s:
                await self._give_up(state, batch)
                return
            try:
                status = await self.get_batch(batch)
            except TransientLLMError as exc:  # the batch lives on at the provider: keep asking
                log.warning("%s: polling batch %s: %s", self.name, batch.id, exc)
                continue
            except LLMError as exc:  # gone or not ours: its requests go to a new batch
                log.warning("%s: batch %s cannot be read: %s", self.name, batch.id, exc)
                status = BatchStatus(batch.id, "lost", ended=True, detail=str(exc))
                self._settle(state, batch, status, {})
                return
            if (status.status, status.output_file_id, status.error_file_id) != (
                batch.status,
                batch.output_file_id,
                batch.error_file_id,
            ):
                log.info("%s: batch %s is %s", self.name, batch.id, status.status)
                state.batches.update_llm_batch(
                    batch.id,
                    status.status,
                    output_file_id=status.output_file_id,
                    error_file_id=status.error_file_id,
                    meta=status.meta,
                )
                batch = replace(
                    batch,
                    status=status.status,
                    output_file_id=status.output_file_id or batch.output_file_id,
                    error_file_id=status.error_file_id or batch.error_file_id,
                    meta=status.meta,
                )
            if not status.ended:
                continue
            try:
                results = await self.batch_results(batch)
            except TransientLLMError as exc:
                log.warning("%s: results of batch %s: %s; trying again", self.name, batch.id, exc)
                continue
            except LLMError as exc:
                log.warning("%s: results of batch %s cannot be read: %s", self.name, batch.id, exc)
                results, status = {}, replace(status, detail=str(exc))
            self._settle(state, batch, status, results)
            return

    async def _give_up(self, state: _LoopState, batch: LLMBatch) -> None:
        limit = self.config.batch_give_up_s
        log.warning(
            "%s: batch %s has not ended after %gs: cancelling it", self.name, batch.id, limit
        )
        with contextlib.suppress(LLMError):
            await self.cancel_batch(batch)
        reason = (
            f"batch {batch.id} did not end within {limit:g}s (batch_give_up_s); it was cancelled"
        )
        status = BatchStatus(batch.id, "given_up", ended=True, detail=reason)
        self._settle(state, batch, status, {}, retry=False)

    def _settle(
        self,
        state: _LoopState,
        batch: LLMBatch,
        status: BatchStatus,
        results: Mapping[str, ChatResponse | ItemFailure],
        *,
        retry: bool = True,
    ) -> None:
        """Store every answer of an ended batch, resolve the requests awaited here, resubmit
        the unanswered ones that may be, and mark the batch ended: in that order, so a crash
        in between at worst polls the batch again (an answer already stored is not re-stored)."""
        client, store = state.client, state.client.store
        factor = self.config.batch_price_factor
        turnaround = max(0.0, time.time() - batch.created_at)
        payloads = state.batches.llm_batch_requests(batch.id)
        payers = _payers(state.batches, batch.id)
        outcomes: dict[str, str] = {}
        missing = ItemFailure(
            f"no answer in batch {batch.id} ({status.status}"
            + (f": {status.detail})" if status.detail else ")"),
            retryable=retry,
        )
        unanswered: list[tuple[str, ItemFailure]] = []
        paid: list[LLMCall] = []
        answered: dict[str, ChatResponse] = {}
        for key, payload in payloads.items():
            result = results.get(key, missing)
            if isinstance(result, ItemFailure):
                outcomes[key] = result.reason[:500]
                unanswered.append((key, result))
                continue
            outcomes[key] = "answered"
            cost = result.cost_usd * factor or self.pricing.cost(
                result.prompt_tokens, result.cached_tokens, result.completion_tokens
            )
            response = replace(
                result,
                model=result.model or self.model,
                cost_usd=cost,
                latency_s=turnaround,
                from_cache=False,
                request_hash=key,
            )
            if payload is not None and store.get_llm_call(key) is None:
                # who submitted it pays (a restarted process may ask it under no name)
                payer = payers.get(key, ("", ""))
                if not any(payer) and (waiter := state.waiters.get(key)) is not None:
                    payer = waiter.payer
                paid.append(client.paid_call(payload, response, payer))
            answered[key] = response
        put_many = getattr(store, "put_llm_calls", None)
        if put_many is not None:  # one transaction for the whole batch
            put_many([(call, client.run_id, False) for call in paid])
        else:
            for call in paid:
                store.put_llm_call(call, run_id=client.run_id)
        for key, response in answered.items():
            waiter = state.waiters.pop(key, None)
            if waiter is not None:
                client.stats.in_flight -= 1
                if not waiter.future.done():
                    waiter.future.set_result(response)
        for key, failure in unanswered:
            self._retry_or_fail(state, key, failure)
        state.batches.end_llm_batch(batch.id, status.status, outcomes)
        log.info(
            "%s: batch %s ended (%s): %d answered, %d not",
            self.name,
            batch.id,
            status.status,
            len(payloads) - len(unanswered),
            len(unanswered),
        )

    def _retry_or_fail(self, state: _LoopState, key: str, failure: ItemFailure) -> None:
        waiter = state.waiters.get(key)
        if waiter is None:  # nobody here asks for it: it goes into a batch when someone does
            return
        state.client.stats.errors["batch_" + ("retryable" if failure.retryable else "failed")] += 1
        attempts = state.batches.llm_batch_attempts(key)
        limit = self.config.max_batch_attempts
        if failure.retryable and attempts < limit:
            state.client.stats.retries += 1
            log.info(
                "%s: request %s unanswered (%s); resubmitting (batch %d of at most %d)",
                self.name,
                key[:12],
                failure.reason,
                attempts + 1,
                limit,
            )
            self._enqueue(state, key)
            return
        tried = f"after {attempts} batch{'es' if attempts != 1 else ''}"
        if failure.retryable:
            tried += f" (max_batch_attempts = {limit})"
        self._fail(
            state,
            key,
            BatchRequestError(f"{self.name} ({self.model}): no answer {tried}: {failure.reason}"),
        )

    def _fail(self, state: _LoopState, key: str, error: LLMError) -> None:
        waiter = state.waiters.pop(key, None)
        if waiter is None:
            return
        state.client.stats.in_flight -= 1
        state.client.stats.failures += 1
        if not waiter.future.done():
            waiter.future.set_exception(error)
            waiter.future.exception()  # retrieved: the caller may have gone


def _payers(batches: BatchStore, batch_id: str) -> dict[str, tuple[str, str]]:
    """Who asked for each request of a batch, as submitted (a store without
    ``llm_batch_payers``: nobody known)."""
    read = getattr(batches, "llm_batch_payers", None)
    return read(batch_id) if read is not None else {}


def _error_message(text: str) -> str:
    """The ``error.message`` of an API error body, else the body's start."""
    try:
        data = json.loads(text)
    except ValueError:
        return text[:200]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)[:200]
    return text[:200]


def jsonl(text: str | bytes, what: str, name: str) -> Iterable[dict[str, Any]]:
    """The JSON objects of a JSONL document (blank lines skipped)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise MalformedResponseError(f"{name}: {what}: line {n} is not JSON: {exc}") from None
        if isinstance(item, dict):
            yield item


def namespace(value: Any) -> Any:
    """JSON as attribute objects, so a live client's SDK-object parser reads a batch result."""
    from types import SimpleNamespace

    if isinstance(value, dict):
        return SimpleNamespace(**{k: namespace(v) for k, v in value.items()})
    if isinstance(value, list):
        return [namespace(v) for v in value]
    return value


def fail_malformed(name: str, key: str, exc: Exception) -> ItemFailure:
    """An answer in the results that the live parser rejects: worth another batch."""
    return ItemFailure(f"{name}: malformed answer for {key[:12]}: {exc}", retryable=True)


__all__ = [
    "BatchBackend",
    "BatchEndpointConfig",
    "BatchRequestError",
    "BatchStatus",
    "BatchStore",
    "ItemFailure",
    "MemoryBatchStore",
    "fail_malformed",
    "jsonl",
    "namespace",
]
