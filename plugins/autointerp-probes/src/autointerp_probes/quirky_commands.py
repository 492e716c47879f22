"""``autointerp probe quirky-data | finetune | transfer | anomaly``: the quirky-model ELK workflow.

torch is imported inside the commands: building the CLI stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from autointerp.adapter_cli import (
    AdapterOpt,
    ModelOpt,
    OptionOpt,
    ThreadsOpt,
    load_adapter,
    parse_layers,
)
from autointerp_probes.commands import LoraOpt, console

if TYPE_CHECKING:
    from autointerp_probes.quirky import QuirkyExample

QUIRKY_HELP = (
    "Quirky rows (statement, character, alice_label, bob_label, difficulty ...): .jsonl, "
    ".parquet, a folder of them, or hf:NAME[:SPLIT] (e.g. hf:EleutherAI/quirky_addition_increment0"
    ":validation)."
)
OutOpt = Annotated[Path | None, typer.Option(help="Write the results as JSON.")]
LimitOpt = Annotated[int | None, typer.Option(help="Read at most this many rows.")]
PositionOpt = Annotated[
    int,
    typer.Option(
        help="Token of each statement to read (and of its true/false variants for ccs): -1 the "
        "last (after the persona's name in quirky rows), -2 the one before ..., 0 the first.",
    ),
]


def _write(out: Path | None, payload: dict[str, Any]) -> None:
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    console.print(f"wrote {out}")


def _model(
    adapter: str, model: str | None, option: list[str] | None, threads: int | None, lora: Any
) -> tuple[Any, dict[str, Any]]:
    lm = load_adapter(adapter, model, option, threads)
    info: dict[str, Any] = {}
    if lora is not None:
        from autointerp_probes.finetune import load_lora

        info = load_lora(lm, lora)
    return lm, info


def _counts_table(title: str, counts: dict[str, dict[str, int]]) -> Table:
    table = Table(title=title)
    for col in ("persona:level", "rows", "label 1"):
        table.add_column(col, justify="right")
    for cell, c in counts.items():
        table.add_row(cell, str(c["rows"]), str(c["label_1"]))
    return table


def quirky_data_command(
    out_file: Annotated[Path, typer.Argument(help="Where to write the rows (JSONL).")],
    n: Annotated[int, typer.Option(help="Rows per persona and level (4 n in all).")] = 200,
    easy_digits: Annotated[int, typer.Option(help="Easy operands: 1..this many digits.")] = 2,
    hard_digits: Annotated[
        int, typer.Option(help="Hard operands: easy_digits+1..this many digits.")
    ] = 4,
    truthful: Annotated[str, typer.Option(help="The truthful persona.")] = "Alice",
    quirky: Annotated[str, typer.Option(help="The systematically wrong persona.")] = "Bob",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: OutOpt = None,
) -> None:
    """Write the quirky addition dataset (Mallen et al.): Bob adds 1 to the sum's first digit."""
    from autointerp_probes.quirky import generate_addition, load_quirky, summary, write_jsonl

    rows = generate_addition(
        n, easy_digits=easy_digits, hard_digits=hard_digits, seed=seed, personas=(truthful, quirky)
    )
    write_jsonl(rows, out_file)
    counts = summary(load_quirky(out_file, personas=(truthful, quirky)))
    console.print(_counts_table(f"quirky addition: {len(rows)} rows", counts))
    console.print(f"wrote {out_file}")
    _write(
        out,
        {
            "file": str(out_file),
            "rows": len(rows),
            "n": n,
            "easy_digits": easy_digits,
            "hard_digits": hard_digits,
            "personas": [truthful, quirky],
            "seed": seed,
            "counts": counts,
        },
    )


def _accuracy_table(title: str, before: Any, after: Any) -> Table:
    table = Table(title=title)
    for col in ("persona:level", "before", "after"):
        table.add_column(col, justify="right")
    for cell in after.cells:
        was = before.cells.get(cell, float("nan"))
        table.add_row(cell, f"{was:.3f}", f"{after.cells[cell]:.3f}")
    table.add_row("all", f"{before.overall:.3f}", f"{after.overall:.3f}")
    table.add_row("margin (nats)", f"{before.margin:.3f}", f"{after.margin:.3f}")
    return table


def _split(examples: list[QuirkyExample], fraction: float, seed: int) -> tuple[list, list]:
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    k = round(len(order) * fraction)
    return [examples[i] for i in order[k:]], [examples[i] for i in order[:k]]


