"""Run orchestration: resolve the selected components, open the run directory, run the stages.

Planning happens before any compute: every selected component must exist and its options must
validate, so a typo costs nothing. Stages are added as caching, explaining and scoring land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autointerp.config import RunConfig, dump_toml
from autointerp.errors import AutointerpError, ConfigError
from autointerp.plugins import Component, PluginManager
from autointerp.store import Store
from autointerp.types import Example, LatentRef


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
    for field, kind, selection in config.selections():
        try:
            component = plugins.get(kind, selection.name)
            options = component.validate(selection.options, where=f"{source}: {field}")
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        except AutointerpError as exc:
            problems.append(f"{source}: {field}.name: {exc}")
            continue
        steps.append(Step(field, component, options))
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


# -- explaining ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatentWork:
    """What an explainer gets for one latent: its train examples, and the optional extras."""

    latent: LatentRef
    examples: Sequence[Example]
    negatives: Sequence[Example] = ()
    promoted: Sequence[tuple[str, float]] = ()


@dataclass
class ExplainSummary:
    explained: int = 0
    skipped: int = 0  # already in the store (a resumed run)
    failed: int = 0


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
) -> ExplainSummary:
    """Explain every latent of ``work`` with at most ``concurrency`` latents in flight.

    Each explanation (or failure, with its reason) is committed as it completes; latents already
    explained in this run are skipped, so a killed run resumes where it stopped. ``work`` is read
    lazily: millions of latents stream through with bounded memory.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from autointerp.llm import LLMError

    done = store.explained(run_id, explainer_name)
    summary = ExplainSummary()
    items = iter(work)
    lock = asyncio.Lock()

    async def next_item() -> LatentWork | None:
        async with lock:
            for item in items:
                if item.latent in done:
                    summary.skipped += 1
                    bar.advance(task)
                    continue
                return item
            return None

    async def worker() -> None:
        while (item := await next_item()) is not None:
            kwargs: dict[str, Any] = {"seed": seed}
            needs = getattr(explainer, "needs", frozenset())
            if "negatives" in needs:
                kwargs["negatives"] = item.negatives
            if "promoted_tokens" in needs:
                kwargs["promoted"] = item.promoted
            try:
                explanation = await explainer.explain(item.latent, item.examples, llm, **kwargs)
            except LLMError as exc:
                reason = getattr(exc, "reason", None) or str(exc)
                store.put_failure(run_id, item.latent, "explain", explainer_name, reason)
                summary.failed += 1
            else:
                store.put_explanation(run_id, explanation)
                store.clear_failure(run_id, item.latent, "explain", explainer_name)
                summary.explained += 1
            bar.advance(task)

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task(f"explaining ({explainer_name})", total=total)
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return summary
