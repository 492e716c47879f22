"""The LLM client protocol and everything wrapped around every client.

A *backend* (an ``llm_client`` component from a plugin: OpenAI, Anthropic, a local model) makes one
attempt at one chat request. :class:`LLMClient` wraps a backend with what a run needs:

- a process-wide :class:`Scheduler`: per-endpoint concurrency cap, requests- and tokens-per-minute
  limits, a pause honouring ``Retry-After``, and a circuit breaker that holds requests back while an
  endpoint keeps failing (one probe at a time until it answers again);
- retries with exponential backoff and full jitter on 429, 5xx, timeouts, dropped connections and
  malformed responses; other 4xx are never retried;
- a content-addressed response cache and a ledger (tokens, cost, latency per call, and the
  stage and component that asked: :func:`paying`) in the run's results store, so a rerun costs
  zero calls; identical requests in flight share one call; the
  requests answered in one turn of the event loop share one commit (:class:`GroupCommit`), which
  is done before any of their ``chat()`` calls returns;
- API keys resolved before any compute (:func:`resolve_api_key`) and redacted from every message.

Nothing here imports an SDK: backends import theirs lazily. Requests carry their own sampling
parameters; nothing mutable is shared between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import os
import random
import time
import tomllib
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from autointerp.endpoint import EndpointConfig
from autointerp.errors import AutointerpError, redact_keys
from autointerp.store import request_hash
from autointerp.types import LLMCall

log = logging.getLogger("autointerp.llm")
T = TypeVar("T")

Role = Literal["system", "user", "assistant"]

# -- who pays --------------------------------------------------------------------------------------

_PAYER: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "autointerp_llm_payer", default=("", "")
)


@contextlib.contextmanager
def paying(stage: str, component: str) -> Iterator[None]:
    """Inside the block (and the tasks it starts), LLM calls are filed in the ledger under
    ``stage`` and ``component`` (the explainer, or ``scorer/explainer``): the pipeline wraps each
    latent's explain and score call in one. A context variable, so concurrent latents of
    different components never mix."""
    token = _PAYER.set((stage, component))
    try:
        yield
    finally:
        _PAYER.reset(token)


def current_payer() -> tuple[str, str]:
    """``(stage, component)`` that calls made here are filed under (``("", "")``: none)."""
    return _PAYER.get()


# -- secrets ---------------------------------------------------------------------------------------

KEYS_FILE_ENV = "AUTOINTERP_KEYS_FILE"
DEFAULT_KEYS_FILE = Path("~/.config/autointerp/keys.toml")
_SECRETS: set[str] = set()
#: key-like strings redacted even when they were never registered (``sk-...``, ``sk-ant-...``)


class Secret:
    """An API key: never shown by ``str``/``repr``; its value is redacted from every log record."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= 6:
            _SECRETS.add(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('[REDACTED]')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact(text: str) -> str:
    """``text`` with every registered secret and anything shaped like an API key removed."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return redact_keys(text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from the formatted message (and drops its args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix; keep the record as is
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if redact(str(exc)) != str(exc):  # a traceback would repeat the secret
                record.msg = f"{clean} ({type(exc).__name__}: {redact(str(exc))})"
                record.exc_info = None
                record.exc_text = None
        return True


_FILTER = RedactingFilter()


def protect_loggers(*names: str) -> None:
    """Attach the redacting filter to these loggers (ours, and SDK/HTTP loggers a backend uses)."""
    for name in ("autointerp.llm", *names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


protect_loggers()


def _read_keys_file(path: Path) -> dict[str, str]:
    """A keys file: TOML (``OPENAI_API_KEY = "..."``) or dotenv lines (``OPENAI_API_KEY=...``)."""
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
        return {k: str(v) for k, v in data.items() if isinstance(v, str)}
    except tomllib.TOMLDecodeError:
        pass
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        out[key.strip()] = value.strip().strip("'\"")
    return out


def resolve_api_key(env_var: str, keys_file: Path | None = None, *, provider: str) -> Secret:
    """Find an API key: ``$env_var`` first, then the keys file (``keys_file``, else
    ``$AUTOINTERP_KEYS_FILE``, else ``~/.config/autointerp/keys.toml``). Raises
    :class:`MissingAPIKeyError` naming where it looked, never a value."""
    value = os.environ.get(env_var, "").strip()
    if value:
        return Secret(value)
    from_env = os.environ.get(KEYS_FILE_ENV)
    explicit = keys_file or (Path(from_env) if from_env else None)
    path = (explicit or DEFAULT_KEYS_FILE).expanduser()
    if explicit is not None and not path.is_file():
        raise MissingAPIKeyError(f"{provider}: keys file {path} does not exist")
    if path.is_file():
        try:
            value = _read_keys_file(path).get(env_var, "").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise MissingAPIKeyError(f"{provider}: cannot read keys file {path}: {exc}") from None
        if value:
            return Secret(value)
    raise MissingAPIKeyError(
        f"{provider}: no API key; set ${env_var} or add {env_var} to the keys file {path}"
    )


# -- errors ----------------------------------------------------------------------------------------


class LLMError(AutointerpError):
    """A request failed. The message is redacted; ``retryable`` says whether to try again."""

    retryable = False
    kind = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        # subclasses take other constructor arguments: rebuild from message and attributes so
        # errors survive crossing processes (executors, Ray)
        return (_restore_error, (type(self), str(self), dict(self.__dict__)))


def _restore_error(cls: type[LLMError], message: str, state: dict[str, Any]) -> LLMError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class TransientLLMError(LLMError):
    """Worth retrying: 429, 5xx, timeouts, dropped connections, malformed responses."""

    retryable = True
    kind = "transient"
    #: counts towards opening the circuit breaker (the endpoint, not the client, is failing)
    blames_endpoint = True

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RateLimitedError(TransientLLMError):
    """429: the endpoint works and asks us to slow down (its ``Retry-After`` pauses everyone)."""

    kind = "rate_limited"
    blames_endpoint = False


class ServerError(TransientLLMError):
    kind = "server_error"


class LLMTimeoutError(TransientLLMError):
    """An attempt that got no answer in time. ``where`` says how far it got, as far as the
    backend can tell: ``"pool"`` (it never left the client: no free connection), ``"connect"``
    (the server was not reached), ``"write"``/``"read"`` (the server had the request and was slow),
    ``"deadline"`` (the client's own cut-off for the whole attempt), ``"starved"`` (the client's
    event loop stalled for a good part of the timeout: the client was too busy to notice an
    answer), or None (unknown). Only the endpoint's share counts towards the circuit breaker."""

    kind = "timeout"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        where: str | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.where = where

    @property
    def blames_endpoint(self) -> bool:
        return self.where not in ("pool", "deadline", "starved")


def timeout_error(
    name: str, timeout: float, exc: BaseException | None = None, *, where: str | None = None
) -> LLMTimeoutError:
    """An :class:`LLMTimeoutError` for an SDK's timeout exception, telling from its cause
    (httpx's ``PoolTimeout``, ``ConnectTimeout``, ``WriteTimeout``, ``ReadTimeout``) how far the
    request got; a backend doing its own HTTP says ``where`` (see :class:`LLMTimeoutError`)."""
    if where is None and exc is not None:
        where = {
            "PoolTimeout": "pool",
            "ConnectTimeout": "connect",
            "WriteTimeout": "write",
            "ReadTimeout": "read",
        }.get(type(exc.__cause__ or exc).__name__)
    said = {
        "pool": "no free connection",
        "connect": "server not reached",
        "write": "request not sent",
        "read": "no answer",
    }.get(where or "", "timed out")
    return LLMTimeoutError(f"{name}: {said} within {timeout:g}s", where=where)


class LLMConnectionError(TransientLLMError):
    kind = "connection"


class MalformedResponseError(TransientLLMError):
    kind = "malformed"


class RequestRejectedError(LLMError):
    """A 4xx other than 429 (bad request, auth, not found ...): retrying would not help."""

    kind = "rejected"


class MissingAPIKeyError(LLMError):
    kind = "missing_key"


class EndpointUnavailableError(LLMError):
    """The endpoint failed every request for longer than ``breaker_give_up_s``: the run ends
    here (its finished work is kept; rerun to resume)."""

    kind = "unavailable"


class RetriesExhaustedError(LLMError):
    """Every attempt failed with a transient error; ``last`` is the final one."""

    kind = "exhausted"

    def __init__(self, message: str, last: LLMError) -> None:
        super().__init__(message, status=last.status)
        self.last = last


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) header value; None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN check


