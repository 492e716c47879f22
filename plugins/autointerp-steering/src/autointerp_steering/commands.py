"""``autointerp steer``: steering vectors, layer × multiplier sweeps and steered generation.

torch is imported inside the commands: building the CLI stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    str | None,
    typer.Argument(
        help="Contrast pairs: a .json array or .jsonl file (prompt/positive/negative or the CAA "
        "fields), hf:NAME[:SPLIT], a standard behaviour (its packaged sample) or caa:NAME[:SPLIT] "
        "(the published CAA set). Or give --behavior.",
        show_default=False,
    ),
]
BehaviorOpt = Annotated[
    str | None,
    typer.Option(
        "--behavior",
        help="A standard CAA behaviour (see `steer behaviors`): its packaged sample, or "
        "caa:NAME for the full published set.",
    ),
]
TemplateOpt = Annotated[
    str,
    typer.Option(
        help="How a CAA question becomes a prompt: plain (question + 'Answer: '), chat (the "
        "tokenizer's chat template) or a text with {question}.",
    ),
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


def dataset_source(pairs: str | None, behavior: str | None) -> str:
    """The dataset source from the PAIRS argument or ``--behavior`` (exactly one)."""
    from autointerp.errors import ConfigError

    if pairs and behavior:
        raise ConfigError("give either PAIRS or --behavior, not both")
    source = pairs or behavior
    if not source:
        raise ConfigError(
            "no dataset: give PAIRS (a file, hf:NAME, a behaviour name) or --behavior NAME"
        )
    return source


def read_pairs(source: str, template: str, lm: Any = None) -> Any:
    from autointerp_steering.data import load_pairs

    return load_pairs(source, template=template, tokenizer=getattr(lm, "tokenizer", None))


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
    pairs: PairsArg = None,
    behavior: BehaviorOpt = None,
    template: TemplateOpt = "plain",
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
    from autointerp_steering.state import state_vectors

    source = dataset_source(pairs, behavior)
    # a file's mistakes surface before the model loads, unless the template needs its tokenizer
    data = None if template == "chat" else read_pairs(source, template)
    lm = load_adapter(adapter, model, option, threads)
    data = data if data is not None else read_pairs(source, template, lm)
    if state:
        vecs = state_vectors(lm, data, batch_size=batch_size)
    else:
        vecs = caa_vectors(
            lm, data, layers=parse_layers(layers, lm.n_layers), kind=kind, batch_size=batch_size
        )
    vecs.meta["dataset"] = source
    vecs.save(out)
    table = Table(title=f"steering vectors from {len(data)} pairs → {out}")
    for col in ("site", "shape", "norm"):
        table.add_column(col)
    for name, v in vecs.vectors.items():
        table.add_row(name, str(tuple(v.shape)), f"{float(v.norm()):.4g}")
    console.print(table)


@app.command("sweep")
def sweep_command(
    pairs: PairsArg = None,
    behavior: BehaviorOpt = None,
    template: TemplateOpt = "plain",
    vectors: Annotated[
        Path | None, typer.Option(help="Vectors from `steer vectors` (default: compute them).")
    ] = None,
    test_pairs: Annotated[
        str | None,
        typer.Option(help="Held-out pairs to score, any PAIRS form (default: PAIRS)."),
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
    judge: Annotated[
        str | None,
        typer.Option(
            help="Also evaluate open-ended answers, scored 0-10 by this LLM client "
            "(openai-compatible, openai, anthropic ...).",
            rich_help_panel="Open-ended evaluation",
        ),
    ] = None,
    judge_option: Annotated[
        list[str] | None,
        typer.Option(
            "--judge-option",
            "-j",
            metavar="KEY=VALUE",
            help="A judge client option (repeat): base_url=..., model=...",
            rich_help_panel="Open-ended evaluation",
        ),
    ] = None,
    questions: Annotated[
        str | None,
        typer.Option(
            help="Open-ended questions, any PAIRS form (default: the behaviour's open-ended set, "
            "else the A/B questions without their choices).",
            rich_help_panel="Open-ended evaluation",
        ),
    ] = None,
    behavior_description: Annotated[
        str | None,
        typer.Option(
            help="What the judge looks for (default: the standard behaviour's description).",
            rich_help_panel="Open-ended evaluation",
        ),
    ] = None,
    judge_layers: Annotated[
        str | None,
        typer.Option(
            help="Layers for open-ended answers (default: --layers).",
            rich_help_panel="Open-ended evaluation",
        ),
    ] = None,
    judge_multipliers: Annotated[
        str | None,
        typer.Option(
            help="Multipliers for open-ended answers (default: --multipliers).",
            rich_help_panel="Open-ended evaluation",
        ),
    ] = None,
    max_new_tokens: Annotated[
        int,
        typer.Option(help="Tokens per open-ended answer.", rich_help_panel="Open-ended evaluation"),
    ] = 40,
    threads: ThreadsOpt = None,
) -> None:
    """Sweep layers × multipliers and report p(matching) / (p(A)+p(B)) per cell; with --judge,
    also the mean 0-10 behaviour score an LLM judge gives steered open-ended answers."""
    from autointerp_steering.caa import SteeringVectors, caa_vectors, sweep
    from autointerp_steering.data import tokenize_pairs
    from autointerp_steering.report import write_all
    from autointerp_steering.state import state_sweep, state_vectors

    source = dataset_source(pairs, behavior)
    description = judge_description(source, behavior_description) if judge else ""
    backend = build_judge(judge, judge_option) if judge else None
    lm = load_adapter(adapter, model, option, threads)
    train = tokenize_pairs(lm, read_pairs(source, template, lm))
    test = tokenize_pairs(lm, read_pairs(test_pairs, template, lm)) if test_pairs else train
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
    report = {k: sweep_record(r) for k, r in results.items()}
    report["dataset"] = source
    if judge:
        from autointerp_steering.data import load_questions

        asked = load_questions(
            questions or source, template=template, tokenizer=getattr(lm, "tokenizer", None)
        )
        result, record = judge_sweep(
            lm,
            asked,
            vecs,
            backend,
            description,
            out,
            layers=parse_layers(judge_layers, lm.n_layers) if judge_layers else chosen,
            multipliers=parse_floats(judge_multipliers) if judge_multipliers else mults,
            max_new_tokens=max_new_tokens,
        )
        title = f"open-ended steering, {lm.architecture}: judge score 0-10"
        print_sweep(result, title)
        written += write_all(result, out, stem="sweep-open-ended", title=title)
        report["open_ended"] = record
    # which model this is: `autointerp analyze steering` labels its series with it
    report["subject"] = {"adapter": adapter, "model": model, "architecture": lm.architecture}
    (out / "sweep.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    if not any(p.suffix == ".png" for p in written):
        console.print("note: matplotlib is not installed: heatmaps written as SVG only")
    console.print(f"wrote {', '.join(str(p) for p in written)} and {out / 'sweep.json'}")


def sweep_record(result: SweepResult) -> dict[str, Any]:
    """A sweep as JSON data (a cell without a value, e.g. every judgement failed, is null)."""
    cells = [
        {**c, "metric": None if c["metric"] != c["metric"] else c["metric"]}
        for c in result.as_records()
    ]
    base = None if result.baseline != result.baseline else result.baseline
    return {"baseline": base, "cells": cells, **result.meta}


def judge_description(source: str, given: str | None) -> str:
    from autointerp.errors import ConfigError
    from autointerp_steering.behaviors import BEHAVIORS, behavior_of

    if given:
        return given
    name = behavior_of(source)
    if name is None:
        raise ConfigError(
            f"--judge: {source} is not a standard behaviour; say what the judge should look for "
            "with --behavior-description TEXT"
        )
    return BEHAVIORS[name]


def build_judge(client_name: str, client_options: list[str] | None) -> Any:
    """The judge's LLM backend (an ``llm_client`` component), checked (API key ...) before any
    model loads."""
    from autointerp.adapter_cli import parse_options
    from autointerp.plugins import get_plugin_manager

    options = parse_options(client_options, "--judge-option")
    backend = get_plugin_manager().build("llm_client", client_name, options)
    if callable(check := getattr(backend, "check", None)):
        check()
    return backend


def judge_sweep(
    lm: Any,
    asked: list[tuple[str, str]],
    vecs: Any,
    backend: Any,
    description: str,
    out: Path,
    **kwargs: Any,
) -> tuple[SweepResult, dict[str, Any]]:
    """Open-ended answers judged through ``backend`` wrapped in the LLM client, whose response
    cache and ledger live in OUT/results.sqlite: a rerun pays for no judgement it already has."""
    from autointerp.llm import wrap
    from autointerp.store import Store
    from autointerp_steering.judge import judged_records, open_ended_sweep

    out.mkdir(parents=True, exist_ok=True)
    with Store.open(out) as store:
        config = {
            "command": "steer sweep --judge",
            "judge": getattr(backend, "name", ""),
            "behavior": description,
        }
        run_id = store.start_run("steer-open-ended", config)
        client = wrap(backend, store=store.bind(run_id))
        status = "failed"
        try:
            result, judged = open_ended_sweep(lm, asked, vecs, client, description, **kwargs)
            status = "finished"
        finally:
            store.finish_run(run_id, status)
        usage = store.usage(run_id)
    console.print(
        f"judge: {usage.calls} calls, {usage.cache_hits} from the cache, "
        f"{usage.prompt_tokens + usage.completion_tokens} tokens, ${usage.cost_usd:.4f}; "
        f"{result.meta['failed']} answers not scored"
    )
    record = sweep_record(result)
    record["items"] = judged_records(judged)
    record["usage"] = {
        "calls": usage.calls,
        "cache_hits": usage.cache_hits,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": usage.cost_usd,
        "store": str(out / "results.sqlite"),
        "run_id": run_id,
    }
    return result, record


@app.command("behaviors")
def behaviors_command() -> None:
    """The standard CAA behaviours: packaged samples (offline) and what the judge looks for."""
    from autointerp_steering.behaviors import BEHAVIORS, packaged_path

    table = Table(title="standard behaviours (caa:NAME for the full published sets)")
    for col in ("name", "A/B pairs", "open-ended", "judge looks for"):
        table.add_column(col)
    for name, description in BEHAVIORS.items():
        counts = [
            str(len(json.loads(packaged_path(name, kind).read_text(encoding="utf-8"))))
            for kind in ("ab", "open_ended")
        ]
        table.add_row(name, *counts, description)
    console.print(table)


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
