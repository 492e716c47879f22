"""``autointerp analyze deciles|distributions|correlations|similarity|cost RUN...``: each prints a
table (or JSON with ``--json``) and writes an SVG figure and a JSON file (default folder: the
first run's ``report/analyses``, which its HTML report links). Runs are read, never modified.

``autointerp analyze lens|steering|probes RESULT.json...``: the same across models and layers, from
the JSON that ``lens eval``, ``steer sweep`` and ``probe transfer|anomaly`` write.

numpy and the analyses are imported inside the commands: building the CLI stays cheap.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from autointerp.adapter_cli import ThreadsOpt
from autointerp_report.commands import (
    EmbedBatchOpt,
    EmbedModelOpt,
    JsonFlag,
    RunsArg,
    SimilarityExplainerOpt,
)

console = Console()

app = typer.Typer(
    help="Analyses of finished runs and of lens/steering/probe results (read-only): a table, "
    "SVG figures and JSON each.",
    no_args_is_help=True,
)

OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Folder for the figure and data (default FIRST_RUN/report/analyses)."
    ),
]
ExplainerOpt = Annotated[
    str | None, typer.Option(help="Only scores of this explainer's explanations.")
]


def _run(name: str, runs: list[str], out: Path | None, as_json: bool, **options: Any) -> None:
    from autointerp_report.analyses import render, run_analysis

    data = run_analysis(name, runs, out=out, **options)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
    else:
        render(data, console)


@app.command("deciles")
def deciles_command(
    runs: RunsArg, explainer: ExplainerOpt = None, out: OutOpt = None, as_json: JsonFlag = False
) -> None:
    """Accuracy of 0/1 scorers (detection, fuzzing) per activation quantile of the held-out
    examples (1 = weakest), and on non-activating examples."""
    _run("deciles", runs, out, as_json, explainer=explainer)


@app.command("distributions")
def distributions_command(
    runs: RunsArg,
    explainer: ExplainerOpt = None,
    metric: Annotated[
        str | None, typer.Option(help="A metric of the scores (e.g. f1) instead of the score.")
    ] = None,
    bins: Annotated[int, typer.Option(help="Histogram bins.")] = 20,
    out: OutOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Score distributions of several runs overlaid, one figure per scorer."""
    _run("distributions", runs, out, as_json, explainer=explainer, metric=metric, bins=bins)


@app.command("correlations")
def correlations_command(
    runs: RunsArg, explainer: ExplainerOpt = None, out: OutOpt = None, as_json: JsonFlag = False
) -> None:
    """Spearman correlation between scorers over latents: per run, and pooled over the runs."""
    _run("correlations", runs, out, as_json, explainer=explainer)


@app.command("similarity")
def similarity_command(
    runs: RunsArg,
    explainer: SimilarityExplainerOpt = None,
    model: EmbedModelOpt = None,
    batch_size: EmbedBatchOpt = 64,
    threads: ThreadsOpt = None,
    out: OutOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Run-by-run (layer-by-layer) matrix of mean best-match similarity of the explanations."""
    _run("similarity", runs, out, as_json, explainer=explainer, model=model,
         batch_size=batch_size, threads=threads, progress=not as_json)  # fmt: skip


@app.command("cost")
def cost_command(runs: RunsArg, out: OutOpt = None, as_json: JsonFlag = False) -> None:
    """LLM calls, tokens and dollars per component (explainer, scorer) of each run."""
    _run("cost", runs, out, as_json)


# -- figures across models and layers (lens, steering, probe results; see rnn_figures) ---------

ResultsArg = Annotated[
    list[Path],
    typer.Argument(help="Result JSON files (or the command's --out folders), one per model."),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option("--label", help="Series name per file, in order (default: from the paths)."),
]
FigOutOpt = Annotated[
    Path, typer.Option("--out", help="Folder for the SVG figures and the JSON summary.")
]


def _figures(name: str, paths: list[Path], labels: list[str] | None, as_json: bool,
             kinds: tuple[str, ...], **options: Any) -> None:  # fmt: skip
    from autointerp_report import rnn_figures as rf

    loaded = rf.load_results(paths, kinds)
    names = rf.labels_for([p for p, _, _ in loaded], labels, [d for _, _, d in loaded])
    out = options.pop("out")
    if name == "probes":
        triples = [(n, k, d) for n, (_, k, d) in zip(names, loaded, strict=True)]
        summary = rf.probe_figures(triples, out, **options)
    else:
        draw = rf.lens_figures if name == "lens" else rf.steering_figures
        summary = draw([(n, d) for n, (_, _, d) in zip(names, loaded, strict=True)], out, **options)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    else:
        rf.render(summary, console)


@app.command("lens")
def lens_command(
    results: ResultsArg,
    label: LabelOpt = None,
    out: FigOutOpt = Path("figures"),
    as_json: JsonFlag = False,
) -> None:
    """Bits per byte per layer, logit lens vs tuned lens, of several models on one plot (from
    `autointerp lens eval --out` results)."""
    _figures("lens", results, label, as_json, ("lens",), out=out)


@app.command("steering")
def steering_command(
    results: ResultsArg,
    label: LabelOpt = None,
    which: Annotated[
        str, typer.Option(help="Which sweep: residual, state (--state) or open_ended (--judge).")
    ] = "residual",
    absolute: Annotated[
        bool, typer.Option(help="Show the metric itself, not its shift from the baseline.")
    ] = False,
    out: FigOutOpt = Path("figures"),
    as_json: JsonFlag = False,
) -> None:
    """Steering effect per layer × multiplier: a heatmap per model, and the steering range per
    layer of every model on one plot (from `autointerp steer sweep` results)."""
    _figures("steering", results, label, as_json, ("steering",), out=out, which=which,
             absolute=absolute)  # fmt: skip


@app.command("probes")
def probes_command(
    results: ResultsArg,
    label: LabelOpt = None,
    method: Annotated[
        str | None, typer.Option(help="Probe method to draw (default: the first in the files).")
    ] = None,
    against: Annotated[
        str, typer.Option(help="AUROC against the truth (alice) or the quirky labels (bob).")
    ] = "alice",
    out: FigOutOpt = Path("figures"),
    as_json: JsonFlag = False,
) -> None:
    """Probe AUROC per layer on each train→test transfer, a series per model, and anomaly AUROC
    per layer (from `autointerp probe transfer|anomaly --out` results)."""
    from autointerp.errors import ConfigError

    if against not in ("alice", "bob"):
        raise ConfigError(f"--against: expected alice or bob, got {against!r}")
    _figures("probes", results, label, as_json, ("probe-transfer", "probe-anomaly"), out=out,
             method=method, against=against)  # fmt: skip