def error_for_status(status: int, message: str, retry_after: float | None = None) -> LLMError:
    """The error class for an HTTP status: 429 and 5xx (and 408/409) are transient."""
    if status == 429:
        return RateLimitedError(message, status=status, retry_after=retry_after)
    if status >= 500 or status in (408, 409):
        return ServerError(message, status=status, retry_after=retry_after)
    return RequestRejectedError(message, status=status)


def http_error(name: str, status: int, message: str, headers: Mapping[str, str]) -> LLMError:
    """:func:`error_for_status` for an HTTP answer: ``"{name}: HTTP {status}: {message}"``, with
    the pause its ``Retry-After`` (or ``retry-after-ms``) header asks for. ``headers``: a mapping
    with lower-case keys, or one that looks keys up case-insensitively."""
    retry = parse_retry_after(headers.get("retry-after"))
    if (ms := parse_retry_after(headers.get("retry-after-ms"))) is not None:
        retry = ms / 1000
    return error_for_status(status, f"{name}: HTTP {status}: {message}", retry)


# -- backends built on a vendor SDK ----------------------------------------------------------------


class _Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class PerLoop(Generic[C]):
    """One SDK client per event loop, made on first use there: an SDK's connection pool belongs
    to the loop that opened it, and a backend may serve several loops (one per thread)."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, factory: Callable[[], C]) -> C:
        """The running loop's client, ``factory()`` the first time."""
        loop = asyncio.get_running_loop()
        client = self._by_loop.get(loop)
        if client is None:
            client = self._by_loop[loop] = factory()
        return client

    async def aclose(self) -> None:
        """Close the running loop's client, if it has one (outside a loop: nothing to do)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._by_loop.pop(loop, None)
        if client is not None:
            await client.close()


@contextlib.contextmanager
def sdk_errors(name: str, sdk: Any, timeout: float) -> Iterator[None]:
    """Turn an SDK's exceptions into :class:`LLMError` ones inside the block. ``sdk`` is the SDK
    module (``openai``, ``anthropic``: their exception classes are the same) that the backend
    imported lazily; ``timeout`` is the request's, for the message. Other exceptions pass."""
    try:
        yield
    except sdk.APITimeoutError as exc:
        raise timeout_error(name, timeout, exc) from None
    except sdk.APIConnectionError as exc:
        raise LLMConnectionError(f"{name}: connection failed: {exc}") from None
    except sdk.APIResponseValidationError as exc:
        raise MalformedResponseError(f"{name}: malformed response: {exc}") from None
    except sdk.APIStatusError as exc:
        raise http_error(name, exc.status_code, exc.message, exc.response.headers) from None
    except json.JSONDecodeError as exc:  # a truncated or garbled body
        raise MalformedResponseError(
            f"{name}: malformed response: {type(exc).__name__}: {exc}"
        ) from None


