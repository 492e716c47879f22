"""What a run has done so far, per stage and component, read from its results store (opened
read-only: an older run is never migrated by looking at it), and what each component's LLM calls
cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autointerp.store import Store, Usage, open_run

#: the LLM usage of a status row: paid calls, cache hits, their tokens and dollars
COST_COLUMNS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd")


def _open_run(run_dir: Path, run_id: int | None) -> Any:
    """The run directory's store and the run asked for, else the latest (None: no run yet)."""
    return open_run(run_dir, run_id, empty_ok=True)


def _cost(usage: Usage | None) -> dict[str, Any]:
    u = usage or Usage()
    return {
        "calls": u.calls,
        "cache_hits": u.cache_hits,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "cost_usd": round(u.cost_usd, 6),
    }


def run_status(run_dir: Path, run_id: int | None = None) -> list[dict[str, Any]]:
    """Rows of stage, component, done, failed and pending (None when the number of latents the
    run covers is not known yet), and the LLM usage of the calls the component asked for
    (:data:`COST_COLUMNS`). Calls the ledger cannot attribute (made by an autointerp that did
    not record it, and named by no result) get a row of their own with stage and component "".
    """
    with _open_run(run_dir, run_id) as (store, run_id):
        if run_id is None:
            return []
        counts = store.progress_counts(run_id)  # counted in SQL: fast at a million latents
        total = counts.latents or None
        explained, scored, failed = counts.explained, counts.scored, counts.failed
        costs = store.usage_by_component(run_id)
    rows = []
    for stage, done in (("explain", explained), ("score", scored)):
        paid = {c for s, c in costs if s == stage}
        for component in sorted(set(done) | set(failed[stage]) | paid):
            n_done, n_failed = done[component], failed[stage][component]
            # a score waits for its explanation: latents whose explanation failed are not pending
            base = total if stage == "explain" else explained[component.rsplit("/", 1)[-1]]
            pending = None if total is None else max(0, base - n_done - n_failed)
            rows.append(
                {
                    "stage": stage,
                    "component": component,
                    "done": n_done,
                    "failed": n_failed,
                    "pending": pending,
                    **_cost(costs.get((stage, component))),
                }
            )
    for (stage, component), usage in costs.items():  # other stages, and unattributed calls
        if stage not in ("explain", "score"):
            row = {"stage": stage, "component": component, "done": None, "failed": None}
            rows.append({**row, "pending": None, **_cost(usage)})
    return rows


def component_costs(store: Store, run_id: int) -> list[dict[str, Any]]:
    """The LLM usage of a run per stage and component that asked: stage, component, calls
    (paid), cache_hits, tokens (prompt and completion), cost_usd; unattributed calls have
    stage and component "". For reports and exports of an open store."""
    return [
        {
            "stage": stage,
            "component": component,
            "calls": u.calls,
            "cache_hits": u.cache_hits,
            "tokens": u.prompt_tokens + u.completion_tokens,
            "cost_usd": round(u.cost_usd, 6),
        }
        for (stage, component), u in store.usage_by_component(run_id).items()
    ]


def run_failures(run_dir: Path, run_id: int | None = None) -> list[dict[str, Any]]:
    """Every failure of a run (latest if not given): stage, component, latent and the reason."""
    with _open_run(run_dir, run_id) as (store, run_id):
        if run_id is None:
            return []
        return [
            {
                "stage": stage,
                "component": component,
                "source": latent.source,
                "latent": latent.index,
                "reason": reason,
            }
            for stage in ("explain", "score")
            for (latent, component), reason in store.failures(run_id, stage).items()
        ]


def run_header(run_dir: Path, run_id: int | None = None) -> str:
    """``run N 'name': status`` of the run (the latest that did work if None), or "" when the
    store holds none; later runs that stopped before any work are named after it."""
    with _open_run(run_dir, run_id) as (store, picked):
        if picked is None:
            return ""
        runs = store.runs()
        run = next(r for r in runs if r.id == picked)
        later = [r.id for r in runs if r.id > picked] if run_id is None else []
    header = f"run {run.id} '{run.name}': {run.status}"
    if later:
        ids = ", ".join(str(i) for i in later)
        header += f" (later attempts stopped before any latent: run {ids}; see --run-id)"
    return header
