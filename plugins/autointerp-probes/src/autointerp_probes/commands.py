"""``autointerp probe``: ELK-style probes per layer, with AUROC and transfer evaluation.

torch is imported inside the commands: building the CLI stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from autointerp.adapter_cli import (
    AdapterOpt,
    ModelOpt,
    OptionOpt,
    ThreadsOpt,
    load_adapter,
    parse_layers,
)

console = Console()
DATA_HELP = (
    "Labelled rows: .jsonl, .parquet, a folder of them, or hf:NAME[:SPLIT] "
    "(fields: text, label, group ...)."
)
LoraOpt = Annotated[
    Path | None,
    typer.Option(help="Apply a LoRA saved by `probe finetune --save` to the model first."),
]
app = typer.Typer(
    help="Linear probes (logreg, diffmean, LDA, CCS): AUROC per layer.", no_args_is_help=True
)


@app.command("train")
def train_command(
    data: Annotated[str, typer.Argument(help=DATA_HELP)],
    methods: Annotated[str, typer.Option(help="Comma-separated: logreg,diffmean,lda,ccs.")] = (
        "logreg,diffmean,lda,ccs"
    ),
    layers: Annotated[str | None, typer.Option(help="Layers: all (default), 0,2,5 or 2-6.")] = None,
    kind: Annotated[str, typer.Option(help="Site kind to read.")] = "resid_post",
    test_fraction: Annotated[float, typer.Option(help="Held-out fraction (random split).")] = 0.3,
    train_group: Annotated[
        str | None, typer.Option(help="Train on this group and test on --test-group.")
    ] = None,
    test_group: Annotated[str | None, typer.Option(help="Group to test on.")] = None,
    transfer_all: Annotated[
        bool, typer.Option("--transfer", help="Train on each group, test on every other.")
    ] = False,
    positive_suffix: Annotated[str, typer.Option(help="CCS positive suffix.")] = " True",
    negative_suffix: Annotated[str, typer.Option(help="CCS negative suffix.")] = " False",
    seed: Annotated[int, typer.Option(help="Split seed.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Texts per forward call.")] = 32,
    out: Annotated[Path | None, typer.Option(help="Write the AUROCs as JSON.")] = None,
    text_field: Annotated[str, typer.Option(help="Field holding the statement.")] = "text",
    label_field: Annotated[str, typer.Option(help="Field holding the 0/1 label.")] = "label",
    group_field: Annotated[str, typer.Option(help="Field naming the group.")] = "group",
    limit: Annotated[int | None, typer.Option(help="Read at most this many rows.")] = None,
    lora: LoraOpt = None,
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Collect last-token activations per layer, fit probes, report AUROC per layer."""
    import torch

    from autointerp.errors import ConfigError
    from autointerp_probes.data import contrast_texts, last_token_activations, load_statements
    from autointerp_probes.evaluate import (
        ProbeData,
        evaluate,
        group_indices,
        stratified_split,
        transfer,
    )
    from autointerp_probes.probes import METHODS

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    if (train_group is None) != (test_group is None):
        raise ConfigError("give both --train-group and --test-group, or neither")
    statements = load_statements(
        data, text_field=text_field, label_field=label_field, group_field=group_field, limit=limit
    )
    lm = load_adapter(adapter, model, option, threads)
    if lora is not None:
        from autointerp_probes.finetune import load_lora

        load_lora(lm, lora)
    layer_ids = parse_layers(layers, lm.n_layers)

    def acts(texts: list[str]) -> torch.Tensor:
        return last_token_activations(lm, texts, layers=layer_ids, kind=kind, batch_size=batch_size)

    pos = neg = None
    if "ccs" in chosen:
        p_texts, n_texts = contrast_texts(statements, positive_suffix, negative_suffix)
        pos, neg = acts(p_texts), acts(n_texts)
    probe_data = ProbeData(
        acts([s.text for s in statements]),
        torch.tensor([s.label for s in statements]),
        groups=[s.group for s in statements],
        pos=pos,
        neg=neg,
        layers=layer_ids,
    )
    results: dict[str, dict[str, list[float]]] = {}
    if transfer_all:
        for m, cells in transfer(probe_data, chosen).items():
            for (a, b), auc in cells.items():
                results.setdefault(f"{a}→{b}", {})[m] = auc.tolist()
    else:
        if train_group is not None and test_group is not None:
            train_idx, test_idx = (
                group_indices(probe_data, train_group),
                group_indices(probe_data, test_group),
            )
            label = f"{train_group}→{test_group}"
        else:
            train_idx, test_idx = stratified_split(probe_data.labels, test_fraction, seed)
            label = f"random split ({len(train_idx)} train / {len(test_idx)} test)"
        results[label] = {
            m: v.tolist() for m, v in evaluate(probe_data, chosen, train_idx, test_idx).items()
        }
    for label, by_method in results.items():
        table = Table(title=f"AUROC per layer, {lm.architecture} {kind}: {label}")
        table.add_column("layer", justify="right")
        for m in by_method:
            table.add_column(m, justify="right")
        for i, layer in enumerate(layer_ids):
            table.add_row(str(layer), *[f"{by_method[m][i]:.3f}" for m in by_method])
        console.print(table)
    if "ccs" in chosen:
        console.print("note: CCS is unsupervised; training labels only choose its sign")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {"layers": layer_ids, "kind": kind, "results": results},
                indent=2,
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
        console.print(f"wrote {out}")


def _register_quirky() -> None:
    from autointerp_probes import quirky_commands as q

    app.command("quirky-data")(q.quirky_data_command)
    app.command("finetune")(q.finetune_command)
    app.command("transfer")(q.transfer_command)
    app.command("anomaly")(q.anomaly_command)


_register_quirky()