# -- requests and responses ------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One chat message. ``cache=True`` marks the end of a stable prefix (system + few-shot) that
    providers with explicit prompt caching (Anthropic) should cache."""

    role: Role
    content: str
    cache: bool = False


def as_messages(messages: Iterable[Message | Mapping[str, Any]]) -> tuple[Message, ...]:
    """Accept :class:`Message` objects or ``{"role", "content"}`` dicts."""
    out = []
    for m in messages:
        if isinstance(m, Message):
            out.append(m)
        else:
            out.append(Message(m["role"], m["content"], bool(m.get("cache", False))))
    return tuple(out)


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters travelling with one request. ``seed`` also tells apart otherwise
    identical requests in the cache (k samples of one prompt need k seeds)."""

    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    #: return log-probabilities of the generated tokens, with this many alternatives each
    logprobs: bool = False
    top_logprobs: int = 0
    #: constrain the output to this JSON schema where the backend supports it
    json_schema: Mapping[str, Any] | None = None

    def replace(self, **changes: Any) -> SamplingParams:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: its deep copy cost more than the rest of the cache key
        data = {name: getattr(self, name) for name in _field_names(type(self))}
        data["stop"] = list(self.stop)
        data["json_schema"] = dict(self.json_schema) if self.json_schema is not None else None
        return data


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


class TokenLogprob(NamedTuple):
    """A generated token's logprob and its top alternatives ``(token, logprob)``. A named tuple:
    a response carries one per token (each with several alternatives), and a tuple is built
    several times faster than a frozen dataclass."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ChatResponse:
    """A completed request. ``from_cache``: served from the store (or shared with an identical
    request in flight); such a response cost this request nothing (``cost_usd`` 0.0), and
    :attr:`price_usd` says what it cost when it was paid for."""

    text: str
    model: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    from_cache: bool = False
    request_hash: str = ""
    #: the cost of the paid request whose answer this one reuses (None: this one was paid)
    paid_usd: float | None = None

    @property
    def price_usd(self) -> float:
        """What the answer cost, once: by this request or by the one the cache kept. A result's
        cost is the sum of its answers' prices, the same whether a run was resumed or not."""
        return self.cost_usd if self.paid_usd is None else self.paid_usd

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _field_names(type(self))}
        del data["from_cache"], data["request_hash"], data["paid_usd"]
        data["cost_usd"] = self.price_usd
        if self.logprobs is not None:
            data["logprobs"] = [[t, lp, list(map(list, top))] for t, lp, top in self.logprobs]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> ChatResponse:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("logprobs") is not None:
            known["logprobs"] = tuple(
                [
                    TokenLogprob(t, float(lp), tuple([(a, float(b)) for a, b in top]))
                    for t, lp, top in known["logprobs"]
                ]
            )
        known.update(overrides)
        return cls(**known)


def request_payload(
    client: str, model: str, messages: Sequence[Message], params: SamplingParams
) -> dict[str, Any]:
    """What identifies a request for the cache: provider, model, parameters and messages."""
    return {
        "client": client,
        "model": model,
        "params": params.as_dict(),
        "messages": [{"role": m.role, "content": m.content} for m in messages],
    }


def estimate_tokens(messages: Sequence[Message], params: SamplingParams) -> int:
    """A rough upper estimate of a request's tokens, for tokens-per-minute limits."""
    return sum(len(m.content) for m in messages) // 3 + 4 * len(messages) + params.max_tokens


