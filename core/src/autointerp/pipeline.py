"""Run orchestration: resolve the selected components, open the run directory, run the stages.

Planning happens before any compute: every selected component must exist and its options must
validate, so a typo costs nothing. Stages are added as caching, explaining and scoring land.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autointerp.config import RunConfig, dump_toml
from autointerp.errors import AutointerpError, ConfigError
from autointerp.plugins import Component, PluginManager
from autointerp.store import Store


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
