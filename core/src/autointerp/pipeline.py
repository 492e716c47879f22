"""Run orchestration: resolve the selected components, open the run directory, run the stages.

Planning happens before any compute: every selected component must exist and its options must
validate, so a typo costs nothing. Stages are added as caching, explaining and scoring land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from autointerp.adapter import AdapterError
from autointerp.config import RunConfig, dump_toml
from autointerp.errors import AutointerpError, ConfigError
from autointerp.plugins import Component, PluginManager
from autointerp.store import Store
from autointerp.types import Example, Explanation, LatentRef


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

    @property
    def run_dir(self) -> Path:
        return self.config.resolved_run_dir

    def step(self, field: str) -> Step:
        return next(s for s in self.steps if s.field == field)


def plan_run(config: RunConfig, plugins: PluginManager, source: str = "defaults") -> Plan:
    """Resolve and validate every selection; all problems are reported together, one per line."""
    problems: list[str] = []
    steps: list[Step] = []
    for where, kind, selection in config.selections():
        try:
            component = plugins.get(kind, selection.name)
            options = component.validate(selection.options, where=f"{source}: {where}")
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        except AutointerpError as exc:
            problems.append(f"{source}: {where}.name: {exc}")
            continue
        steps.append(Step(where, component, options))
    if problems:
        raise ConfigError("\n".join(problems))
    return Plan(config=config, steps=tuple(steps))


def prepare_run_dir(plan: Plan) -> tuple[Path, int]:
    """Create the run directory, record the resolved config (``config.toml``) and open a run in
    the results store, or reopen the run with this exact config (resume); returns the directory
    and the run id."""
    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    table = plan.config.as_table()
    (run_dir / "config.toml").write_text(dump_toml(table), encoding="utf-8")
    with Store.open(run_dir) as store:
        # the same config again is the same run, resumed; another config is a new run
        same = [r.id for r in store.runs() if r.name == plan.config.name and r.config == table]
        run_id = same[-1] if same else store.start_run(plan.config.name, table)
    return run_dir, run_id


def finish_run(run_dir: Path, run_id: int, status: str) -> None:
    with Store.open(run_dir) as store:
        store.finish_run(run_id, status)


# -- streaming work with bounded concurrency -------------------------------------------------------

T = TypeVar("T")


@dataclass
class StageSummary:
    done: int = 0
    skipped: int = 0  # already in the store (a resumed run)
    failed: int = 0


async def run_pool(
    items: Iterable[T],
    handle: Callable[[T], Awaitable[bool]],
    *,
    description: str,
    concurrency: int,
    total: int | None = None,
    progress: bool = True,
) -> StageSummary:
    """Feed ``items`` (read lazily) to ``concurrency`` workers; ``handle`` returns True on success.

    Memory stays bounded whatever the number of items: only ``concurrency`` are in flight.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    summary = StageSummary()
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:  # shared iterator: each item goes to exactly one worker
            ok = await handle(item)
            summary.done += ok
            summary.failed += not ok
            bar.advance(task)

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return summary


def _pending(
    items: Iterable[T], is_done: Callable[[T], bool], summary: StageSummary
) -> Iterator[T]:
    """The items not finished yet, lazily; finished ones are counted as skipped."""
    for item in items:
        if is_done(item):
            summary.skipped += 1
        else:
            yield item


# -- explaining ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentWork:
    """What an explainer gets for one latent: its train examples, and the optional extras."""

    latent: LatentRef
    examples: Sequence[Example]
    negatives: Sequence[Example] = ()
    promoted: Sequence[tuple[str, float]] = ()