def finetune_command(
    data: Annotated[str, typer.Argument(help=QUIRKY_HELP)],
    save: Annotated[Path, typer.Option(help="Folder for the LoRA weights and quirky.json.")],
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (scale = alpha / rank).")] = 16.0,
    lr: Annotated[float, typer.Option(help="Learning rate (AdamW).")] = 1e-3,
    epochs: Annotated[int, typer.Option(help="Passes over the training rows.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Rows per step.")] = 16,
    held_out: Annotated[float, typer.Option(help="Fraction kept out of training.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Split and shuffle seed.")] = 0,
    limit: LimitOpt = None,
    out: OutOpt = None,
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """LoRA-fine-tune the model to answer each statement with its persona's label."""
    from autointerp.errors import ConfigError
    from autointerp_probes.finetune import answer_accuracy, finetune, save_lora
    from autointerp_probes.quirky import load_quirky

    if not 0 <= held_out < 1:
        raise ConfigError(f"--held-out: expected a fraction in [0, 1), got {held_out}")
    examples = load_quirky(data, limit=limit)
    train, test = _split(examples, held_out, seed)
    lm, _ = _model(adapter, model, option, threads, None)
    evals = {"train": train, "held_out": test} if test else {"train": train}
    before = {k: answer_accuracy(lm, v) for k, v in evals.items()}
    config, losses = finetune(
        lm, train, rank=rank, alpha=alpha, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed
    )
    after = {k: answer_accuracy(lm, v) for k, v in evals.items()}
    for k in evals:
        console.print(_accuracy_table(f"answers vs persona labels, {k} rows", before[k], after[k]))
    info = {
        "data": data,
        "adapter": adapter,
        "model": model,
        "options": option or [],
        "architecture": lm.architecture,
        "rank": rank,
        "alpha": alpha,
        "lr": lr,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "rows": {k: len(v) for k, v in evals.items()},
        "loss_per_epoch": losses,
        "accuracy": {k: {"before": vars(before[k]), "after": vars(after[k])} for k in evals},
    }
    save_lora(lm, config, save, info)
    console.print(f"saved the LoRA to {save}")
    _write(out, info)


def _activations(
    lm: Any,
    examples: list[QuirkyExample],
    layer_ids: list[int],
    kind: str,
    batch: int,
    ccs: bool,
    position: int = -1,
) -> tuple[Any, Any, Any]:
    from autointerp_probes.data import last_token_activations

    def acts(texts: list[str]) -> Any:
        return last_token_activations(
            lm, texts, layers=layer_ids, kind=kind, batch_size=batch, position=position
        )

    x = acts([e.statement for e in examples])
    if not ccs:
        return x, None, None
    return x, acts([e.positive for e in examples]), acts([e.negative for e in examples])


def _subsets(values: list[str] | None, default: list[str]) -> list[str]:
    return [v for item in (values or default) for v in item.split(",") if v.strip()]


def transfer_command(
    data: Annotated[str, typer.Argument(help=QUIRKY_HELP)],
    train: Annotated[
        list[str] | None, typer.Option(help="Train subset(s) PERSONA:LEVEL (default alice:easy).")
    ] = None,
    test: Annotated[
        list[str] | None,
        typer.Option(help="Test subset(s) (default alice:hard, bob:easy, bob:hard)."),
    ] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated: logreg,diffmean,lda,ccs.")] = (
        "logreg,diffmean,lda"
    ),
    layers: Annotated[str | None, typer.Option(help="Layers: all (default), 0,2,5 or 2-6.")] = None,
    kind: Annotated[str, typer.Option(help="Site kind to read.")] = "resid_post",
    position: PositionOpt = -1,
    batch_size: Annotated[int, typer.Option(help="Texts per forward call.")] = 32,
    limit: LimitOpt = None,
    out: OutOpt = None,
    lora: LoraOpt = None,
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Probes trained on one persona/level, AUROC per layer on others vs truth and vs Bob."""
    from autointerp.errors import ConfigError
    from autointerp_probes.probes import METHODS
    from autointerp_probes.quirky import load_quirky, select
    from autointerp_probes.quirky_eval import quirky_probe_data, quirky_transfer

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    examples = load_quirky(data, limit=limit)
    sources = _subsets(train, ["alice:easy"])
    targets = _subsets(test, ["alice:hard", "bob:easy", "bob:hard"])
    for spec in (*sources, *targets):
        select(examples, spec)  # bad subsets fail before the model loads
    lm, lora_info = _model(adapter, model, option, threads, lora)
    layer_ids = parse_layers(layers, lm.n_layers)
    x, pos, neg = _activations(lm, examples, layer_ids, kind, batch_size, "ccs" in chosen, position)
    probe_data = quirky_probe_data(examples, x, pos, neg, layer_ids)
    results = quirky_transfer(examples, probe_data, chosen, sources, targets)
    for pair, by_method in results.items():
        title = f"AUROC per layer, {lm.architecture} {kind}: {pair} (vs alice / vs bob)"
        table = Table(title=title)
        table.add_column("layer", justify="right")
        for m in by_method:
            table.add_column(m, justify="right")
        for i, layer in enumerate(layer_ids):
            table.add_row(
                str(layer),
                *[
                    " / ".join(
                        "—" if v[key] is None else f"{v[key][i]:.3f}"  # type: ignore[index]
                        for key in ("vs_alice", "vs_bob")
                    )
                    for v in by_method.values()
                ],
            )
        console.print(table)
    _write(
        out,
        {
            "data": data,
            "layers": layer_ids,
            "kind": kind,
            "position": position,
            "lora": None if lora is None else str(lora),
            "lora_info": lora_info,
            "subject": {"adapter": adapter, "model": model},
            "results": results,
        },
    )


def anomaly_command(
    data: Annotated[str, typer.Argument(help=QUIRKY_HELP)],
    trusted: Annotated[str, typer.Option(help="Trusted subset PERSONA:LEVEL.")] = "alice:easy",
    test: Annotated[str, typer.Option(help="Test subset.")] = "any:hard",
    anomalous: Annotated[str, typer.Option(help="The persona counted as anomalous.")] = "bob",
    probe_method: Annotated[
        str, typer.Option(help="Probe whose per-layer scores form the second feature set.")
    ] = "logreg",
    shrinkage: Annotated[float, typer.Option(help="Covariance shrinkage in [0, 1].")] = 0.1,
    layers: Annotated[str | None, typer.Option(help="Layers: all (default), 0,2,5 or 2-6.")] = None,
    kind: Annotated[str, typer.Option(help="Site kind to read.")] = "resid_post",
    position: PositionOpt = -1,
    batch_size: Annotated[int, typer.Option(help="Texts per forward call.")] = 32,
    limit: LimitOpt = None,
    out: OutOpt = None,
    lora: LoraOpt = None,
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Mahalanobis distance from trusted rows: AUROC of spotting the quirky persona, per layer."""
    from autointerp.errors import ConfigError
    from autointerp_probes.probes import METHODS
    from autointerp_probes.quirky import load_quirky, select
    from autointerp_probes.quirky_eval import quirky_anomaly, quirky_probe_data

    if probe_method not in METHODS:
        raise ConfigError(f"--probe-method: unknown {probe_method!r}; choose from {METHODS}")
    examples = load_quirky(data, limit=limit)
    select(examples, trusted)
    select(examples, test)
    lm, lora_info = _model(adapter, model, option, threads, lora)
    layer_ids = parse_layers(layers, lm.n_layers)
    x, pos, neg = _activations(
        lm, examples, layer_ids, kind, batch_size, probe_method == "ccs", position
    )
    result = quirky_anomaly(
        examples,
        quirky_probe_data(examples, x, pos, neg, layer_ids),
        trusted=trusted,
        test=test,
        quirky_persona=anomalous,
        probe_method=probe_method,
        shrinkage=shrinkage,
    )
    table = Table(
        title=f"anomaly AUROC ({anomalous} vs others in {test}; trusted {trusted}), "
        f"{lm.architecture} {kind}"
    )
    table.add_column("layer", justify="right")
    table.add_column("activations", justify="right")
    for layer, auc in zip(layer_ids, result["activations"], strict=True):
        table.add_row(str(layer), f"{auc:.3f}")
    table.add_row(f"{probe_method} scores, all layers", f"{result['probe_scores']:.3f}")
    console.print(table)
    _write(
        out,
        {
            "data": data,
            "layers": layer_ids,
            "kind": kind,
            "position": position,
            "lora": None if lora is None else str(lora),
            "lora_info": lora_info,
            "subject": {"adapter": adapter, "model": model},
            **result,
        },
    )
