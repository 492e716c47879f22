"""Run orchestration: resolve the selected components, open the run directory, run the stages.

Planning happens before any compute: every selected component must exist and its options must
validate, so a typo costs nothing. Then :func:`execute` runs stage functions (:func:`stage_cache`,
:func:`stage_explain`, :func:`stage_score`) on a :class:`RunContext` that builds each heavy
component once; ``autointerp run`` runs them all, ``explain`` and ``score`` a subset. Every
result commits on its own with its provenance, a failing latent is recorded and never stops the
others, and :func:`check_failure_rate` decides the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import threading
from array import array
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from autointerp.components import (
    N_PROMOTED,
    ComponentFailure,
    Explainer,
    LatentRequest,
    Need,
    Scorer,
    check_needs,
    explain_one,
    needs_of,
    score_one,
)
from autointerp.config import CorpusSettings, RunConfig, dump_toml
from autointerp.errors import AutointerpError, ConfigError
from autointerp.examples import scored_examples
from autointerp.llm import EndpointUnavailableError, paying
from autointerp.plugins import Component, PluginManager
from autointerp.runlock import hold_run_dir
from autointerp.store import RunStore, Store, request_hash
from autointerp.types import Example, Explanation, LatentIds, LatentRef, Score

if TYPE_CHECKING:
    from autointerp.adapter import ModelAdapter
    from autointerp.llm import LLMClient

log = logging.getLogger("autointerp.pipeline")


@dataclass(frozen=True)
class Step:
    """One selected component: where it was selected, what it is, and its validated options."""

    field: str
    component: Component
    options: Any


@dataclass(frozen=True)
class Plan:
    config: RunConfig
    steps: tuple[Step, ...]
    #: components already built while planning (the LLM backend, to check its credentials)
    built: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.config.resolved_run_dir

    def step(self, field: str) -> Step:
        return next(s for s in self.steps if s.field == field)


def plan_run(config: RunConfig, plugins: PluginManager, source: str = "defaults") -> Plan:
    """Resolve and validate every selection before any model loads; all problems are reported
    together, one line each: unknown components and bad options, a factory that does not
    import, a need this run cannot supply, a missing credential."""
    problems: list[str] = []
    steps: list[Step] = []
    for where, kind, selection in config.selections():
        try:
            component = plugins.get(kind, selection.name)
            options = component.validate(
                selection.options, where=f"{source}: {where}", mode=config.mode
            )
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        except AutointerpError as exc:
            problems.append(f"{source}: {where}.name: {exc}")
            continue
        steps.append(Step(where, component, options))
    if config.executor is None and DEFAULT_EXECUTOR in plugins.names("executor"):
        default = plugins.get("executor", DEFAULT_EXECUTOR)  # work units run in process
        steps.append(Step("executor", default, default.validate({})))
    factories: dict[str, Any] = {}
    for step in steps:
        try:
            factories[step.field] = step.component.load_factory()
        except AutointerpError as exc:
            problems.append(f"{source}: {step.field}: {exc}")
    source_factory = next(
        (factories.get(s.field) for s in steps if s.component.kind == "feature_source"), None
    )
    directions = _has_directions(source_factory)
    for step in steps:
        if step.component.kind not in ("explainer", "scorer") or step.field not in factories:
            continue
        try:
            needs = _declared_needs(factories[step.field], step.component)
        except AutointerpError as exc:
            problems.append(f"{source}: {step.field}: {exc}")
            continue
        problem = check_needs(
            step.component.kind, step.component.name, needs, has_directions=directions,
            n_negatives=config.latents.n_negatives, where=f"{source}: {step.field}",
        )  # fmt: skip
        if problem:
            problems.append(problem)
    built: dict[str, Any] = {}
    llm = next((s for s in steps if s.field == "llm"), None)
    if not problems and llm is not None:
        try:  # builds no model: resolves the key, checks local files
            backend = llm.component.build(llm.options)
            if callable(check := getattr(backend, "check", None)):
                check()
            built["llm"] = backend
        except AutointerpError as exc:
            problems.append(f"{source}: llm: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
    return Plan(config=config, steps=tuple(steps), built=built)


#: the executor of a run that selects none
DEFAULT_EXECUTOR = "in-process"


def _declared_needs(factory: Any, component: Component) -> frozenset[Need] | None:
    """The needs a component's class declares (None: not known until it is built)."""
    declared = getattr(factory, "needs", None) if isinstance(factory, type) else None
    if declared is None or isinstance(declared, property):
        return None
    return needs_of(factory, component.kind, component.name)


def _has_directions(factory: Any) -> bool | None:
    """Whether a feature source's class gives decoder directions (None: not known statically)."""
    from autointerp.features import FeatureSource

    if not (isinstance(factory, type) and issubclass(factory, FeatureSource)):
        return None
    return factory.decoder_directions is not FeatureSource.decoder_directions


def prepare_run_dir(plan: Plan, store: Store | None = None) -> tuple[Path, int]:
    """Create the run directory and open a run in the results store, or reopen the run with this
    config (resume); record the config (``config.toml``, see :func:`record_config`); returns the
    directory and the run id. Call it holding the directory's lock (:func:`run` does).

    Runs compare by :func:`run_identity`, which leaves the run directory out: every run in a
    store ran in that directory, so ``--run-dir /abs/x`` and ``x`` (or a moved directory) are the
    same run."""
    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    table = plan.config.as_table()
    key = run_identity(table)
    with _opened(run_dir, store) as store:
        # the same config again is the same run, resumed; another config is a new run
        same = [
            r.id
            for r in store.runs()
            if r.name == plan.config.name and run_identity(r.config) == key
        ]
        sampler = _sampler_for(plan.config, store, same[-1] if same else None)
        if same:  # resumed: running again until this process ends it
            run_id = same[-1]
            store.resume_run(run_id)
        else:
            table["latents"]["test_sampler"] = sampler
            run_id = store.start_run(plan.config.name, table)
        record_config(plan, run_dir, run_id, store)
    return run_dir, run_id


def record_config(plan: Plan, run_dir: Path, run_id: int, store: Store | None = None) -> bool:
    """Write ``run_dir/config.toml`` (the config ``autointerp explain RUN`` and ``score RUN``
    resume) with this run's config, unless another run in the store stored latents and this one
    has not yet: an attempt with another config that fails before any work leaves the finished
    run's config in place (the store keeps every run's own config). Returns whether it wrote."""
    with _opened(run_dir, store) as store:
        if not store.has_latents(run_id) and any(
            store.has_latents(r.id) for r in store.runs() if r.id != run_id
        ):
            return False
        table = plan.config.as_table()
        table["latents"]["test_sampler"] = run_sampler(store, run_id)  # the run's own: resumes
    text = dump_toml(table)
    (run_dir / "config.toml").write_text(text, encoding="utf-8")
    return True


@contextlib.contextmanager
def _opened(run_dir: Path, store: Store | None) -> Iterator[Store]:
    """``store`` if the caller holds the run's store open, else the run directory's, opened for
    this block (functions below are usable alone and within :func:`run`'s one store)."""
    if store is not None:
        yield store
        return
    with Store.open(run_dir) as opened:
        yield opened


#: config fields that change how a run executes or what it adds, not what its records mean: a
#: rerun with other values (another scorer, more concurrency) resumes the same run; and where it
#: runs: the run directory holds the store, however its path is spelled
_EXECUTION_ONLY = ("scorers", "concurrency", "max_failure_rate", "threads", "executor", "run_dir")