async def explain_latents(
    work: Iterable[LatentWork],
    explainer: Any,
    explainer_name: str,
    llm: Any,
    store: Store,
    run_id: int,
    *,
    concurrency: int = 256,
    seed: int = 0,
    total: int | None = None,
    progress: bool = True,
) -> StageSummary:
    """Explain every latent of ``work`` with at most ``concurrency`` latents in flight.

    Each explanation (or failure, with its reason) is committed as it completes; latents already
    explained in this run are skipped, so a killed run resumes where it stopped.
    """
    from autointerp.llm import LLMError

    needs = getattr(explainer, "needs", frozenset())

    async def handle(item: LatentWork) -> bool:
        kwargs: dict[str, Any] = {"seed": seed}
        if "negatives" in needs:
            kwargs["negatives"] = item.negatives
        if "promoted_tokens" in needs:
            kwargs["promoted"] = item.promoted
        try:
            explanation = await explainer.explain(item.latent, item.examples, llm, **kwargs)
        except LLMError as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            store.put_failure(run_id, item.latent, "explain", explainer_name, reason)
            return False
        store.put_explanation(run_id, explanation)
        store.clear_failure(run_id, item.latent, "explain", explainer_name)
        return True

    summary = StageSummary()
    done = store.explained(run_id, explainer_name)
    pending = _pending(work, lambda w: w.latent in done, summary)
    result = await run_pool(
        pending,
        handle,
        description=f"explaining ({explainer_name})",
        concurrency=concurrency,
        total=total,
        progress=progress,
    )
    result.skipped = summary.skipped
    return result


# -- scoring ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreWork:
    """What a scorer gets for one explanation: held-out activating examples and negatives."""

    explanation: Explanation
    examples: Sequence[Example]
    negatives: Sequence[Example] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)  # e.g. direction= for intervention


