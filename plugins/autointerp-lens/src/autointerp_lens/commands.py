"""``autointerp lens``: train a tuned lens, evaluate logit vs tuned lens, show top tokens.

torch is imported inside the commands: building the CLI stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from autointerp.adapter_cli import AdapterOpt, ModelOpt, OptionOpt, ThreadsOpt, load_adapter

if TYPE_CHECKING:
    from autointerp_lens.lens import LensReport

console = Console()
app = typer.Typer(help="Logit lens and tuned lens: train, evaluate, inspect.", no_args_is_help=True)

CorpusArg = Annotated[
    str,
    typer.Argument(
        help="Corpus, any form `autointerp run` accepts: a .txt/.jsonl/.parquet file or a folder "
        "of them, hf:NAME[:SPLIT], or builtin:python-docs (offline).",
        show_default=False,
    ),
]
TextFieldOpt = Annotated[
    str, typer.Option(help="Field (JSONL, hf:) or column (Parquet) holding the text.")
]
SeqOpt = Annotated[int, typer.Option(help="Tokens per window.")]
BatchOpt = Annotated[int, typer.Option(help="Windows per batch.")]


def corpus_batches(
    lm: Any, corpus: str, text_field: str, *, seq_len: int, batch_size: int
) -> Iterator[Any]:
    """Token windows of a corpus in every form ``autointerp run`` reads (core's corpus reader);
    a hub dataset that cannot be reached is a one-line error, not a traceback."""
    from autointerp.corpus import iter_texts, token_windows

    texts = iter_texts(corpus, text_field)
    if corpus.startswith("hf:"):
        texts = _hub_errors(texts, corpus)
    return token_windows(lm, texts, seq_len=seq_len, batch_size=batch_size)


def _hub_errors(texts: Iterator[str], corpus: str) -> Iterator[str]:
    from autointerp.corpus import CorpusError

    try:
        yield from texts
    except CorpusError:
        raise
    except Exception as exc:  # offline, unknown dataset, bad split: the datasets library's own
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CorpusError(
            f"corpus {corpus}: cannot read the dataset ({first[:200]}); offline? use a local "
            "file or builtin:python-docs"
        ) from None


def print_report(report: LensReport, title: str) -> None:
    table = Table(title=title)
    rows = report.rows()
    cols = ["site", "kl_logit", "bpb_logit"] + (
        ["kl_tuned", "bpb_tuned"] if "kl_tuned" in rows[0] else []
    )
    for col in cols:
        table.add_column(col.replace("_", " "), justify="left" if col == "site" else "right")
    for row in rows:
        table.add_row(*[row[c] if c == "site" else f"{row[c]:.4f}" for c in cols])
    console.print(table)
    console.print(
        f"model: {report.bits_per_byte(report.ce_model):.4f} bits/byte, CE "
        f"{report.ce_model:.4f} nats/token over {report.tokens} tokens (KL in nats/token)"
    )


def write_svg(report: LensReport, path: Path) -> Path:
    """KL per site on a log scale, logit vs tuned lens, as a dependency-free SVG."""
    import math

    w, h, left, top, bottom = 640, 320, 60, 30, 90
    series = [("logit lens", report.kl_logit, "#3b4cc0")]
    if report.kl_tuned is not None:
        series.append(("tuned lens", report.kl_tuned, "#b40426"))
    values = [v for _, vs, _ in series for v in vs if v > 0]
    lo, hi = math.log10(max(min(values, default=1e-3), 1e-4)), math.log10(max(values, default=1))
    hi = max(hi, lo + 1)
    n = len(report.sites)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (w - left - 20) * i / max(1, n - 1)
        y = top + (h - top - bottom) * (hi - math.log10(max(v, 10**lo))) / (hi - lo)
        return x, y

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="10">',
        f'<text x="{left}" y="16" font-size="12">KL(final ‖ lens), nats/token (log scale)</text>',
    ]
    for k in range(math.floor(lo), math.ceil(hi) + 1):
        _, y = xy(0, 10.0**k)
        out.append(f'<text x="{left - 6}" y="{y + 3}" text-anchor="end">1e{k}</text>')
        out.append(f'<line x1="{left}" x2="{w - 20}" y1="{y}" y2="{y}" stroke="#ddd"/>')
    for i, site in enumerate(report.sites):
        x, _ = xy(i, 1)
        out.append(f'<text transform="translate({x},{h - bottom + 12}) rotate(60)">{site}</text>')
    for j, (name, vs, colour) in enumerate(series):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(vs)))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{w - 120}" y="{top + 14 * j}" fill="{colour}">{name}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def write_plot(report: LensReport, path: Path) -> Path | None:
    """KL per layer, logit vs tuned lens (PNG; None without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(report.sites, report.kl_logit, marker="o", label="logit lens")
    if report.kl_tuned is not None:
        ax.plot(report.sites, report.kl_tuned, marker="o", label="tuned lens")
    ax.set_ylabel("KL to final (nats)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.tick_params(axis="x", rotation=60)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@app.command("train")
def train_command(
    corpus: CorpusArg,
    out: Annotated[Path, typer.Option(help="Folder for the lens (safetensors + config.json).")] = (
        Path("tuned-lens")
    ),
    tokens: Annotated[int, typer.Option(help="Training token budget.")] = 100_000,
    seq_len: SeqOpt = 64,
    batch_size: BatchOpt = 8,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 50,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    text_field: TextFieldOpt = "text",
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train a tuned lens on a corpus (streamed), with checkpoints in OUT/checkpoint."""
    from autointerp_lens.train import train_tuned_lens

    lm = load_adapter(adapter, model, option, threads)
    windows = corpus_batches(lm, corpus, text_field, seq_len=seq_len, batch_size=batch_size)
    result = train_tuned_lens(
        lm,
        windows,
        max_tokens=tokens,
        lr=lr,
        checkpoint_dir=out / "checkpoint",
        checkpoint_every=checkpoint_every,
        resume=resume,
        progress=progress,
    )
    result.lens.meta["model"] = model
    result.lens.meta["adapter"] = adapter
    result.lens.meta["corpus"] = corpus
    result.lens.save(out)
    tail = result.history[-10:]
    mean_kl = sum(tail) / len(tail) if tail else float("nan")
    console.print(
        f"trained {result.steps} steps on {result.tokens} tokens; mean KL over the last "
        f"{len(tail)} steps {mean_kl:.4f}; lens saved to {out}"
    )


@app.command("eval")
def eval_command(
    corpus: CorpusArg,
    lens: Annotated[Path | None, typer.Option(help="A tuned lens folder to compare.")] = None,
    tokens: Annotated[int, typer.Option(help="Evaluation token budget.")] = 20_000,
    skip_tokens: Annotated[
        int, typer.Option(help="Skip this many tokens first (e.g. the training budget).")
    ] = 0,
    seq_len: SeqOpt = 64,
    batch_size: BatchOpt = 8,
    out: Annotated[Path | None, typer.Option(help="Write lens-eval.json (and a PNG).")] = None,
    text_field: TextFieldOpt = "text",
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Per layer KL to the final output and bits per byte: logit lens vs tuned lens."""
    from autointerp_lens.lens import TunedLens, evaluate

    lm = load_adapter(adapter, model, option, threads)
    tuned = TunedLens.load(lens) if lens else None
    import itertools

    per_batch = seq_len * batch_size
    windows = itertools.islice(
        corpus_batches(lm, corpus, text_field, seq_len=seq_len, batch_size=batch_size),
        -(-skip_tokens // per_batch),
        None,
    )
    report = evaluate(lm, windows, tuned, max_batches=max(1, tokens // per_batch))
    print_report(report, f"lens evaluation, {lm.architecture}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        subject = {"adapter": adapter, "model": model, "architecture": lm.architecture}
        data = {**report.as_dict(), "subject": subject}  # `analyze lens` labels series by it
        (out / "lens-eval.json").write_text(json.dumps(data, indent=2))
        svg = write_svg(report, out / "lens-eval.svg")
        png = write_plot(report, out / "lens-eval.png")
        note = f", {png}" if png else " (no PNG: matplotlib is not installed)"
        console.print(f"wrote {out / 'lens-eval.json'}, {svg}{note}")


@app.command("top")
def top_command(
    text: Annotated[str, typer.Argument(help="Prompt; the lens reads its last position.")],
    lens: Annotated[Path | None, typer.Option(help="A tuned lens folder.")] = None,
    k: Annotated[int, typer.Option(help="Tokens per layer.")] = 5,
    adapter: AdapterOpt = "transformers",
    model: ModelOpt = None,
    option: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Top next tokens per layer under the logit lens (or a tuned lens)."""
    from autointerp_lens.lens import TunedLens, top_tokens

    lm = load_adapter(adapter, model, option, threads)
    tuned = TunedLens.load(lens) if lens else None
    table = Table(title=f"{'tuned' if tuned else 'logit'} lens top-{k} after {text[-40:]!r}")
    table.add_column("site")
    table.add_column("top tokens (probability)")
    for site, tops in top_tokens(lm, text, tuned, k=k).items():
        table.add_row(site, "  ".join(f"{t!r} {p:.2f}" for t, p in tops))
    console.print(table)
