"""Registers ``autointerp report``, ``compare``, ``similarity`` and ``export``, and writes the HTML
report when a run finishes (light: no numpy or torch import here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autointerp import hookimpl

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


@hookimpl
def autointerp_register_commands(cli: Any) -> None:
    from autointerp_report.commands import add_commands

    add_commands(cli)


@hookimpl
def autointerp_run_finished(
    run_dir: Path, run_id: int, status: str, skip: frozenset[str]
) -> str | None:
    """Write the run's report (also when too many latents failed: it shows which and why) unless
    the user turned it off (``--no-report``); say how to open it, or why it was not written."""
    if "report" in skip:
        return None
    from autointerp.errors import AutointerpError

    try:
        from autointerp_report.render import write_report

        index = write_report(run_dir, run_id=run_id)
    except Exception as exc:  # the run's results are safe: say why, never fail the run
        known = isinstance(exc, AutointerpError | OSError)
        reason = str(exc) if known else f"{type(exc).__name__}: {exc}"
        return f"report not written: {reason}; retry with `autointerp report {run_dir}`"
    return f"report: {index} (open it with `autointerp report {run_dir} --open`)"