# -- endpoint configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pricing:
    """USD per million tokens."""

    prompt: float = 0.0
    cached: float = 0.0
    completion: float = 0.0

    def cost(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        uncached = max(0, prompt_tokens - cached_tokens)
        paid = uncached * self.prompt + cached_tokens * self.cached
        return (paid + completion_tokens * self.completion) / 1e6

    @classmethod
    def resolve(cls, config: EndpointConfig, table: Mapping[str, Pricing], model: str) -> Pricing:
        """Config prices override the table's entry for the longest matching model prefix."""
        base = next(
            (table[k] for k in sorted(table, key=len, reverse=True) if model.startswith(k)), cls()
        )
        return cls(
            prompt=_first(config.price_prompt_per_mtok, base.prompt),
            cached=_first(config.price_cached_per_mtok, base.cached),
            completion=_first(config.price_completion_per_mtok, base.completion),
        )


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


@runtime_checkable
class LLMBackend(Protocol):
    """What an ``llm_client`` plugin builds: one attempt at one request, nothing more.

    ``complete`` raises :class:`LLMError` subclasses (transient ones are retried by
    :class:`LLMClient`); it fills text, tokens, logprobs and finish reason of the response
    (cost and latency are filled in by the wrapper when left at zero).
    """

    name: str  #: provider label in the ledger and cache key, e.g. "openai"
    model: str
    endpoint: str  #: scheduler key: backends with one endpoint share its limits
    config: EndpointConfig
    pricing: Pricing

    def check(self) -> None:
        """Raise (e.g. :class:`MissingAPIKeyError`) if the backend cannot work; no compute."""

    async def complete(
        self, messages: Sequence[Message], params: SamplingParams, *, timeout: float
    ) -> ChatResponse: ...

    async def aclose(self) -> None: ...

    # Optional: ``async def prepare(self) -> None`` is awaited once before the first request,
    # outside per-request timeouts (a local backend starts its server there).


class CallStore(Protocol):
    """The part of the results store the client uses (``autointerp.store.Store`` fits). A store
    may also have ``put_llm_calls(calls)``, taking ``(call, run_id, cached)`` triples and
    committing them in one transaction: the client then commits the calls answered together in
    one go (see :class:`GroupCommit`)."""

    def get_llm_call(self, request_hash: str) -> LLMCall | None: ...

    def put_llm_call(self, call: LLMCall, run_id: Any = None, *, cached: bool = False) -> Any: ...


class MemoryCallStore:
    """A dict-backed :class:`CallStore` for tests and runs without a store."""

    def __init__(self) -> None:
        self.calls: dict[str, LLMCall] = {}
        self.ledger: list[tuple[str, Any, bool]] = []  #: (request hash, run id, cache hit)

    def get_llm_call(self, request_hash: str) -> LLMCall | None:
        return self.calls.get(request_hash)

    def put_llm_call(self, call: LLMCall, run_id: Any = None, *, cached: bool = False) -> None:
        self.ledger.append((call.request_hash, run_id, cached))
        if not cached:
            self.calls[call.request_hash] = call

    def put_llm_calls(self, calls: Iterable[tuple[LLMCall, Any, bool]]) -> None:
        for call, run_id, cached in calls:
            self.put_llm_call(call, run_id, cached=cached)


class GroupCommit:
    """Ledger writes of one event loop, committed in groups: every request answered in one turn
    of the loop waits for one transaction together (``put`` returns its future). A call's answer
    is thus committed before the ``chat()`` that paid for it returns (a killed run never pays for
    it again), at the cost of one commit per turn of the loop instead of one per call. Stores
    without ``put_llm_calls`` get one ``put_llm_call`` per entry, still off the caller's turn."""

    def __init__(self, store: CallStore) -> None:
        self.store = store
        self._put_many: Callable[[list[tuple[LLMCall, Any, bool]]], Any] | None = getattr(
            store, "put_llm_calls", None
        )
        self._pending: list[tuple[LLMCall, Any, bool, asyncio.Future[None]]] = []
        self.commits = 0  #: groups written (one transaction each, with ``put_llm_calls``)

    def put(self, call: LLMCall, run_id: Any, cached: bool) -> asyncio.Future[None]:
        """Queue one ledger entry; the future is done once it is committed (or failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((call, run_id, cached, future))
        return future

    def _flush(self) -> None:
        group, self._pending = self._pending, []
        self.commits += 1
        if self._put_many is not None and len(group) > 1:
            try:
                self._put_many([(call, run_id, cached) for call, run_id, cached, _ in group])
            except Exception:  # the transaction rolled back: write them one by one below
                pass
            else:
                for *_, future in group:
                    _settle(future, None)
                return
        for call, run_id, cached, future in group:
            try:
                self.store.put_llm_call(call, run_id, cached=cached)
            except Exception as exc:  # this entry's caller gets the error; the others are kept
                _settle(future, exc)
            else:
                _settle(future, None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # its caller was cancelled: the entry is written all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


# -- scheduling ------------------------------------------------------------------------------------


class RateLimiter:
    """Token bucket in virtual time: each acquire books its amount and sleeps off any deficit, so
    concurrent callers are paced in arrival order without polling. Burst: 10 s worth."""

    def __init__(self, per_minute: float, burst_s: float = 10.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.t = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now

    async def acquire(self, amount: float = 1.0) -> None:
        self._refill()
        self.level -= amount
        if self.level < 0:
            await asyncio.sleep(-self.level / self.rate)

    def adjust(self, delta: float) -> None:
        """Book ``delta`` more (or, negative, give back) once the real amount is known."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


class CircuitBreaker:
    """Closed → (``threshold`` consecutive endpoint failures) → open for a pause that doubles per
    failed probe (at most ``max_cooldown_s``) → half-open: one probe request; any success closes
    it, a failed probe reopens it. Waiters are paused, not failed, but only for so long: once the
    endpoint has failed everything for ``give_up_s`` since the breaker opened, every waiter and
    every later request gets :class:`EndpointUnavailableError`.

    Only failures the endpoint is to blame for count (``TransientLLMError.blames_endpoint``): a
    429, or an attempt the client itself cut off (no free connection, a client starved of CPU),
    says nothing about the endpoint's health."""

    def __init__(
        self,
        threshold: int,
        cooldown_s: float,
        *,
        max_cooldown_s: float = 60.0,
        give_up_s: float = 600.0,
        endpoint: str = "endpoint",
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.give_up_s = give_up_s
        self.endpoint = endpoint
        self.state: Literal["closed", "open", "half_open", "unavailable"] = "closed"
        self.failures = 0
        self.trips = 0
        self.openings = 0  #: times it opened in all (``trips`` restarts when it closes)
        self.open_until = 0.0
        self.opened_at = 0.0  #: when this episode of failures opened the breaker
        self.last_error = ""
        self._probe_out = False
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _unavailable(self) -> EndpointUnavailableError:
        return EndpointUnavailableError(
            f"{self.endpoint}: unavailable, every request failed for "
            f"{time.monotonic() - self.opened_at:.0f}s (breaker_give_up_s = {self.give_up_s:g}); "
            f"last error: {self.last_error.rstrip('.') or 'none recorded'}. Finished work is "
            "kept: rerun "
            "to resume"
        )

    async def admit(self) -> bool:
        """Wait until a request may go; True if it goes as the half-open probe. Raises
        :class:`EndpointUnavailableError` once the endpoint is given up on."""
        while True:
            if self.state == "closed":
                return False
            if self.state == "unavailable":
                raise self._unavailable()
            if self.state == "open":
                wait = self.open_until - time.monotonic()
                if wait > 0:
                    changed = self._changed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), wait)
                    continue
                if time.monotonic() - self.opened_at >= self.give_up_s:
                    self.state = "unavailable"
                    log.info("%s", self._unavailable())
                    self._notify()
                    continue
                self.state = "half_open"
                log.info("circuit half-open: sending one probe request")
            if not self._probe_out:
                self._probe_out = True
                return True
            await self._changed.wait()

    def success(self, probe: bool) -> None:
        self.failures = 0
        if self.state == "unavailable":
            return  # given up on: the run is ending
        if probe or self.state != "closed":
            if self.state != "closed":
                log.info("circuit closed: endpoint answers again")
            self.state, self.trips, self._probe_out = "closed", 0, False
            self._notify()

    def failure(self, probe: bool, error: str = "") -> None:
        self.failures += 1
        self.last_error = error or self.last_error
        if self.state == "unavailable":
            return
        if (probe and self.state == "half_open") or (
            self.state == "closed" and self.failures >= self.threshold
        ):
            now = time.monotonic()
            if self.trips == 0:
                self.opened_at = now
            self.trips += 1
            self.openings += 1
            pause = min(self.max_cooldown_s, self.cooldown_s * 2 ** min(self.trips - 1, 30))
            # never pause past the give-up time: the last probe goes out when it comes
            pause = max(0.0, min(pause, self.opened_at + self.give_up_s - now))
            self.state, self.open_until, self._probe_out = "open", now + pause, False
            log.warning(
                "circuit open after %d consecutive failures: pausing %.1fs", self.failures, pause
            )
            self._notify()

    def release(self, probe: bool) -> None:
        """A probe ended without a verdict (cancelled, or cut off by the client): let another
        waiter probe."""
        if probe and self._probe_out:
            self._probe_out = False
            self._notify()


