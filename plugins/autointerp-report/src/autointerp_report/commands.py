"""``autointerp report``, ``compare``, ``similarity`` and ``export``.

numpy, torch and the report and export modules are imported inside the commands: building the CLI
stays cheap (``autointerp plugins`` imports this module).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from autointerp.adapter_cli import ThreadsOpt

console = Console()

RunsArg = Annotated[
    list[str], typer.Argument(help="Run directories (DIR@ID for a run other than the latest).")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
# the embedding options of `similarity` and `analyze similarity`
SimilarityExplainerOpt = Annotated[
    str | None, typer.Option(help="Explanations of this explainer (needed if several).")
]
EmbedModelOpt = Annotated[
    Path | None, typer.Option(help="Sentence-embedding model folder (default MiniLM-L6).")
]
EmbedBatchOpt = Annotated[int, typer.Option(help="Explanations per embedding batch.")]


def compare_command(
    runs: RunsArg,
    scorer: Annotated[
        list[str] | None, typer.Option("--scorer", help="Only this scorer (repeat for several).")
    ] = None,
    explainer: Annotated[
        str | None, typer.Option(help="Only scores of this explainer's explanations.")
    ] = None,
    confidence: Annotated[float, typer.Option(help="Confidence of the intervals.")] = 0.95,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    n_perm: Annotated[int, typer.Option(help="Permutations of the median test.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Score distributions of runs side by side: medians with bootstrap CIs, each run's median
    difference to the first run with p-values, and each run's scorer agreement (Spearman)."""
    from autointerp_report.compare import compare_runs, render

    result = compare_runs(
        runs, scorers=scorer, explainer=explainer, confidence=confidence, n_boot=n_boot,
        n_perm=n_perm, seed=seed,
    )  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    render(result, console)


def similarity_command(
    runs: RunsArg,
    explainer: SimilarityExplainerOpt = None,
    model: EmbedModelOpt = None,
    batch_size: EmbedBatchOpt = 64,
    threads: ThreadsOpt = None,
    matches: Annotated[
        Path | None, typer.Option(help="Write every latent's best match here (JSON lines).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """How alike runs' feature sets are through their explanations: best-match cosine similarity
    of embedded explanations, both ways, and a run-by-run (layer-by-layer) matrix."""
    from autointerp_report.similarity import render, similarity_runs

    result = similarity_runs(
        runs, explainer=explainer, model=model, batch_size=batch_size, threads=threads,
        progress=not as_json, matches=matches,
    )  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    render(result, console)


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default RUN/report).")] = None,
    run_id: Annotated[
        int | None, typer.Option(help="Run id in the store (default: latest).")
    ] = None,
    open_: Annotated[bool, typer.Option("--open", help="Open the report in a browser.")] = False,
) -> None:
    """Write the run's HTML report (latent table, latent cards, plots); works offline."""
    from autointerp_report.render import write_report

    index = write_report(run_dir, out, run_id, progress=True)
    console.print(f"report: {index}", highlight=False, soft_wrap=True)
    if open_:
        open_in_browser(index)


#: on Linux and the BSDs, the variables that say there is a display (or a chosen browser)
_DISPLAY_VARS = ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")


def open_in_browser(index: Path) -> bool:
    """Open ``index`` in a browser; when none opens (an SSH session or a container has no
    display), say so on stderr with the file's path instead of doing nothing."""
    import os
    import webbrowser

    path = index.resolve()
    try:
        opened = bool(webbrowser.open(path.as_uri()))
    except webbrowser.Error:
        opened = False
    if not opened:
        headless = sys.platform not in ("darwin", "win32", "cygwin") and not any(
            os.environ.get(var) for var in _DISPLAY_VARS
        )
        why = "no display" if headless else "no browser found"
        Console(stderr=True).print(
            f"--open: cannot open a browser here ({why}); the report is {path} (copy the folder "
            f"{path.parent} to a machine with a browser, or serve it: python -m http.server -d "
            f"{path.parent})",
            highlight=False,
            soft_wrap=True,
        )
    return opened


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
    fmt: Annotated[
        Literal["jsonl", "parquet", "neuronpedia"],
        typer.Option("--format", help="jsonl, parquet or neuronpedia (feature JSON)."),
    ] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Output directory (default RUN/export).")] = None,
    run_id: Annotated[
        int | None, typer.Option(help="Run id in the store (default: latest).")
    ] = None,
    model_id: Annotated[
        str | None, typer.Option(help="neuronpedia: modelId (default: the run's model).")
    ] = None,
) -> None:
    """Export explanations, scores and failures (JSONL, Parquet), or latents with examples,
    explanations and scores as Neuronpedia-style feature JSON."""
    from autointerp_report.export import export_run

    written = export_run(run_dir, fmt, out, run_id, model_id=model_id)
    unit = "latents" if fmt == "neuronpedia" else "rows"
    for path, n in written.items():
        console.print(f"{path}: {n} {unit}", highlight=False)


def add_commands(cli: Any) -> None:
    """Add ``compare``, ``similarity``, ``report``, ``export`` and the ``analyze`` group to the
    root ``autointerp`` app."""
    cli.command("compare")(compare_command)
    cli.command("similarity")(similarity_command)
    cli.command("report")(report_command)
    cli.command("export")(export_command)
    from autointerp_report.analyze_commands import app as analyze_app

    cli.add_typer(analyze_app, name="analyze")