#: example options added after runs were recorded, with the value that gives those runs'
#: examples: a run that leaves them at it has the identity of a run recorded without them
_LATENT_OPTIONS_ADDED = {"n_quantiles": 10, "train_sampler": "top", "train_top_share": 0.5}


def run_identity(table: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config table that identifies a run (scores are kept per scorer and options,
    so the scorers are not part of it; nor is the run directory, which is the store's own; nor
    the test sampler, which a run keeps from its start: :func:`run_sampler`). Example options
    added later count only where they differ from what older runs drew with
    (:data:`_LATENT_OPTIONS_ADDED`; the top-share counts only for a mixed train sample)."""
    out = {k: v for k, v in table.items() if k not in _EXECUTION_ONLY}
    latents = out.get("latents")
    if isinstance(latents, Mapping):
        mixed = latents.get("train_sampler") == "mixed"
        out["latents"] = {
            k: v
            for k, v in latents.items()
            if k != "test_sampler"
            and not (k in _LATENT_OPTIONS_ADDED and v == _LATENT_OPTIONS_ADDED[k])
            and not (k == "train_top_share" and not mixed)
        }
    return out


def run_sampler(store: Store, run_id: int) -> str:
    """The test-example sampler of a run: the one recorded when it began ("quantile-v1" for runs
    recorded before the option existed), so a resumed run draws the rest of its latents' test
    examples as it drew the first."""
    record = store.get_run(run_id)
    latents = record.config.get("latents", {}) if record is not None else {}
    return str(latents.get("test_sampler", "quantile-v1"))


def _sampler_for(config: RunConfig, store: Store, resumed: int | None) -> str:
    """The test sampler of a run being opened: a resumed run's own (one set explicitly to
    another is refused); else the one set; else that of the directory's latest run, so a run
    directory keeps drawing test examples one way; in a new directory, the default."""
    explicit = "test_sampler" in config.latents.model_fields_set
    if resumed is not None:
        pinned = run_sampler(store, resumed)
        if explicit and config.latents.test_sampler != pinned:
            raise ConfigError(
                f"latents.test_sampler = {config.latents.test_sampler!r}, but run {resumed} of "
                f"{config.resolved_run_dir} drew its test examples with {pinned!r}: set "
                f"{pinned!r} (or leave it out) to resume it, or use another run name or --run-dir"
            )
        return pinned
    runs = store.runs()
    if explicit or not runs:
        return config.latents.test_sampler
    return run_sampler(store, runs[-1].id)


def config_hash(table: Mapping[str, Any]) -> str:
    """A short content hash of a run's identity, recorded in every record's provenance."""
    return request_hash(run_identity(table))[:16]


def finish_run(run_dir: Path, run_id: int, status: str, store: Store | None = None) -> None:
    with _opened(run_dir, store) as store:
        store.finish_run(run_id, status)


# -- streaming work with bounded concurrency -------------------------------------------------------

T = TypeVar("T")


@dataclass
class StageSummary:
    done: int = 0
    skipped: int = 0  # already in the store (a resumed run)
    failed: int = 0


def llm_meter(stats: Any) -> str:
    """``calls in flight · tokens · cost`` of an LLM client's counters (plain attribute reads)."""
    if stats is None:
        return ""
    tokens = stats.prompt_tokens + stats.completion_tokens
    return f"{stats.in_flight} in flight · {tokens:,} tokens · ${stats.cost_usd:.4f}"


def executor_status(executor: Any) -> str:
    """What an executor says about its workers (its optional ``status()``, e.g. the Ray
    executor's workers alive); "" when it has nothing to say. Never raises: it is a display."""
    status = getattr(executor, "status", None)
    if status is None:
        return ""
    try:
        return str(status() or "")
    except Exception:
        log.debug("executor status failed", exc_info=True)
        return ""


def stage_progress(llm: Any = None, *, progress: bool = True, executor: Any = None) -> Any:
    """One rich display for a stage: bar, done/total, latents/s, elapsed, and with an LLM client
    its calls in flight, tokens and cost so far (read from its counters at each refresh), and
    with an executor that has a ``status()`` its line (e.g. workers alive)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        # over the whole stage: rich's windowed speed jumps when answers arrive in bursts
        def render(self, task: Any) -> Text:
            elapsed = task.elapsed or 0.0
            rate = task.completed / elapsed if elapsed > 0 else 0.0
            return Text(f"{rate:.2f} latents/s")

    class Meter(ProgressColumn):
        def render(self, task: Any) -> Text:
            parts = (llm_meter(getattr(llm, "stats", None)), executor_status(executor))
            return Text(" · ".join(p for p in parts if p))

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        Meter(),
        TimeElapsedColumn(),
        disable=not progress,
        transient=True,
    )


async def run_pool(
    items: Iterable[T] | AsyncIterator[T],
    handle: Callable[[T], Awaitable[bool]],
    *,
    description: str,
    concurrency: int,
    total: int | None = None,
    progress: bool = True,
    llm: Any = None,
    bar: Any = None,
) -> StageSummary:
    """Feed ``items`` (read lazily; an async iterator: as they arrive) to ``concurrency``
    workers; ``handle`` returns True on success.

    Memory stays bounded whatever the number of items: only ``concurrency`` are in flight. The
    pool adds a row to ``bar`` (a :func:`stage_progress` display shared by pools running side by
    side), else shows a display of its own.
    """
    summary = StageSummary()
    take = _taker(items)

    async def worker(display: Any, task: Any) -> None:
        while (item := await take()) is not _END:  # each item goes to exactly one worker
            ok = await handle(item)
            summary.done += ok
            summary.failed += not ok
            display.advance(task)

    async def run(display: Any) -> None:
        task = display.add_task(description, total=total)
        await asyncio.gather(*(worker(display, task) for _ in range(max(1, concurrency))))

    if bar is not None:
        await run(bar)
    else:
        with stage_progress(llm, progress=progress) as display:
            await run(display)
    return summary


#: the end of a pool's items
_END: Any = object()


def _taker(items: Iterable[T] | AsyncIterator[T]) -> Callable[[], Awaitable[Any]]:
    """A coroutine function giving the next item, or ``_END``: workers share one source (an
    async one is read by one worker at a time, so items that wait to arrive are handed out in
    order)."""
    if hasattr(items, "__anext__"):
        source = cast("AsyncIterator[T]", items)
        lock = asyncio.Lock()

        async def take_async() -> Any:
            async with lock:
                return await anext(source, _END)

        return take_async
    iterator = iter(cast("Iterable[T]", items))

    async def take() -> Any:
        return next(iterator, _END)

    return take


def _pending(
    items: Iterable[T] | AsyncIterator[T], is_done: Callable[[T], bool], summary: StageSummary
) -> Iterator[T] | AsyncIterator[T]:
    """The items not finished yet, lazily; finished ones are counted as skipped."""
    if hasattr(items, "__anext__"):
        return _pending_async(cast("AsyncIterator[T]", items), is_done, summary)
    return (x for x in cast("Iterable[T]", items) if not _skipped(x, is_done, summary))


async def _pending_async(
    items: AsyncIterator[T], is_done: Callable[[T], bool], summary: StageSummary
) -> AsyncIterator[T]:
    async for item in items:
        if not _skipped(item, is_done, summary):
            yield item


def _skipped(item: T, is_done: Callable[[T], bool], summary: StageSummary) -> bool:
    if is_done(item):
        summary.skipped += 1
        return True
    return False


class Arrivals(Generic[T]):
    """Items one stage makes while another consumes them (explanations, scored as soon as they
    are explained): every subscriber sees every item, in order, until :meth:`close`. Each
    subscriber holds at most ``maximum`` items: a stage that makes them faster than another
    consumes them waits, so memory does not grow with the number of latents."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._queues: list[asyncio.Queue[Any]] = []
        self._closed = False
        #: set once every subscriber has subscribed: the making stage waits for it
        self.ready = asyncio.Event()

    def subscribe(self) -> AsyncIterator[T]:
        queue: asyncio.Queue[Any] = asyncio.Queue(self.maximum)
        self._queues.append(queue)

        async def items() -> AsyncIterator[T]:
            while not (self._closed and queue.empty()):
                if (item := await queue.get()) is _END:
                    return
                yield item

        return items()

    async def put(self, item: T) -> None:
        for queue in self._queues:
            await queue.put(item)

    def close(self) -> None:
        """No more items: subscribers end once they have read what is queued (never waits: a
        full queue's subscriber sees the end when it has emptied it)."""
        self._closed = True
        for queue in self._queues:
            if not queue.full():
                queue.put_nowait(_END)