class ConcurrencyLimit:
    """The endpoint's concurrency slots, FIFO. The number of slots adapts to the client: it is
    halved (once per wave) when attempts time out on the client's side, because this process
    cannot drive that many at once, and grows by one per answer back to ``maximum``. Without
    this, a client starved of CPU times out its own attempts, retries them all, and never
    catches up."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_cut = float("-inf")

    async def acquire(self) -> None:
        if self.in_use < int(self.limit) and not self._waiters:
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # granted, then cancelled before it could be used
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < int(self.limit):
            future = self._waiters.popleft()
            if not future.done():
                self.in_use += 1
                future.set_result(None)

    def overloaded(self, started: float) -> None:
        """An attempt started at ``started`` timed out on the client's side."""
        if started >= self._last_cut:  # one cut per wave of attempts
            self.limit = max(1.0, self.limit / 2)
            self._last_cut = time.monotonic()
            log.info("client overloaded: at most %d requests in flight for now", self.limit)

    def answered(self) -> None:
        if self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1)
            self._wake()


class LoopLag:
    """How late the event loop runs what it has to: a tick every ``interval`` seconds records
    its lateness while the endpoint is busy. A timeout during which the loop itself stalled (a
    client starved of CPU, hundreds of requests being built) is the client's, not the endpoint's.
    """

    def __init__(self, interval: float = 0.05, keep_s: float = 600.0) -> None:
        self.interval = interval
        self.samples: deque[tuple[float, float]] = deque(maxlen=int(keep_s / interval))
        self.last_tick = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self.busy: Callable[[], bool] = lambda: False

    def start(self) -> None:
        if self._task is None or self._task.done():
            self.last_tick = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        idle_since: float | None = None
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.samples.append((now, max(0.0, now - self.last_tick - self.interval)))
            self.last_tick = now
            if self.busy():
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since > 1.0:
                return  # restarted by the next request

    def worst_since(self, since: float) -> float:
        """The longest stall of the loop since ``since`` (the tick still pending included)."""
        pending = time.monotonic() - self.last_tick - self.interval
        worst = max(0.0, pending)
        for at, lag in reversed(self.samples):
            if at < since:
                break
            worst = max(worst, lag)
        return worst