async def score_explanations(
    work: Iterable[ScoreWork],
    scorer: Any,
    scorer_name: str,
    store: Store,
    run_id: int,
    *,
    llm: Any = None,
    adapter: Any = None,
    concurrency: int = 256,
    seed: int = 0,
    total: int | None = None,
    progress: bool = True,
) -> StageSummary:
    """Score every explanation of ``work``; each score (or failure) is committed as it completes
    and explanations this scorer already scored in this run are skipped."""
    from autointerp.llm import LLMError

    async def handle(item: ScoreWork) -> bool:
        e = item.explanation
        try:
            score = await scorer.score(
                e, item.examples, item.negatives, llm, seed=seed, adapter=adapter, **item.extras
            )
        except (LLMError, AdapterError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            store.put_failure(run_id, e.latent, "score", f"{scorer_name}/{e.explainer}", reason)
            return False
        store.put_score(run_id, score)
        store.clear_failure(run_id, e.latent, "score", f"{scorer_name}/{e.explainer}")
        return True

    summary = StageSummary()
    scored: dict[str, set[LatentRef]] = {}  # per explainer, read from the store once

    def is_done(item: ScoreWork) -> bool:
        explainer = item.explanation.explainer
        if explainer not in scored:
            scored[explainer] = store.scored(run_id, explainer, scorer_name)
        return item.explanation.latent in scored[explainer]

    pending = _pending(work, is_done, summary)
    result = await run_pool(
        pending,
        handle,
        description=f"scoring ({scorer_name})",
        concurrency=concurrency,
        total=total,
        progress=progress,
    )
    result.skipped = summary.skipped
    return result


# -- the whole run ---------------------------------------------------------------------------------


@dataclass
class RunSummary:
    cache_dir: Path
    latents: list[LatentRef]
    explain: StageSummary
    scores: dict[str, StageSummary]


def _decoder(tokenizer: Any) -> Any:
    from functools import lru_cache

    @lru_cache(maxsize=1 << 16)
    def one(token: int) -> str:
        return tokenizer.decode([token])

    return lambda ids: [one(int(t)) for t in ids]


def execute(plan: Plan, run_dir: Path, run_id: int, *, progress: bool = True) -> RunSummary:
    """Cache -> examples -> explain -> score, every result committed as it completes.

    Rerunning on the same run directory resumes: the cache continues after its last complete
    shard, and latents already explained or scored are skipped.
    """
    import itertools

    from autointerp.cache import ActivationCache, build_cache
    from autointerp.corpus import iter_texts, token_windows
    from autointerp.examples import ExampleBuilder, ExampleSettings
    from autointerp.llm import wrap

    config = plan.config
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    adapter = plan.step("model").component.build(plan.step("model").options)
    source_step = plan.step("feature_source")
    source = source_step.component.build(source_step.options)
    c = config.corpus
    windows = token_windows(
        adapter, iter_texts(c.path, c.text_field), seq_len=c.ctx_len, batch_size=c.batch_size,
        bos=c.bos, seed=config.seed,
    )  # fmt: skip
    n_batches = max(1, c.n_tokens // (c.ctx_len * c.batch_size))
    info = {
        "model": plan.step("model").options.model_dump(),
        "adapter": plan.step("model").component.name,
        "source": source_step.component.name,
        "source_options": source_step.options.model_dump(),
        "corpus": c.model_dump(),
        "seed": config.seed,
    }
    cache_dir = build_cache(
        adapter, source, itertools.islice(windows, n_batches), run_dir / "cache" / source.site,
        info, progress=progress, total_batches=n_batches,
    )  # fmt: skip
    cache = ActivationCache(cache_dir)
    stats = cache.stats()
    key = f"{source_step.component.name}/{source.site}"
    lat = config.latents
    if lat.indices is not None:
        chosen = [i for i in lat.indices if 0 <= i < cache.n_latents]
    else:
        eligible = (stats["count"] >= lat.min_activations).nonzero()[0]
        chosen = [int(i) for i in eligible[: lat.n]]
    latents = [LatentRef(key, i) for i in chosen]
    with Store.open(run_dir) as store:
        store.put_latents(
            run_id, key,
            [{"index": i, "frequency": float(stats["frequency"][i]),
              "max_activation": float(stats["max"][i]), "mean": float(stats["mean"][i])}
             for i in chosen],
        )  # fmt: skip
    settings = ExampleSettings(
        window=lat.window, n_train=lat.n_train, n_test=lat.n_test,
        n_negatives=lat.n_negatives, seed=config.seed,
    )  # fmt: skip
    builder = ExampleBuilder(cache, key, _decoder(adapter.tokenizer), settings)
    built = {ref: builder.build(ref.index) for ref in latents}

    explainer_step, llm_step = plan.step("explainer"), plan.step("llm")
    explainer = explainer_step.component.build(explainer_step.options)
    backend = llm_step.component.build(llm_step.options)

    async def llm_stages(store: Store) -> tuple[StageSummary, dict[str, StageSummary]]:
        llm = wrap(backend, store=store, run_id=run_id)
        llm.check()
        try:
            for ref, ex in built.items():
                store.put_examples(run_id, ref, [*ex.train, *ex.test, *ex.negatives])
            work = [
                LatentWork(ref, ex.train, ex.negatives, ()) for ref, ex in built.items() if ex.train
            ]
            explained = await explain_latents(
                work, explainer, explainer_step.component.name, llm, store, run_id,
                concurrency=config.concurrency, seed=config.seed, total=len(work),
                progress=progress,
            )  # fmt: skip
            scored: dict[str, StageSummary] = {}
            explanations = store.explanations(run_id, explainer_step.component.name)
            for step in plan.steps:
                if step.component.kind != "scorer":
                    continue
                scorer = step.component.build(step.options)
                items = [
                    ScoreWork(e, built[e.latent].test, built[e.latent].negatives)
                    for e in explanations
                    if e.latent in built
                ]
                scored[step.component.name] = await score_explanations(
                    items, scorer, step.component.name, store, run_id, llm=llm, adapter=adapter,
                    concurrency=config.concurrency, seed=config.seed, total=len(items),
                    progress=progress,
                )  # fmt: skip
            return explained, scored
        finally:
            await llm.aclose()

    with Store.open(run_dir) as store:
        explained, scored = asyncio.run(llm_stages(store))
    return RunSummary(cache_dir, latents, explained, scored)