def _reason(exc: BaseException, component: str = "") -> str:
    """A failure's one-line reason; errors that are not ours name their type and the component
    that raised them (a bug to report to its plugin)."""
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    if not isinstance(exc, AutointerpError):
        reason = f"{type(exc).__name__}: {reason}"
        if component:
            reason = f"{component} raised {reason}"
    return str(reason).splitlines()[0] if reason else type(exc).__name__


def _bound(store: Store | RunStore, run_id: int | None) -> RunStore:
    if isinstance(store, RunStore):
        return store
    if run_id is None:
        raise ValueError("a Store needs the run_id (or pass Store.bind(run_id))")
    return store.bind(run_id)


def stop_if_endpoint_gone(llm: LLMClient | None, exc: BaseException) -> None:
    """Raise the run-ending :class:`EndpointUnavailableError` when the LLM endpoint was given up
    on, however a component wrapped it: no other latent can be asked either."""
    if isinstance(exc, EndpointUnavailableError):
        raise exc
    gone = getattr(llm, "unavailable", None)
    if isinstance(gone, EndpointUnavailableError):
        raise gone from None


# -- explaining ------------------------------------------------------------------------------------


#: what an explainer gets for one latent (the name before requests were one type)
LatentWork = LatentRequest

#: an explanation just made, with the request it was made from
Made = tuple[Explanation, LatentRequest]


async def explain_latents(
    work: Iterable[LatentRequest],
    explainer: Explainer,
    explainer_name: str,
    llm: LLMClient,
    store: Store | RunStore,
    run_id: int | None = None,
    *,
    concurrency: int = 256,
    seed: int = 0,
    total: int | None = None,
    progress: bool = True,
    provenance: Mapping[str, Any] | None = None,
    on_explained: Callable[[Made], Awaitable[None]] | None = None,
    bar: Any = None,
    done: AbstractSet[LatentRef] | None = None,
) -> StageSummary:
    """Explain every latent of ``work`` with at most ``concurrency`` latents in flight.

    Each explanation (or failure, with its reason) is committed as it completes, then handed to
    ``on_explained`` with its request (the score stage, when it runs alongside: it scores the
    request's test examples without reading them back); latents already explained in this
    run are skipped, so a killed run resumes where it stopped. A latent that fails, whatever the
    error, is recorded and never stops the others.
    """
    needs = needs_of(explainer, "explainer", explainer_name) or frozenset()
    prov = dict(provenance or {})
    rs = _bound(store, run_id)

    async def handle(item: LatentRequest) -> bool:
        try:
            with paying("explain", explainer_name):  # the ledger files its LLM calls under it
                explanation = await explain_one(
                    explainer, explainer_name, item, llm, needs, seed=seed
                )
        except Exception as exc:  # one latent's failure never aborts the run
            stop_if_endpoint_gone(llm, exc)
            log.debug("explaining %s failed", item.latent, exc_info=True)
            reason = _reason(exc, f"explainer '{explainer_name}'")
            rs.put_failure(item.latent, "explain", explainer_name, reason)
            return False
        if prov:
            explanation = replace(explanation, provenance={**explanation.provenance, **prov})
        rs.put_explanation(explanation)
        rs.clear_failure(item.latent, "explain", explainer_name)
        if on_explained is not None:
            await on_explained((explanation, item))
        return True

    summary = StageSummary()
    if done is None:  # the caller has not read them: latents already explained in this run
        done = rs.explained(explainer_name)
    pending = _pending(work, lambda w: w.latent in done, summary)
    result = await run_pool(
        pending,
        handle,
        description=f"explaining ({explainer_name})",
        concurrency=concurrency,
        total=total,
        progress=progress,
        llm=llm,
        bar=bar,
    )
    result.skipped = summary.skipped
    return result


# -- scoring ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreWork:
    """What a scorer gets for one explanation: held-out activating examples and negatives.

    ``extras`` go to ``score()`` as keywords (``direction=`` for intervention); ``error`` set:
    this explanation cannot be scored (its inputs could not be made), a failure."""

    explanation: Explanation
    examples: Sequence[Example]
    negatives: Sequence[Example] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def request(self) -> LatentRequest:
        return LatentRequest(
            self.explanation.latent, negatives=self.negatives, error=self.error,
            test=self.examples, direction=self.extras.get("direction"),
            direction_site=self.extras.get("site"),
        )  # fmt: skip


async def score_explanations(
    work: Iterable[ScoreWork] | AsyncIterator[ScoreWork],
    scorer: Scorer,
    scorer_name: str,
    store: Store | RunStore,
    run_id: int | None = None,
    *,
    llm: LLMClient | None = None,
    adapter: ModelAdapter | SerialAdapter | None = None,
    concurrency: int = 256,
    seed: int = 0,
    total: int | None = None,
    progress: bool = True,
    provenance: Mapping[str, Any] | None = None,
    bar: Any = None,
    done: Mapping[str, AbstractSet[LatentRef]] | None = None,
) -> StageSummary:
    """Score every explanation of ``work``; each score (or failure) is committed as it completes
    and explanations this scorer already scored in this run (with the same options, when the
    provenance has an ``options_hash``) are skipped: ``done`` (per explainer) when the caller
    has read them, else read from the store."""
    prov = dict(provenance or {})
    same = {"options_hash": prov["options_hash"]} if "options_hash" in prov else None
    needs = needs_of(scorer, "scorer", scorer_name)
    rs = _bound(store, run_id)

    async def handle(item: ScoreWork) -> bool:
        e = item.explanation
        component = f"{scorer_name}/{e.explainer}"
        try:
            with paying("score", component):  # the ledger files its LLM calls under it
                score = await score_one(
                    scorer, scorer_name, e, item.request, llm, needs, seed=seed, adapter=adapter
                )
        except Exception as exc:  # one latent's failure never aborts the run
            stop_if_endpoint_gone(llm, exc)
            log.debug("scoring %s failed", e.latent, exc_info=True)
            reason = _reason(exc, f"scorer '{scorer_name}'")
            rs.put_failure(e.latent, "score", component, reason)
            return False
        if prov:
            score = replace(score, provenance={**score.provenance, **prov})
        rs.put_score(score, clears=component)  # one transaction: score in, failure out
        return True

    summary = StageSummary()
    scored = dict(done or {})  # per explainer, read from the store once

    def is_done(item: ScoreWork) -> bool:
        explainer = item.explanation.explainer
        if explainer not in scored:
            scored[explainer] = rs.scored(explainer, scorer_name, same)
        return item.explanation.latent in scored[explainer]

    pending = _pending(work, is_done, summary)
    result = await run_pool(
        pending,
        handle,
        description=f"scoring ({scorer_name})",
        concurrency=concurrency,
        total=total,
        progress=progress,
        llm=llm,
        bar=bar,
    )
    result.skipped = summary.skipped
    return result