class Endpoint:
    """Shared state of one endpoint within one event loop."""

    def __init__(self, key: str, config: EndpointConfig) -> None:
        self.key = key
        self.slots = ConcurrencyLimit(config.max_concurrency)
        self.max_concurrency = config.max_concurrency
        self.rpm = RateLimiter(config.requests_per_minute) if config.requests_per_minute else None
        self.tpm = RateLimiter(config.tokens_per_minute) if config.tokens_per_minute else None
        self.breaker = CircuitBreaker(
            config.breaker_threshold,
            config.breaker_cooldown_s,
            max_cooldown_s=config.breaker_max_cooldown_s,
            give_up_s=config.breaker_give_up_s,
            endpoint=key,
        )
        #: the longest a server's Retry-After may pause everyone
        self.max_pause_s = max(1.0, config.backoff_max_s * 5)
        self.paused_until = 0.0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.waiting = 0
        self.lag = LoopLag()
        self.lag.busy = lambda: self.in_flight + self.waiting > 0

    def pause(self, seconds: float) -> None:
        """Hold new requests back (a ``Retry-After``): the server asked everyone to wait."""
        seconds = min(seconds, self.max_pause_s)
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def _wait_pause(self) -> None:
        while (wait := self.paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)

    async def acquire(self) -> bool:
        """Wait for the pause, the breaker and then a concurrency slot, in that order, so that
        nothing waiting for the breaker holds a slot; True if this attempt is the breaker's probe.
        The caller releases the slot (``slots.release()``) and reports a verdict or
        ``breaker.release(probe)``."""
        self.lag.start()
        self.waiting += 1
        try:
            while True:
                await self._wait_pause()
                probe = await self.breaker.admit()
                try:
                    await self.slots.acquire()
                except BaseException:
                    self.breaker.release(probe)
                    raise
                if probe or self.breaker.state == "closed":
                    return probe
                self.slots.release()  # the breaker opened while this waited for a slot
        finally:
            self.waiting -= 1


class Scheduler:
    """Process-wide registry of endpoints, one set per event loop (asyncio primitives are
    loop-bound). The first client of an endpoint fixes its limits."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Endpoint]] = (
            weakref.WeakKeyDictionary()
        )

    def endpoint(self, key: str, config: EndpointConfig) -> Endpoint:
        loop = asyncio.get_running_loop()
        endpoints = self._by_loop.setdefault(loop, {})
        if key not in endpoints:
            endpoints[key] = Endpoint(key, config)
        return endpoints[key]


_SCHEDULER = Scheduler()


def get_scheduler() -> Scheduler:
    return _SCHEDULER


# -- the client ------------------------------------------------------------------------------------


@dataclass
class ClientStats:
    """What one client did in this process: calls paid, cache hits, retries, failures by kind."""

    requests: int = 0  #: attempts sent to the endpoint
    calls: int = 0  #: successful paid calls
    cache_hits: int = 0
    shared: int = 0  #: requests answered by an identical request already in flight
    retries: int = 0
    failures: int = 0  #: requests that finally failed
    errors: Counter[str] = field(default_factory=Counter)  #: failed attempts by kind
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    in_flight: int = 0  #: attempts of this client awaiting the endpoint right now
    peak_in_flight: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens of paid calls (what the ledger sums for them)."""
        return self.prompt_tokens + self.completion_tokens


