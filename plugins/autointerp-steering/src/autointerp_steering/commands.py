"""``autointerp steer``: steering vectors, layer × multiplier sweeps and steered generation.

torch is imported inside the commands: building the CLI stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from autointerp.adapter_cli import (
    AdapterOpt,
    ModelOpt,
    OptionOpt,
    ThreadsOpt,
    load_adapter,
    parse_floats,
    parse_layers,
)

if TYPE_CHECKING:
    from autointerp_steering.caa import SweepResult

console = Console()
app = typer.Typer(
    help="Contrastive activation addition: steering vectors, sweeps, steered generation.",
    no_args_is_help=True,
)

PairsArg = Annotated[
    Path, typer.Argument(help="Contrast pairs (JSONL: prompt, positive, negative).")
]
LayersOpt = Annotated[str | None, typer.Option(help="Layers: all (default), 0,2,5 or 2-6.")]
BatchOpt = Annotated[int, typer.Option(help="Sequences per forward call.")]


def parse_positions(text: str) -> int | tuple[int, ...] | None:
    from autointerp.errors import ConfigError

    if text.strip() == "all":
        return None
    try:
        pos = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--positions: expected 'all' or indices like -1, got {text!r}") from None
    return pos[0] if len(pos) == 1 else pos


def print_sweep(result: SweepResult, title: str) -> None:
    table = Table(title=f"{title} (baseline {result.baseline:.3f})")
    table.add_column("layer \\ multiplier")
    for m in result.multipliers:
        table.add_column(f"{m:g}", justify="right")
    for i, row in enumerate(result.rows):
        table.add_row(row, *[f"{float(v):.3f}" for v in result.grid[i]])
    console.print(table)


@app.command("vectors")
def vectors_command(
    pairs: PairsArg,
    out: Annotated[Path, typer.Option(help="Where to write the vectors (safetensors).")] = Path(
        "steering.safetensors"
    ),
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    layers: LayersOpt = None,
    kind: Annotated[str, typer.Option(help="Site kind to contrast.")] = "resid_post",
    state: Annotated[
        bool, typer.Option("--state", help="Contrast the recurrent state instead (RNNs).")
    ] = False,
    batch_size: BatchOpt = 32,
    threads: ThreadsOpt = None,
) -> None:
    """Compute CAA steering vectors: mean(positive) − mean(negative) at the answer token."""
    from autointerp_steering.caa import caa_vectors
    from autointerp_steering.data import load_pairs
    from autointerp_steering.state import state_vectors

    data = load_pairs(pairs)
    lm = load_adapter(adapter, model, option, threads)
    if state:
        vecs = state_vectors(lm, data, batch_size=batch_size)
    else:
        vecs = caa_vectors(
            lm, data, layers=parse_layers(layers, lm.n_layers), kind=kind, batch_size=batch_size
        )
    vecs.save(out)
    table = Table(title=f"steering vectors from {len(data)} pairs → {out}")
    for col in ("site", "shape", "norm"):
        table.add_column(col)
    for name, v in vecs.vectors.items():
        table.add_row(name, str(tuple(v.shape)), f"{float(v.norm()):.4g}")
    console.print(table)


@app.command("sweep")
def sweep_command(
    pairs: PairsArg,
    vectors: Annotated[
        Path | None, typer.Option(help="Vectors from `steer vectors` (default: compute them).")
    ] = None,
    test_pairs: Annotated[
        Path | None, typer.Option(help="Held-out pairs to score (default: PAIRS).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder: CSV, SVG (and PNG) heatmaps.")] = Path(
        "steering-sweep"
    ),
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    layers: LayersOpt = None,
    multipliers: Annotated[str, typer.Option(help="Comma-separated multipliers.")] = (
        "-3,-2,-1,0,1,2,3"
    ),
    positions: Annotated[
        str,
        typer.Option(help="Where to add: all, or token indices like -1 (last) or -3,-2,-1."),
    ] = "all",
    state: Annotated[
        bool, typer.Option("--state", help="Also sweep recurrent-state steering (RNNs).")
    ] = False,
    batch_size: BatchOpt = 32,
    threads: ThreadsOpt = None,
) -> None:
    """Sweep layers × multipliers and report p(matching) / (p(A)+p(B)) per cell."""
    from autointerp_steering.caa import SteeringVectors, caa_vectors, sweep
    from autointerp_steering.data import load_pairs, tokenize_pairs
    from autointerp_steering.report import write_all
    from autointerp_steering.state import state_sweep, state_vectors

    lm = load_adapter(adapter, model, option, threads)
    train = tokenize_pairs(lm, load_pairs(pairs))
    test = tokenize_pairs(lm, load_pairs(test_pairs)) if test_pairs else train
    chosen = parse_layers(layers, lm.n_layers)
    mults = parse_floats(multipliers)
    vecs = (
        SteeringVectors.load(vectors)
        if vectors
        else caa_vectors(lm, train, layers=chosen, batch_size=batch_size)
    )
    results = {
        "residual": sweep(
            lm,
            test,
            vecs,
            layers=chosen,
            multipliers=mults,
            positions=parse_positions(positions),
            batch_size=batch_size,
        )
    }
    if state:
        svecs = state_vectors(lm, train, batch_size=batch_size)
        results["state"] = state_sweep(
            lm, test, svecs, layers=chosen, multipliers=mults, batch_size=batch_size
        )
    written: list[Path] = []
    for name, result in results.items():
        title = f"{name} steering, {lm.architecture}: p(matching) / (p(A)+p(B))"
        print_sweep(result, title)
        written += write_all(result, out, stem=f"sweep-{name}", title=title)
    (out / "sweep.json").write_text(
        json.dumps(
            {
                k: {"baseline": r.baseline, "cells": r.as_records(), **r.meta}
                for k, r in results.items()
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    if not any(p.suffix == ".png" for p in written):
        console.print("note: matplotlib is not installed: heatmaps written as SVG only")
    console.print(f"wrote {', '.join(str(p) for p in written)} and {out / 'sweep.json'}")


@app.command("generate")
def generate_command(
    prompt: Annotated[list[str], typer.Argument(help="Prompt(s) to continue.")],
    vectors: Annotated[Path | None, typer.Option(help="Residual steering vectors.")] = None,
    layer: Annotated[int | None, typer.Option(help="Layer to steer (residual).")] = None,
    multiplier: Annotated[float, typer.Option(help="Residual multiplier.")] = 0.0,
    state_vectors: Annotated[
        Path | None, typer.Option(help="State steering vectors (`steer vectors --state`).")
    ] = None,
    state_multiplier: Annotated[float, typer.Option(help="State multiplier.")] = 0.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 30,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Generate with residual and/or recurrent-state steering, next to the unsteered text."""
    from autointerp.errors import ConfigError
    from autointerp_steering.caa import SteeringVectors, add_steering
    from autointerp_steering.generate import generate

    lm = load_adapter(adapter, model, option, threads)
    ivs = []
    if vectors is not None and multiplier:
        vecs = SteeringVectors.load(vectors)
        kind = vecs.meta.get("kind", "resid_post")
        layers = vecs.layers()
        chosen = layer if layer is not None else layers[len(layers) // 2]
        site = f"{kind}.{chosen}"
        if site not in vecs.vectors:
            raise ConfigError(f"--layer {chosen}: {vectors} has vectors for layers {layers}")
        ivs.append(add_steering(site, vecs.vectors[site], multiplier))
    svecs = SteeringVectors.load(state_vectors).vectors if state_vectors else None
    kwargs = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    plain = generate(lm, prompt, **kwargs)
    steered = generate(
        lm,
        prompt,
        interventions=ivs,
        state_vectors=svecs,
        state_multiplier=state_multiplier,
        **kwargs,
    )
    for p, a, b in zip(prompt, plain, steered, strict=True):
        console.print(f"[bold]{p}[/]")
        console.print(f"  unsteered: {a!r}", highlight=False)
        console.print(f"  steered:   {b!r}", highlight=False)