# -- the whole run ---------------------------------------------------------------------------------

#: the stages of ``autointerp run``, in order; ``explain`` and ``score`` run subsets
STAGES = ("cache", "explain", "score")


@dataclass
class RunSummary:
    cache_dir: Path | None
    latents: LatentIds
    explain: StageSummary | None
    scores: dict[str, StageSummary]
    llm_stats: Any = None  #: the LLM client's counters (calls, tokens, cost) of this process


class FailureRateError(AutointerpError):
    """More latents of a stage failed than ``max_failure_rate`` allows (the run exits 1)."""


def _run_decoder(ctx: RunContext) -> Any:
    """The run's token decoder, built once (examples and promoted tokens share its cache)."""
    if "decoder" not in ctx._built:
        ctx._built["decoder"] = _decoder(ctx.build("model").tokenizer)
    return ctx._built["decoder"]


def _decoder(tokenizer: Any) -> Any:
    """Token strings of ``tokenizer`` by id, decoded once per id: call it on a list of ids, or
    ``.lookup`` an array of them (:class:`~autointerp.examples.TokenStrings`)."""
    from autointerp.examples import TokenStrings

    return TokenStrings.of(tokenizer)


def _options_hash(options: Any) -> str:
    data = options.model_dump(mode="json") if hasattr(options, "model_dump") else options
    return request_hash({"options": data})[:16]


def prompt_version(component: Any) -> str:
    """The prompt-template version of an explainer or scorer: its ``prompt_version`` attribute,
    else its loaded template's ``name.vN``, else "1"."""
    version = getattr(component, "prompt_version", None)
    if version is not None:
        return str(version)
    template = getattr(component, "template", None) or getattr(component, "prompt", None)
    name, number = getattr(template, "name", None), getattr(template, "version", None)
    if isinstance(name, str) and number is not None:
        return f"{name}.v{number}"
    return "1"


#: latents in flight with a batch-API client when ``concurrency`` is not set: a batch holds the
#: requests of the latents in flight, and memory holds their examples
BATCH_IN_FLIGHT = 4096


class RunContext:
    """One invocation's view of a run: its plan, directory and id, and the heavy components
    (adapter, feature source, LLM backend), each built on first use and then shared by stages."""

    def __init__(self, plan: Plan, run_dir: Path, run_id: int, *, progress: bool = True) -> None:
        self.plan, self.run_dir, self.run_id, self.progress = plan, run_dir, run_id, progress
        self.config = plan.config
        self._built: dict[str, Any] = {}

    def build(self, field_name: str) -> Any:
        """The component of ``field_name`` (e.g. ``"model"``, ``"scorers[0]"``), built once."""
        if field_name not in self._built:
            if field_name == "model" and self.config.threads:
                import torch

                torch.set_num_threads(self.config.threads)
            if field_name == "executor" and not any(s.field == "executor" for s in self.plan.steps):
                from autointerp.executors import InProcessExecutor  # none registered: built in

                self._built[field_name] = InProcessExecutor()
                return self._built[field_name]
            step = self.plan.step(field_name)
            prebuilt = self.plan.built.get(field_name)
            self._built[field_name] = prebuilt or step.component.build(step.options)
        return self._built[field_name]

    @property
    def latents_in_flight(self) -> int:
        """Latents in flight in the LLM stages: ``concurrency``; with a batch-API client and no
        ``concurrency`` set, enough to fill its batches (up to :data:`BATCH_IN_FLIGHT`)."""
        backend = self.build("llm")
        if getattr(backend, "batched", False) and "concurrency" not in self.config.model_fields_set:
            per_batch = getattr(getattr(backend, "config", None), "max_batch_requests", 0)
            return max(self.config.concurrency, min(int(per_batch), BATCH_IN_FLIGHT))
        return self.config.concurrency

    @property
    def source_key(self) -> str:
        """``<feature source>/<site>``, the latents' source in the store."""
        return (
            f"{self.plan.step('feature_source').component.name}/{self.build('feature_source').site}"
        )

    def provenance(self, field_name: str, component: Any) -> dict[str, Any]:
        """What every record a component writes carries: config hash, model ids, the
        component's name, version, options hash and prompt version, the library version."""
        from autointerp import __version__

        step, model, llm = (
            self.plan.step(field_name),
            self.plan.step("model"),
            self.plan.step("llm"),
        )
        backend = self.build("llm")
        return {
            "config_hash": config_hash(self.config.as_table()),
            "subject_model": f"{model.component.name}:{getattr(model.options, 'model', '')}",
            "feature_source": self.source_key,
            "llm_client": llm.component.name,
            "llm_model": str(getattr(backend, "model", "")),
            "component": step.component.name,
            "component_version": step.component.version,
            "options_hash": _options_hash(step.options),
            "prompt_version": prompt_version(component),
            "autointerp_version": __version__,
        }