class LLMClient:
    """A backend with scheduling, retries, circuit breaker, cache and ledger around it.

    ``store`` is the run's results store (anything with ``get_llm_call``/``put_llm_call``);
    without one, responses are cached in memory for the client's lifetime.
    """

    def __init__(
        self,
        backend: LLMBackend,
        *,
        store: CallStore | None = None,
        run_id: Any = None,
        scheduler: Scheduler | None = None,
        default_params: SamplingParams | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.backend = backend
        self.store: CallStore = store if store is not None else MemoryCallStore()
        self.run_id = run_id
        self.scheduler = scheduler or _SCHEDULER
        self.default_params = default_params or SamplingParams()
        self.stats = ClientStats()
        self._rng = rng or random.Random()
        self._in_flight: dict[str, asyncio.Future[ChatResponse]] = {}
        self._commits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit] = (
            weakref.WeakKeyDictionary()
        )
        self._prepared = False
        #: set once the endpoint is given up on: the run must stop, not fail latent by latent
        self.unavailable: EndpointUnavailableError | None = None

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def model(self) -> str:
        return self.backend.model

    def check(self) -> None:
        """Fail now, before compute, if the backend cannot work (missing key ...)."""
        self.backend.check()

    async def aclose(self) -> None:
        await self.backend.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def chat(
        self,
        messages: Iterable[Message | Mapping[str, Any]],
        params: SamplingParams | None = None,
        *,
        use_cache: bool = True,
    ) -> ChatResponse:
        """Answer one chat request: from the cache if it was ever paid for, else from the endpoint.

        Raises :class:`RetriesExhaustedError` after the retry budget, or the non-retryable
        :class:`LLMError` at once.
        """
        msgs = as_messages(messages)
        if not msgs:
            raise ValueError("chat() needs at least one message")
        params = params or self.default_params
        payload = request_payload(self.backend.name, self.backend.model, msgs, params)
        key = request_hash(payload)
        if use_cache:
            hit = self.store.get_llm_call(key)
            if hit is not None:
                self.stats.cache_hits += 1
                stage, component = _PAYER.get()
                await self._commit(replace(hit, stage=stage, component=component), cached=True)
                return ChatResponse.from_dict(
                    hit.response,
                    from_cache=True,
                    request_hash=key,
                    cost_usd=0.0,
                    paid_usd=float(hit.response.get("cost_usd", 0.0)),
                    latency_s=0.0,
                )
            shared = self._in_flight.get(key)
            if shared is not None:
                self.stats.shared += 1
                try:
                    answer = await asyncio.shield(shared)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if shared.cancelled() and task is not None and not task.cancelling():
                        return await self.chat(msgs, params)  # the owner was cancelled, not us
                    raise
                return replace(
                    answer, from_cache=True, cost_usd=0.0, paid_usd=answer.price_usd, latency_s=0.0
                )
        future: asyncio.Future[ChatResponse] = asyncio.get_running_loop().create_future()
        if use_cache:
            self._in_flight[key] = future
        try:
            if getattr(self.backend, "batched", False):
                # a batch API (autointerp.llm_batch) answers within hours, not seconds: none of
                # the per-attempt timeouts, retries and breaker; it stores its answers itself
                response = await self.backend.answer(self, msgs, params, key, payload)  # type: ignore[attr-defined]
            else:
                response = await self._call(msgs, params, key)
                await self._record(payload, response)
            future.set_result(response)
            return response
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody shared it
            raise
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]

    def group_commit(self) -> GroupCommit:
        """The running loop's :class:`GroupCommit` into this client's store."""
        loop = asyncio.get_running_loop()
        commit = self._commits.get(loop)
        if commit is None:
            commit = self._commits[loop] = GroupCommit(self.store)
        return commit

    async def _commit(self, call: LLMCall, *, cached: bool) -> None:
        # shielded: a caller cancelled now still has its answer written (and paid once)
        await asyncio.shield(self.group_commit().put(call, self.run_id, cached))

    async def _record(self, payload: dict[str, Any], response: ChatResponse) -> None:
        await self._commit(self.paid_call(payload, response), cached=False)

    def paid_call(
        self,
        payload: dict[str, Any],
        response: ChatResponse,
        payer: tuple[str, str] | None = None,
    ) -> LLMCall:
        """The cache and ledger entry of a paid answer, counted in :attr:`stats`, filed under
        ``payer`` (``(stage, component)``; default: :func:`current_payer`)."""
        stage, component = _PAYER.get() if payer is None else payer
        s = self.stats
        s.calls += 1
        s.prompt_tokens += response.prompt_tokens
        s.cached_tokens += response.cached_tokens
        s.completion_tokens += response.completion_tokens
        s.cost_usd += response.cost_usd
        return LLMCall(
            request_hash=response.request_hash,
            client=self.backend.name,
            model=self.backend.model,
            request=payload,
            response=response.to_dict(),
            prompt_tokens=response.prompt_tokens,
            cached_tokens=response.cached_tokens,
            completion_tokens=response.completion_tokens,
            cost_usd=response.cost_usd,
            latency_s=response.latency_s,
            stage=stage,
            component=component,
        )

    def _backoff(self, attempt: int, error: TransientLLMError) -> float:
        cfg = self.backend.config
        if error.retry_after is not None:
            return min(error.retry_after, cfg.backoff_max_s * 5) + self._rng.uniform(0, 0.1)
        ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)  # "equal jitter": never ~0, never in sync

    async def _call(
        self, msgs: tuple[Message, ...], params: SamplingParams, key: str
    ) -> ChatResponse:
        backend, cfg = self.backend, self.backend.config
        if not self._prepared:
            prepare = getattr(backend, "prepare", None)
            if prepare is not None:
                await prepare()  # idempotent in the backend; concurrent first callers all wait
            self._prepared = True
        ep = self.scheduler.endpoint(backend.endpoint, cfg)
        estimate = estimate_tokens(msgs, params)
        # the backend applies ``timeout_s`` to each network wait; this cuts off the whole attempt
        deadline = cfg.timeout_s * 1.5 + 0.5
        attempt = 0
        while True:
            try:
                probe = await ep.acquire()
            except EndpointUnavailableError as exc:
                self.unavailable = exc
                self.stats.errors[exc.kind] += 1
                self.stats.failures += 1
                raise
            verdict = False
            start = time.monotonic()
            try:
                try:
                    if ep.rpm:
                        await ep.rpm.acquire(1)
                    if ep.tpm:
                        await ep.tpm.acquire(estimate)
                    ep.in_flight += 1
                    ep.peak_in_flight = max(ep.peak_in_flight, ep.in_flight)
                    stats = self.stats
                    stats.requests += 1
                    stats.in_flight += 1
                    stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
                    try:
                        async with asyncio.timeout(deadline):
                            response = await backend.complete(msgs, params, timeout=cfg.timeout_s)
                    except TimeoutError:
                        raise LLMTimeoutError(
                            f"{backend.name}: no answer within {cfg.timeout_s:g}s "
                            f"(attempt cut off after {deadline:g}s)",
                            where="deadline",
                        ) from None
                    finally:
                        ep.in_flight -= 1
                        stats.in_flight -= 1
                finally:
                    ep.slots.release()
                latency = time.monotonic() - start
            except TransientLLMError as exc:
                verdict = True
                if (
                    isinstance(exc, LLMTimeoutError)
                    and exc.blames_endpoint
                    and ep.lag.worst_since(start) > 0.25 * cfg.timeout_s
                ):
                    exc.where = "starved"  # the loop stalled: the client, not the endpoint
                if exc.blames_endpoint:
                    ep.breaker.failure(probe, str(exc))
                else:
                    ep.breaker.release(probe)
                    if isinstance(exc, LLMTimeoutError):
                        ep.slots.overloaded(start)
                self.stats.errors[exc.kind] += 1
                if exc.retry_after is not None:
                    ep.pause(exc.retry_after)
                attempt += 1
                if attempt > cfg.max_retries:
                    self.stats.failures += 1
                    raise RetriesExhaustedError(
                        f"{backend.name} ({backend.model}): gave up after {attempt} attempts; "
                        f"last error: {exc}",
                        exc,
                    ) from None
                delay = self._backoff(attempt, exc)
                self.stats.retries += 1
                log.info(
                    "%s: %s; retry %d/%d in %.2fs",
                    backend.name,
                    exc,
                    attempt,
                    cfg.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            except LLMError as exc:
                verdict = True
                ep.breaker.success(probe)  # the endpoint answered; the request was wrong
                self.stats.errors[exc.kind] += 1
                self.stats.failures += 1
                raise
            finally:
                if not verdict:
                    ep.breaker.release(probe)
            ep.breaker.success(probe)
            ep.slots.answered()
            if ep.tpm:
                ep.tpm.adjust(response.prompt_tokens + response.completion_tokens - estimate)
            cost = response.cost_usd or backend.pricing.cost(
                response.prompt_tokens, response.cached_tokens, response.completion_tokens
            )
            return replace(
                response,
                model=response.model or backend.model,
                latency_s=response.latency_s or latency,
                cost_usd=cost,
                from_cache=False,
                request_hash=key,
            )

    async def chat_many(
        self,
        requests: Iterable[Iterable[Message | Mapping[str, Any]]],
        params: SamplingParams | None = None,
    ) -> list[ChatResponse | LLMError]:
        """Run many requests concurrently (the scheduler bounds them); failures are returned."""

        async def one(msgs: Iterable[Message | Mapping[str, Any]]) -> ChatResponse | LLMError:
            try:
                return await self.chat(msgs, params)
            except LLMError as exc:
                return exc

        return list(await asyncio.gather(*(one(m) for m in requests)))


class ParseError(ValueError):
    """Raised by a parse function: the message is quoted back to the model in a re-ask."""


class UnparseableResponseError(LLMError):
    """The model's answer could not be parsed, re-asks included: a failure, never a result."""

    kind = "unparseable"

    def __init__(
        self,
        message: str,
        *,
        last_text: str = "",
        attempts: int = 0,
        responses: Sequence[ChatResponse] = (),
    ) -> None:
        super().__init__(message)
        self.last_text = last_text
        self.attempts = attempts
        #: every response of the failed exchange (paid for: their tokens and cost count)
        self.responses = tuple(responses)


DEFAULT_REASK = (
    "Your answer could not be used: {error}\nAnswer again, following the required format exactly."
)


async def chat_parsed(
    client: LLMClient,
    messages: Sequence[Message],
    parse: Callable[[str], T],
    params: SamplingParams | None = None,
    *,
    max_reasks: int = 2,
    reask: str = DEFAULT_REASK,
) -> tuple[T, list[ChatResponse]]:
    """Ask, parse the answer with ``parse`` (which raises :class:`ParseError`), and on failure
    re-ask up to ``max_reasks`` times quoting the error. Returns the parsed value and every
    response; raises :class:`UnparseableResponseError` with the last reason if none parsed."""
    convo = list(messages)
    responses: list[ChatResponse] = []
    error = ""
    for attempt in range(max_reasks + 1):
        response = await client.chat(convo, params)
        responses.append(response)
        try:
            return parse(response.text), responses
        except ParseError as exc:
            error = str(exc) or "unparseable answer"
        if attempt < max_reasks:
            convo += [
                Message("assistant", response.text),
                Message("user", reask.format(error=error)),
            ]
    raise UnparseableResponseError(
        f"could not parse the answer after {max_reasks + 1} attempts: {error}",
        last_text=responses[-1].text,
        attempts=len(responses),
        responses=responses,
    )


def wrap(
    backend: LLMBackend | LLMClient, *, store: CallStore | None = None, run_id: Any = None
) -> LLMClient:
    """An :class:`LLMClient` around ``backend`` (an already wrapped client is returned as is)."""
    if isinstance(backend, LLMClient):
        return backend
    return LLMClient(backend, store=store, run_id=run_id)


__all__ = [
    "CallStore",
    "ChatResponse",
    "CircuitBreaker",
    "ClientStats",
    "ConcurrencyLimit",
    "EndpointConfig",
    "EndpointUnavailableError",
    "GroupCommit",
    "LLMBackend",
    "LLMClient",
    "LLMConnectionError",
    "LLMError",
    "LLMTimeoutError",
    "MalformedResponseError",
    "MemoryCallStore",
    "Message",
    "MissingAPIKeyError",
    "ParseError",
    "PerLoop",
    "Pricing",
    "RateLimitedError",
    "RateLimiter",
    "RequestRejectedError",
    "RetriesExhaustedError",
    "SamplingParams",
    "Scheduler",
    "Secret",
    "ServerError",
    "TokenLogprob",
    "TransientLLMError",
    "UnparseableResponseError",
    "chat_parsed",
    "current_payer",
    "error_for_status",
    "estimate_tokens",
    "http_error",
    "parse_retry_after",
    "paying",
    "protect_loggers",
    "redact",
    "request_hash",
    "request_payload",
    "resolve_api_key",
    "sdk_errors",
    "timeout_error",
    "wrap",
]
