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
    the results store; returns the directory and the run id."""
    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    table = plan.config.as_table()
    (run_dir / "config.toml").write_text(dump_toml(table), encoding="utf-8")
    with Store.open(run_dir) as store:
        run_id = store.start_run(plan.config.name, table)
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