def cache_corpus(
    adapter: ModelAdapter,
    source: Any,
    corpus: CorpusSettings,
    cache_dir: Path,
    info: Mapping[str, Any],
    *,
    seed: int = 0,
    progress: bool = True,
    executor: Any = None,
) -> Any:
    """Cache ``source``'s activations on ``corpus`` into ``cache_dir`` (resuming a partial cache;
    refusing one made from other inputs) and return the opened cache: the cache stage of a run
    and ``autointerp cache`` alike. An ``executor`` with a ``cache_chunks`` method (same
    arguments as :func:`~autointerp.cache.build_cache`) caches in its workers instead."""
    import itertools

    from autointerp.cache import ActivationCache, build_cache
    from autointerp.corpus import iter_texts, token_windows

    c = corpus
    windows = token_windows(
        adapter, iter_texts(c.path, c.text_field), seq_len=c.ctx_len, batch_size=c.batch_size,
        bos=c.bos, seed=seed,
    )  # fmt: skip
    n_batches = max(1, c.n_tokens // (c.ctx_len * c.batch_size))
    build = getattr(executor, "cache_chunks", None) or build_cache
    build(
        adapter, source, itertools.islice(windows, n_batches), cache_dir, dict(info),
        progress=progress, total_batches=n_batches,
    )  # fmt: skip
    return ActivationCache(cache_dir)


def stage_cache(ctx: RunContext, store: RunStore | None = None) -> tuple[Path, LatentIds]:
    """Cache the feature source's activations (resuming a partial cache), choose the latents and
    record their statistics in the store; returns the cache folder and the chosen latents."""
    plan, config = ctx.plan, ctx.config
    adapter, source = ctx.build("model"), ctx.build("feature_source")
    source_step = plan.step("feature_source")
    info = {
        "model": plan.step("model").options.model_dump(),
        "adapter": plan.step("model").component.name,
        "source": source_step.component.name,
        "source_options": source_step.options.model_dump(),
        "corpus": config.corpus.model_dump(),
        "seed": config.seed,
    }
    cache_dir = ctx.run_dir / "cache" / source.site
    cache = cache_corpus(
        adapter, source, config.corpus, cache_dir, info, seed=config.seed, progress=ctx.progress,
        executor=ctx.build("executor"),
    )  # fmt: skip
    stats = cache.stats()
    chosen = _choose_latents(config.latents, cache.n_latents, stats["count"])
    key = ctx.source_key
    with _opened(ctx.run_dir, store and store.store) as opened:
        opened.bind(ctx.run_id).put_latents(
            key,
            ({"index": i, "frequency": float(stats["frequency"][i]),
              "max_activation": float(stats["max"][i]), "mean": float(stats["mean"][i])}
             for i in chosen),  # streamed into the insert: no list of a million rows
        )  # fmt: skip
    ctx._built["cache"] = cache
    return cache_dir, LatentIds.from_indices({key: chosen})  # 8 bytes a latent, not an object


def _choose_latents(lat: Any, width: int, count: Any) -> list[int]:
    """The latents a run explains: ``latents.indices``, else the first ``latents.n`` that fire at
    least ``min_activations`` times. Asking for what the source does not have is an error; fewer
    eligible latents than ``n`` is said, not hidden."""
    if lat.indices is not None:
        beyond = [i for i in lat.indices if not 0 <= i < width]
        if beyond:
            more = f" and {len(beyond) - 1} more" if len(beyond) > 1 else ""
            raise ConfigError(
                f"latents.indices: {beyond[0]}{more} outside the feature source's {width} latents "
                f"(0..{width - 1})"
            )
        return list(lat.indices)
    if lat.n > width:
        raise ConfigError(f"latents.n = {lat.n}: the feature source has only {width} latents")
    eligible = (count >= lat.min_activations).nonzero()[0]
    if len(eligible) == 0:
        raise ConfigError(
            f"no latent fires at least latents.min_activations = {lat.min_activations} times in "
            "the cached tokens: cache more (corpus.n_tokens) or lower latents.min_activations"
        )
    if len(eligible) < lat.n:
        log.warning(
            "latents.n = %d, but only %d latents fire at least %d times: explaining those",
            lat.n, len(eligible), lat.min_activations,
        )  # fmt: skip
    return [int(i) for i in eligible[: lat.n]]


def _cache(ctx: RunContext) -> Any:
    """The run's activation cache (built by :func:`stage_cache`, else opened from disk)."""
    if "cache" not in ctx._built:
        from autointerp.cache import ActivationCache

        site = ctx.build("feature_source").site
        ctx._built["cache"] = ActivationCache(ctx.run_dir / "cache" / site)
    return ctx._built["cache"]


def _latent_work(
    ctx: RunContext,
    latents: Iterable[LatentRef],
    store: RunStore,
    skip: AbstractSet[LatentRef],
    needs: frozenset[Need] = frozenset(),
) -> Iterator[LatentRequest]:
    """Build each pending latent's examples when a worker asks for them (in latent ranges, on the
    run's executor), store them, and hand them on (with promoted tokens when the explainer needs
    them): memory holds the examples of the latents in flight, not of the whole run."""
    from autointerp.examples import ExampleSettings, ExampleUnit, build_unit

    lat, config = ctx.config.latents, ctx.config
    settings = ExampleSettings(
        window=lat.window, n_train=lat.n_train, n_test=lat.n_test,
        n_negatives=lat.n_negatives, negatives=lat.negatives,
        similar_neighbours=lat.similar_neighbours, seed=config.seed,
        test_sampler=run_sampler(store.store, store.run_id), n_quantiles=lat.n_quantiles,
        train_sampler=lat.train_sampler, train_top_share=lat.train_top_share,
    )  # fmt: skip
    model = ctx.build("model")
    decode = _run_decoder(ctx)
    embeddings = _token_embeddings_file(ctx, model) if _wants_neighbours(settings) else None
    cache_dir = str(_cache(ctx).dir)
    pending = array("q")  # indices of the run's source: 8 bytes a latent, not an object each
    for ref in latents:
        if ref in skip:
            yield LatentRequest(ref)  # counted as skipped downstream; nothing built
        else:
            pending.append(ref.index)
    units = (
        ExampleUnit(cache_dir, ctx.source_key, settings,
                    tuple(pending[i : i + UNIT_LATENTS]), embeddings)
        for i in range(0, len(pending), UNIT_LATENTS)
    )  # fmt: skip
    for built in ctx.build("executor").map(build_unit, units):
        store_examples(store, built, decode)
        for example_set in built:
            ex = example_set.examples(decode)
            ref = ex.latent
            error = None if ex.train else "no activating examples in the cache"
            promoted: list[tuple[str, float]] = []
            if error is None and Need.PROMOTED_TOKENS in needs:
                try:
                    promoted = _promoted_tokens(ctx, ref.index)
                except Exception as exc:  # e.g. a source without decoder directions
                    error = f"no promoted tokens: {_reason(exc)}"
            yield LatentRequest(ref, ex.train, ex.negatives, promoted, error, test=ex.test)


def store_examples(store: RunStore, sets: Sequence[Any], strings: Any) -> int:
    """Store a work unit's example sets in one transaction, with the token strings they use
    (``strings``: the run's :class:`~autointerp.examples.TokenStrings`); returns the number of
    examples."""
    import numpy as np

    if not sets:
        return 0
    new = strings.unsaved(np.unique(np.concatenate([x.tokens.reshape(-1) for x in sets])))
    store.put_example_sets(sets, new)
    strings.saved(new)
    return sum(len(x) for x in sets)


#: latents per example-building work unit
UNIT_LATENTS = 16


def _token_embeddings_file(ctx: RunContext, adapter: Any) -> str:
    """The model's token embeddings saved once beside the cache (``.npy``, memory-mapped by the
    example builders wherever they run)."""
    import numpy as np

    path = ctx.run_dir / "cache" / "token-embeddings.npy"
    if not path.is_file():
        partial = path.with_suffix(".partial.npy")
        np.save(partial, _token_embeddings(adapter))
        partial.replace(path)
    return str(path)


def _promoted_tokens(ctx: RunContext, index: int) -> list[tuple[str, float]]:
    """The tokens latent ``index``'s decoder direction promotes most through the model's final
    norm and unembedding, as (token, logit) pairs, strongest first."""
    import torch

    model = ctx.build("model")
    vector, site = _direction(ctx, index)
    if vector.shape[-1] != model.d_model:
        raise ComponentFailure(
            f"the direction at {site} has width {vector.shape[-1]}, not the residual stream's "
            f"{model.d_model}: it cannot be unembedded"
        )
    direction = torch.as_tensor(vector)
    if (like := model.input_embeddings()) is not None:
        direction = direction.to(device=like.device, dtype=like.dtype)
    with torch.no_grad():
        logits = model.unembed(direction[None]).float().reshape(-1)
        values, ids = torch.topk(logits, min(N_PROMOTED, logits.numel()))
    tokens = _run_decoder(ctx)(ids.tolist())
    return list(zip(tokens, values.tolist(), strict=True))


def _wants_neighbours(settings: Any) -> bool:
    return settings.negatives in ("similar", "mixed") and settings.similar_neighbours > 0


def _token_embeddings(adapter: Any) -> Any:
    """The adapter's token embeddings as a float32 array ``[vocab, d_model]``, read once."""
    emb = adapter.input_embeddings()
    if emb is None:
        raise ConfigError(
            f"latents.similar_neighbours needs token embeddings, which the '{adapter.name}' "
            "adapter does not give: set latents.similar_neighbours = 0"
        )
    return emb.detach().float().cpu().numpy()


async def stage_explain(
    ctx: RunContext,
    store: RunStore,
    llm: LLMClient,
    latents: Collection[LatentRef],
    arrivals: Arrivals[Made] | None = None,
    bar: Any = None,
) -> StageSummary:
    """Examples -> explanations for every latent not explained yet in this run; each new one is
    handed to ``arrivals`` (the score stage running alongside), closed at the end."""
    try:
        step = ctx.plan.step("explainer")
        explainer = ctx.build("explainer")
        needs = needs_of(explainer, "explainer", step.component.name) or frozenset()
        done = store.explained(step.component.name)
        pending = sum(1 for ref in latents if ref not in done)
        if arrivals is not None:
            await arrivals.ready.wait()  # every scorer listens before the first one arrives
        return await explain_latents(
            _latent_work(ctx, latents, store, done, needs), explainer, step.component.name, llm,
            store, concurrency=ctx.latents_in_flight, seed=ctx.config.seed, total=pending,
            progress=ctx.progress, provenance=ctx.provenance("explainer", explainer),
            on_explained=arrivals.put if arrivals is not None else None, bar=bar, done=done,
        )  # fmt: skip
    finally:
        if arrivals is not None:
            arrivals.close()


ScoredExamples = tuple[Sequence[Example], Sequence[Example]]


#: the examples a scorer gets (those shown to the explainer are not even decoded)
SCORED_ROLES = ("test", "negative")


class SharedExamples:
    """Each latent's stored test examples and negatives, read and decoded once for the scorers of
    a stage that run side by side (:meth:`reader`): they walk the same explanations in the same
    order, at most a few hundred latents apart, so a latent's examples are kept until every
    scorer that has yet to score it has taken them. At most ``keep`` latents' examples are kept
    (the oldest dropped first; a scorer that far behind reads them again). Scorers share the
    same frozen :class:`Example` objects and never change them."""

    def __init__(self, store: RunStore, keep: int) -> None:
        self._store = store
        self._keep = max(1, keep)
        self._done: list[AbstractSet[LatentRef]] = []  # per reader: latents it will not ask for
        self._kept: OrderedDict[LatentRef, list[Any]] = OrderedDict()  # [examples, takers left]
        self.reads = 0

    def reader(self, done: AbstractSet[LatentRef]) -> Callable[[LatentRef], ScoredExamples]:
        """A scorer's way to its latents' examples; ``done``: the latents it skips."""
        self._done.append(done)
        return self._take

    def _take(self, latent: LatentRef) -> ScoredExamples:
        kept = self._kept.get(latent)
        if kept is not None:
            kept[1] -= 1
            if not kept[1]:
                del self._kept[latent]
            return cast("ScoredExamples", kept[0])
        self.reads += 1
        examples = scored_examples(self._store.examples(latent, roles=SCORED_ROLES))
        others = sum(latent not in done for done in self._done) - 1
        if others > 0:
            self._kept[latent] = [examples, others]
            if len(self._kept) > self._keep:
                self._kept.popitem(last=False)
        return examples


def _read_examples(store: RunStore) -> Callable[[LatentRef], ScoredExamples]:
    """A latent's stored test examples and negatives, read for one scorer."""
    return lambda latent: scored_examples(store.examples(latent, roles=SCORED_ROLES))


def _score_work(
    ctx: RunContext,
    read: Callable[[LatentRef], ScoredExamples],
    explanations: Iterable[Explanation],
    needs: frozenset[str],
    skip: AbstractSet[LatentRef],
) -> Iterator[ScoreWork]:
    """Each explanation with its latent's stored test examples and negatives (``read`` per
    latent, when a worker asks) and, for scorers that need it, the latent's decoder direction
    (with ``site=`` where the directions live elsewhere than the site the source reads:
    neurons)."""
    for e in explanations:
        yield _score_item(ctx, read, e, needs, skip)


async def _score_arrivals(
    ctx: RunContext,
    read: Callable[[LatentRef], ScoredExamples],
    explanations: Iterable[Explanation],
    arriving: AsyncIterator[Made],
    needs: frozenset[str],
    skip: AbstractSet[LatentRef],
) -> AsyncIterator[ScoreWork]:
    """:func:`_score_work` of the stored ``explanations``, then of each explanation as it
    arrives from the explain stage running alongside, with the examples it was made from."""
    for e in explanations:
        yield _score_item(ctx, read, e, needs, skip)
    async for e, request in arriving:
        yield _score_item(ctx, read, e, needs, skip, (request.test, request.negatives))


def _score_item(
    ctx: RunContext,
    read: Callable[[LatentRef], ScoredExamples],
    e: Explanation,
    needs: frozenset[str],
    skip: AbstractSet[LatentRef],
    examples: ScoredExamples | None = None,
) -> ScoreWork:
    if e.latent in skip:
        return ScoreWork(e, ())  # counted as skipped downstream; nothing read
    test, negatives = examples or read(e.latent)
    extras: dict[str, Any] = {}
    error = None
    if "direction" in needs:
        try:
            extras["direction"], site = _direction(ctx, e.latent.index)
            if site != ctx.build("feature_source").site:
                extras["site"] = site
        except Exception as exc:  # e.g. a feature source with no decoder: this score fails
            error = _reason(exc)
    return ScoreWork(e, test, negatives, extras, error)


def _direction(ctx: RunContext, index: int) -> tuple[Any, str]:
    """Latent ``index``'s decoder direction from the feature source, as a float32 array, and the
    site it lives in."""
    import torch

    source = ctx.build("feature_source")
    if (bind := getattr(source, "bind_model", None)) is not None:  # duck-typed sources may lack it
        bind(ctx.build("model"))
    with torch.no_grad():
        vector = source.decoder_directions(torch.tensor([index]))[0]
    return vector.detach().float().cpu().numpy(), getattr(source, "direction_site", source.site)


class SerialAdapter:
    """A model adapter whose forward passes run one at a time.

    Scorers run the model in worker threads (``asyncio.to_thread``) for many latents at once, and
    an adapter's interventions and captures are hooks on shared modules for the duration of a
    forward: two passes at once would steer or capture each other. Everything else is delegated.
    """

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter
        self._lock = threading.Lock()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._adapter.forward(*args, **kwargs)

    def step(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._adapter.step(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


#: during the score stage, a full (oldest-generation) collection at most once per this many
#: collections of the middle generation (CPython's default: 10)
SCORE_FULL_COLLECTION_EVERY = 1000

_collections_held = 0


@contextlib.contextmanager
def fewer_full_collections() -> Iterator[None]:
    """Collect the oldest generation less often while scoring.

    Hundreds of latents in flight (their examples, prompts and LLM responses: ~0.5M objects) live
    long enough to reach the oldest generation, so with CPython's default thresholds a full
    collection traversed them all every second or so, a third of the score stage's CPU. Inside
    this block what was alive before it is frozen out of the collector's reach (:func:`gc.freeze`:
    modules, the model, the config never become garbage here) and a full collection waits for
    100x more collections of the middle generation; young cycles are collected as before.
    Nested blocks share the outermost one's settings; the thresholds and frozen objects are
    restored on exit."""
    global _collections_held
    outermost = _collections_held == 0
    thresholds = gc.get_threshold()
    if outermost:
        gc.freeze()
        young, middle, old = thresholds
        gc.set_threshold(young, middle, max(old, SCORE_FULL_COLLECTION_EVERY))
    _collections_held += 1
    try:
        yield
    finally:
        _collections_held -= 1
        if outermost:
            gc.set_threshold(*thresholds)
            gc.unfreeze()


async def stage_score(
    ctx: RunContext,
    store: RunStore,
    llm: LLMClient,
    latents: Collection[LatentRef],
    arrivals: Arrivals[Made] | None = None,
    bar: Any = None,
) -> dict[str, StageSummary]:
    """Every selected scorer on every explanation of the run's latents not scored yet; the
    scorers run side by side (each with ``concurrency`` latents in flight), one display row each.
    With ``arrivals`` (the explain stage running alongside) an explanation is scored as soon as it
    is made; scorers that run on an executor's workers start when the explain stage ends.
    """
    with fewer_full_collections():
        explainer_name = ctx.plan.step("explainer").component.name
        # compact: a million latents are 8 MB here, not ~100
        wanted = latents if isinstance(latents, LatentIds) else LatentIds(latents)
        explained = store.explained(explainer_name) & wanted

        def explanations(among: AbstractSet[LatentRef] = explained) -> Iterator[Explanation]:
            """Streamed from the store, for each scorer: those made before this stage began (the
            explain stage running alongside hands on the others), or ``among`` other latents."""
            return (e for e in store.iter_explanations(explainer_name) if e.latent in among)

        jobs: dict[str, Callable[..., Awaitable[StageSummary]]] = {}
        scorers = [step for step in ctx.plan.steps if step.component.kind == "scorer"]
        shared = SharedExamples(store, keep=2 * ctx.latents_in_flight)
        try:
            for step in scorers:
                jobs[step.component.name] = _score_job(
                    ctx, store, llm, step, wanted, explained, explanations, arrivals, shared
                )
        finally:
            if arrivals is not None:
                arrivals.ready.set()
        if not jobs:
            return {}
        if bar is not None:
            results = await asyncio.gather(*(job(bar=bar) for job in jobs.values()))
        else:
            with stage_progress(llm, progress=ctx.progress) as display:
                results = await asyncio.gather(*(job(bar=display) for job in jobs.values()))
        return dict(zip(jobs, results, strict=True))


def _score_job(
    ctx: RunContext,
    store: RunStore,
    llm: LLMClient,
    step: Step,
    wanted: AbstractSet[LatentRef],
    explained: AbstractSet[LatentRef],
    explanations: Callable[..., Iterator[Explanation]],
    arrivals: Arrivals[Made] | None,
    shared: SharedExamples,
) -> Callable[..., Awaitable[StageSummary]]:
    """One scorer's part of the score stage, to be called with ``bar=``; in this process it
    reads its latents' stored examples through ``shared`` (once for the stage's scorers)."""
    scorer = ctx.build(step.field)
    name = step.component.name
    needs = needs_of(scorer, "scorer", name)
    # a scorer that does not say what it needs gets the model adapter, as it always did
    wants_model = needs is None or bool({Need.ADAPTER, Need.DIRECTION} & needs)
    if wants_model and "serial_model" not in ctx._built:
        ctx._built["serial_model"] = SerialAdapter(ctx.build("model"))
    adapter = ctx._built["serial_model"] if wants_model else None
    prov = ctx.provenance(step.field, scorer)
    explainer_name = ctx.plan.step("explainer").component.name
    done = store.scored(explainer_name, name, {"options_hash": prov["options_hash"]})
    need_set = frozenset(needs or ())
    executor = ctx.build("executor")
    seed = ctx.config.seed
    if (
        needs is not None
        and not needs & OFF_PROCESS_BLOCKERS
        and not getattr(executor, "in_process", False)
    ):  # CPU-bound and self-contained: the scorer runs in the executor's workers
        feed = arrivals.subscribe() if arrivals is not None else None

        async def on_executor(bar: Any) -> StageSummary:
            if feed is not None:  # after the explain stage, with what it added to the store
                async for _ in feed:
                    pass
            read = _read_examples(store)  # not in step with the scorers in this process
            work = _score_work(ctx, read, explanations(wanted), need_set, done)
            return await score_on_executor(
                work, step, store, executor, done=done, seed=seed, provenance=prov, bar=bar
            )

        return on_executor
    read = shared.reader(done)
    if arrivals is not None:
        feed = arrivals.subscribe()
        work: Any = _score_arrivals(ctx, read, explanations(), feed, need_set, done)
        total = sum(1 for ref in wanted if ref not in done)
    else:
        work = _score_work(ctx, read, explanations(), need_set, done)
        total = sum(1 for ref in explained if ref not in done)
    return partial(
        score_explanations, work, scorer, name, store, llm=llm, adapter=adapter,
        concurrency=ctx.latents_in_flight, seed=seed, total=total, progress=ctx.progress,
        provenance=prov, done={explainer_name: done},
    )  # fmt: skip


#: needs that tie a scorer to this process (the LLM client's scheduler, the loaded model)
OFF_PROCESS_BLOCKERS = frozenset({Need.LLM, Need.ADAPTER, Need.DIRECTION})

#: explanations per scoring work unit on an executor
UNIT_EXPLANATIONS = 16


@dataclass(frozen=True)
class ScoreUnit:
    """A work unit of scoring on an executor: explanations (with their requests) for one scorer
    that needs neither an LLM nor the model (plain data, picklable)."""

    scorer: str
    options: Mapping[str, Any]
    seed: int
    items: tuple[tuple[Explanation, LatentRequest], ...]


def score_unit(unit: ScoreUnit) -> list[tuple[LatentRef, Any]]:
    """Score every item of ``unit`` in this (worker) process: each latent's :class:`Score`, or the
    one-line reason it failed."""
    scorer = _worker_scorer(unit.scorer, json.dumps(dict(unit.options), sort_keys=True))
    needs = needs_of(scorer, "scorer", unit.scorer)
    out: list[tuple[LatentRef, Any]] = []
    for explanation, request in unit.items:
        try:
            score = asyncio.run(
                score_one(scorer, unit.scorer, explanation, request, None, needs, seed=unit.seed)
            )
        except Exception as exc:  # one latent's failure, reported back to the driver
            out.append((explanation.latent, _reason(exc, f"scorer '{unit.scorer}'")))
        else:
            out.append((explanation.latent, score))
    return out


@functools.lru_cache(maxsize=8)
def _worker_scorer(name: str, options: str) -> Any:
    return PluginManager().build("scorer", name, json.loads(options))


async def score_on_executor(
    work: Iterable[ScoreWork],
    step: Step,
    store: RunStore,
    executor: Any,
    *,
    done: AbstractSet[LatentRef],
    seed: int,
    provenance: Mapping[str, Any],
    bar: Any,
) -> StageSummary:
    """Score ``work`` with a self-contained scorer on the run's executor, in units of
    :data:`UNIT_EXPLANATIONS`; the driver stores every result as it comes back."""
    name = step.component.name
    summary = StageSummary()
    pending: list[ScoreWork] = []
    for item in work:
        if item.explanation.latent in done:
            summary.skipped += 1
        else:
            pending.append(item)
    options = step.options.model_dump(mode="json") if step.options is not None else {}
    units = (
        ScoreUnit(name, options, seed,
                  tuple((w.explanation, w.request) for w in pending[i : i + UNIT_EXPLANATIONS]))
        for i in range(0, len(pending), UNIT_EXPLANATIONS)
    )  # fmt: skip
    explainer = {w.explanation.latent: w.explanation.explainer for w in pending}
    task = bar.add_task(f"scoring ({name})", total=len(pending))
    results = executor.map(score_unit, units)
    while (batch := await asyncio.to_thread(next, results, None)) is not None:
        for latent, outcome in batch:
            component = f"{name}/{explainer[latent]}"
            if isinstance(outcome, Score):
                store.put_score(
                    replace(outcome, provenance={**outcome.provenance, **provenance}),
                    clears=component,
                )
                summary.done += 1
            else:
                store.put_failure(latent, "score", component, str(outcome))
                summary.failed += 1
            bar.advance(task)
    return summary


def execute(
    plan: Plan,
    run_dir: Path,
    run_id: int,
    *,
    progress: bool = True,
    stages: Sequence[str] = STAGES,
    store: Store | None = None,
) -> RunSummary:
    """Run ``stages`` (of cache -> examples + explain -> score), every result committed as it
    completes.

    Rerunning on the same run directory resumes: the cache continues after its last complete
    shard, and latents already explained or scored are skipped. ``stages`` without ``cache``
    work on what the store already holds (``autointerp score`` on a finished explain).
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; expected some of {STAGES}")
    ctx = RunContext(plan, run_dir, run_id, progress=progress)
    try:
        with _opened(run_dir, store) as opened:
            return _execute(ctx, opened.bind(run_id), stages)
    finally:
        if (executor := ctx._built.get("executor")) is not None:
            executor.close()


def _execute(ctx: RunContext, store: RunStore, stages: Sequence[str]) -> RunSummary:
    from autointerp.llm import wrap

    run_dir = ctx.run_dir
    cache_dir: Path | None = None
    if "cache" in stages:
        cache_dir, latents = stage_cache(ctx, store)
    else:
        latents = store.latent_ids()
        if not latents:
            raise ConfigError(
                f"{run_dir}: this run has no latents yet; run `autointerp explain` on it first"
            )
    explained: StageSummary | None = None
    scored: dict[str, StageSummary] = {}
    llm_stats = None
    if "explain" in stages or "score" in stages:
        backend = ctx.build("llm")

        async def llm_stages() -> None:
            nonlocal explained, scored, llm_stats
            llm = wrap(backend, store=store)
            llm_stats = llm.stats
            llm.check()
            executor = ctx.build("executor")  # its status() (workers alive) joins the display
            try:
                with stage_progress(llm, progress=ctx.progress, executor=executor) as bar:
                    if "explain" in stages and "score" in stages:  # scored once explained
                        arrivals: Arrivals[Made] = Arrivals(ctx.latents_in_flight)
                        explained, scored = await asyncio.gather(
                            stage_explain(ctx, store, llm, latents, arrivals, bar=bar),
                            stage_score(ctx, store, llm, latents, arrivals, bar=bar),
                        )
                    elif "explain" in stages:
                        explained = await stage_explain(ctx, store, llm, latents, bar=bar)
                    else:
                        scored = await stage_score(ctx, store, llm, latents, bar=bar)
            finally:
                await llm.aclose()

        if "explain" not in stages and not sum(store.progress_counts().explained.values()):
            raise ConfigError(
                f"{run_dir}: no explanations to score; run `autointerp explain` on it first"
            )
        asyncio.run(llm_stages())
    return RunSummary(cache_dir, latents, explained, scored, llm_stats)


@dataclass(frozen=True)
class StageFailures:
    """Failed latents of one stage and component, out of the latents it was given."""

    stage: str
    component: str
    failed: int
    total: int

    @property
    def rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


def stage_failures(
    plan: Plan,
    run_dir: Path,
    run_id: int,
    stages: Sequence[str] = STAGES,
    store: Store | None = None,
) -> list[StageFailures]:
    """Failures per stage and component as the store holds them now (after any resume)."""
    explainer = plan.step("explainer").component.name
    scorers = [s.component.name for s in plan.steps if s.component.kind == "scorer"]
    out: list[StageFailures] = []
    with _opened(run_dir, store) as store:
        counts = store.progress_counts(run_id)  # counted in SQL: cheap at any number of latents
        if "explain" in stages:
            n = counts.failed["explain"][explainer]
            out.append(StageFailures("explain", explainer, n, counts.latents))
        if "score" in stages:
            for scorer in scorers:
                name = f"{scorer}/{explainer}"
                n = counts.failed["score"][name]
                out.append(StageFailures("score", name, n, counts.explained[explainer]))
    return out


def check_failure_rate(
    plan: Plan,
    run_dir: Path,
    run_id: int,
    stages: Sequence[str] = STAGES,
    store: Store | None = None,
) -> list[StageFailures]:
    """Raise :class:`FailureRateError` (one line per stage over the limit) when a stage's share
    of failed latents exceeds ``max_failure_rate``; returns every stage's failures otherwise."""
    limit = plan.config.max_failure_rate
    rows = stage_failures(plan, run_dir, run_id, stages, store)
    over = [r for r in rows if r.failed and r.rate > limit]
    if over:
        raise FailureRateError(
            "\n".join(
                f"{r.stage} ({r.component}): {r.failed} of {r.total} latents failed "
                f"({r.rate:.0%}), more than max_failure_rate = {limit:g}; "
                f"see `autointerp status {run_dir}`"
                for r in over
            )
        )
    return rows


# -- the lifecycle ---------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """How a run ended: ``status`` "finished", or "failed" with ``error`` when more latents
    failed than ``max_failure_rate`` allows; ``messages``: the run-finished hooks' lines."""

    run_dir: Path
    run_id: int
    status: str
    summary: RunSummary
    error: FailureRateError | None = None
    messages: list[str] = field(default_factory=list)


def run(
    plan: Plan,
    plugins: PluginManager,
    stages: Sequence[str] = STAGES,
    *,
    skip: frozenset[str] = frozenset(),
    progress: bool = True,
) -> RunOutcome:
    """A run's whole lifecycle on one store: open (or resume) the run, execute ``stages``, decide
    its status from the failure rate, record it, and call the ``autointerp_run_finished`` hooks
    (the report plugin writes the HTML report) with the outputs in ``skip`` turned off.

    Ctrl-C marks the run ``interrupted`` and any other exception ``failed`` before propagating;
    rerunning resumes either. The run directory is locked for the whole run
    (:func:`autointerp.runlock.hold_run_dir`): while another process holds it, this one raises
    :class:`~autointerp.runlock.RunDirInUseError` before it writes anything."""
    from autointerp.plugins import run_finished

    started = False
    try:
        with hold_run_dir(plan.run_dir):  # before anything is written: a refused run writes nothing
            with Store.open(plan.run_dir) as store:
                run_dir, run_id = prepare_run_dir(plan, store)
                started = True
                summary, status, error = _execute_recorded(
                    plan, stages, progress, store, run_dir, run_id
                )
            messages = run_finished(plugins, run_dir, run_id, status, skip)
    except KeyboardInterrupt:
        if not started:
            raise InterruptedBeforeStart from None
        raise
    return RunOutcome(run_dir, run_id, status, summary, error, messages)


class InterruptedBeforeStart(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) before the run was recorded: nothing of it was written."""


def _execute_recorded(
    plan: Plan,
    stages: Sequence[str],
    progress: bool,
    store: Store,
    run_dir: Path,
    run_id: int,
) -> tuple[RunSummary, str, FailureRateError | None]:
    """:func:`run`'s part once the run is recorded: execute, decide and record its status."""
    try:
        summary = execute(plan, run_dir, run_id, stages=stages, progress=progress, store=store)
    except KeyboardInterrupt:
        finish_run(run_dir, run_id, "interrupted", store)
        _record_config_after(plan, run_dir, run_id, store)
        raise
    except BaseException:
        finish_run(run_dir, run_id, "failed", store)
        _record_config_after(plan, run_dir, run_id, store)
        raise
    _record_config_after(plan, run_dir, run_id, store)
    error: FailureRateError | None = None
    try:
        check_failure_rate(plan, run_dir, run_id, stages, store)
    except FailureRateError as exc:
        error = exc
    status = "failed" if error else "finished"
    finish_run(run_dir, run_id, status, store)
    return summary, status, error


def _record_config_after(plan: Plan, run_dir: Path, run_id: int, store: Store) -> None:
    """``config.toml`` for a run that has now done work (:func:`record_config`); a failure to
    write it never hides how the run ended."""
    try:
        record_config(plan, run_dir, run_id, store)
    except OSError as exc:
        log.warning("could not write %s: %s", run_dir / "config.toml", exc)
