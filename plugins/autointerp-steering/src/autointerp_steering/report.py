"""Sweep tables: CSV, an SVG heatmap (no dependencies), a PNG when matplotlib is installed."""

from __future__ import annotations

import csv
import math
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autointerp_steering.caa import SweepResult


def write_csv(result: SweepResult, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", *[f"{m:g}" for m in result.multipliers]])
        for i, row in enumerate(result.rows):
            writer.writerow([row, *[f"{float(v):.6f}" for v in result.grid[i]]])
    return path


def value_range(result: SweepResult) -> tuple[float, float]:
    """The metric's natural range: 0-1 for A/B probabilities, ``meta["range"]`` otherwise."""
    lo, hi = result.meta.get("range", (0.0, 1.0))
    return float(lo), float(hi)


def _colour(value: float, lo: float = 0.0, hi: float = 1.0) -> str:
    # diverging blue (lo) - white (middle) - red (hi); grey for a cell without a value
    if math.isnan(value):
        return "rgb(220,220,220)"
    v = min(1.0, max(0.0, (value - lo) / (hi - lo)))
    if v < 0.5:
        t = v / 0.5
        r, g, b = int(59 + t * 196), int(76 + t * 179), int(192 + t * 63)
    else:
        t = (v - 0.5) / 0.5
        r, g, b = 255 - int(t * 75), 255 - int(t * 251), 255 - int(t * 217)
    return f"rgb({r},{g},{b})"


def write_svg(result: SweepResult, path: Path, title: str = "") -> Path:
    lo, hi = value_range(result)
    cw, ch, left, top = 56, 26, 140, 50
    w = left + cw * len(result.multipliers) + 20
    h = top + ch * len(result.rows) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="18" font-size="13">{escape(title or "p(matching) / (p(A)+p(B))")}'
        "</text>",
    ]
    for j, m in enumerate(result.multipliers):
        out.append(
            f'<text x="{left + j * cw + cw / 2}" y="{top - 8}" text-anchor="middle">{m:g}</text>'
        )
    for i, row in enumerate(result.rows):
        y = top + i * ch
        out.append(
            f'<text x="{left - 6}" y="{y + ch / 2 + 4}" text-anchor="end">{escape(row)}</text>'
        )
        for j in range(len(result.multipliers)):
            v = float(result.grid[i, j])
            label = "–" if math.isnan(v) else f"{v:.2f}"
            x = left + j * cw
            out.append(
                f'<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="{_colour(v, lo, hi)}"/>'
                f'<text x="{x + cw / 2}" y="{y + ch / 2 + 4}" text-anchor="middle">'
                f"{label}</text>"
            )
    out.append(
        f'<text x="{left}" y="{h - 12}">multiplier → (baseline {result.baseline:.3f})</text>'
    )
    out.append("</svg>")
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def write_png(result: SweepResult, path: Path, title: str = "") -> Path | None:
    """A matplotlib heatmap, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(result.multipliers), 1 + 0.4 * len(result.rows)))
    lo, hi = value_range(result)
    im = ax.imshow(result.grid.numpy(), cmap="coolwarm", vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(len(result.multipliers)), [f"{m:g}" for m in result.multipliers])
    ax.set_yticks(range(len(result.rows)), result.rows)
    ax.set_xlabel("multiplier")
    ax.set_title(title or "p(matching) / (p(A)+p(B))")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_all(
    result: SweepResult, out_dir: Path, stem: str = "sweep", title: str = ""
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        write_csv(result, out_dir / f"{stem}.csv"),
        write_svg(result, out_dir / f"{stem}.svg", title),
    ]
    png = write_png(result, out_dir / f"{stem}.png", title)
    if png is not None:
        paths.append(png)
    return paths
