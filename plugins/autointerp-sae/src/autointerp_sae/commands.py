"""``autointerp sae train``: a TopK SAE on a model's site activations, streamed from a corpus.

torch is imported inside the command: building the CLI stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from autointerp.adapter_cli import AdapterOpt, ModelOpt, OptionOpt, ThreadsOpt, load_adapter

if TYPE_CHECKING:
    import torch

console = Console()
app = typer.Typer(help="Sparse autoencoders: train a TopK SAE offline.", no_args_is_help=True)


def corpus_batches(
    adapter: Any, corpus: str, text_field: str, seq_len: int, batch_size: int, seed: int
) -> Iterator[torch.Tensor]:
    """The corpus's ``[batch, seq_len]`` windows, read again from the start when it runs out
    (a small corpus is seen for several epochs); the caller stops at its token budget."""
    from autointerp.corpus import CorpusError, iter_texts, token_windows

    epoch = 0
    while True:
        count = 0
        for batch in token_windows(
            adapter, iter_texts(corpus, text_field), seq_len=seq_len, batch_size=batch_size,
            shuffle_buffer=16, seed=seed + epoch,
        ):  # fmt: skip
            count += 1
            yield batch
        if count == 0:
            raise CorpusError(f"corpus {corpus}: fewer than {seq_len * batch_size} tokens")
        epoch += 1


@app.command("train")
def train_command(
    site: Annotated[str, typer.Option(help="Site to read, e.g. resid_post.6 (see `sites`).")],
    corpus: Annotated[
        str, typer.Option(help="txt/jsonl/parquet file or folder, hf:NAME, builtin:python-docs.")
    ] = "builtin:python-docs",
    out: Annotated[
        Path | None,
        typer.Option(help="Output: a .safetensors file (plain) or a folder (sparsify)."),
    ] = None,
    width: Annotated[int | None, typer.Option(help="Latents (default: expansion x d).")] = None,
    expansion: Annotated[int, typer.Option(help="Latents per input dimension.")] = 8,
    k: Annotated[int, typer.Option(help="Active latents per token.")] = 32,
    tokens: Annotated[int, typer.Option(help="Training tokens.")] = 1_000_000,
    lr: Annotated[
        float | None, typer.Option(help="Adam learning rate (default 2e-4/sqrt(width/16384)).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Tokens per optimizer step.")] = 4096,
    ctx_len: Annotated[int, typer.Option(help="Tokens per context.")] = 64,
    forward_batch: Annotated[int, typer.Option(help="Contexts per model forward.")] = 16,
    buffer_tokens: Annotated[
        int, typer.Option(help="Activations held and shuffled at once (bounds memory).")
    ] = 65_536,
    passes: Annotated[
        int, typer.Option(help="Optimizer passes over each buffer (more steps per forward).")
    ] = 1,
    auxk_alpha: Annotated[float, typer.Option(help="AuxK loss weight (0: off).")] = 1 / 32,
    dead_tokens: Annotated[
        int, typer.Option(help="A latent silent for this many tokens counts as dead.")
    ] = 200_000,
    fmt: Annotated[str, typer.Option("--format", help="plain or sparsify.")] = "plain",
    text_field: Annotated[str, typer.Option(help="jsonl/parquet text field.")] = "text",
    seed: Annotated[int, typer.Option(help="Seed for initialisation and shuffling.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train a TopK SAE on SITE's activations over a corpus and save it for the `sae` source."""
    from autointerp.errors import ConfigError
    from autointerp_sae.train import TrainSettings, save, site_activations, train_topk

    if fmt not in ("plain", "sparsify"):
        raise ConfigError(f"--format {fmt!r}: expected plain or sparsify")
    positive = {"k": k, "tokens": tokens, "batch-size": batch_size, "expansion": expansion,
                "buffer-tokens": buffer_tokens, "passes": passes}  # fmt: skip
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    model_adapter = load_adapter(adapter, model, option, threads)
    d_in = model_adapter.site(site).shape[-1]
    n = width or expansion * d_in
    if not 1 <= k <= n:
        raise ConfigError(f"--k {k}: expected 1..{n} (the width)")
    out = out or Path(f"sae-{site}.safetensors" if fmt == "plain" else f"sae-{site}")
    settings = TrainSettings(
        width=n, k=k, tokens=tokens, batch_size=batch_size, lr=lr, buffer_tokens=buffer_tokens,
        passes=passes, auxk_alpha=auxk_alpha, dead_tokens=dead_tokens, seed=seed,
    )  # fmt: skip
    batches = corpus_batches(model_adapter, corpus, text_field, ctx_len, forward_batch, seed)
    sae, stats = train_topk(
        site_activations(model_adapter, site, batches), d_in, settings, progress=progress
    )
    summary = stats.summary()
    save(
        sae, out, site=site, fmt=fmt, corpus=corpus, tokens=stats.tokens,
        fvu=f"{stats.fvu:.4f}", seed=seed, model=model or "",
    )  # fmt: skip
    console.print(
        f"SAE {d_in} -> {n} latents, k={k}, at {site}: {stats.tokens:,} tokens in "
        f"{stats.seconds:.1f} s ({summary['tokens_per_s']:,.0f} tok/s, {stats.steps} steps); "
        f"FVU {stats.fvu_start:.3f} -> {stats.fvu:.3f}; dead latents {stats.dead_fraction:.1%}"
    )
    console.print(
        f'wrote {out}; use it with: [feature_source] name = "sae", path = "{out}"', markup=False
    )
