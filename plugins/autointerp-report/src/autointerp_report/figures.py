"""The analyses' figures as standalone SVG, in the report's look (:mod:`autointerp_report.plots`:
same fonts, grid, axis, title and accent colour), drawn without a plotting library so they open
offline anywhere and stay small.

``lines`` (accuracy per activation quantile), ``step_histograms`` (score distributions of several
runs overlaid), ``heatmap`` (scorer correlations, explanation similarity) and ``hbars`` (cost per
component) return the SVG text; :func:`autointerp_report.plots.write` writes it. Every mark has a
``<title>`` tooltip with its exact value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from autointerp_report.plots import COLOR, _fmt, nice_ticks

#: series colours (the report's blue first), then line dashes once colours run out
PALETTE = ("#3b6ea5", "#e07b39", "#4a9a5b", "#c0504d", "#8064a2", "#3ba3b5", "#9b8b3c", "#7f7f7f")
DASHES = ("", "6 3", "2 3", "9 3 2 3")
LEGEND_CHARS = 28


def style(i: int) -> tuple[str, str]:
    """(colour, dash) of the ``i``-th series."""
    return PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Frame:
    """One figure: a plot area inside margins, a title, and the SVG elements drawn so far."""

    title: str
    width: int = 480
    height: int = 320
    left: int = 58
    right: int = 16
    top: int = 40
    bottom: int = 48
    parts: list[str] = field(default_factory=list)

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:  # bottom of the plot area
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top

    def text(self, x: float, y: float, s: str, anchor: str = "middle", extra: str = "") -> None:
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(s)}</text>'
        )

    def axes(
        self,
        xlim: tuple[float, float],
        ylim: tuple[float, float],
        xlabel: str,
        ylabel: str,
        xticks: Sequence[tuple[float, str]] | None = None,
        *,
        yticks: bool = True,
    ) -> tuple[Any, Any]:
        """Grid, ticks and labels (``yticks=False``: a y axis of categories, drawn by the
        caller); returns the data-to-pixel maps (x, y)."""
        (xa, xb), (ya, yb) = xlim, ylim

        def px(x: float | np.ndarray) -> np.ndarray:
            return self.x0 + (np.asarray(x, dtype=float) - xa) / (xb - xa) * (self.x1 - self.x0)

        def py(y: float | np.ndarray) -> np.ndarray:
            return self.y0 - (np.asarray(y, dtype=float) - ya) / (yb - ya) * (self.y0 - self.y1)

        ticks = xticks if xticks is not None else [(t, _fmt(t)) for t in nice_ticks(xa, xb)]
        for t, label in ticks:
            x = float(px(t))
            self.parts.append(
                f'<line class="grid" x1="{x:.1f}" y1="{self.y1}" x2="{x:.1f}" y2="{self.y0}"/>'
            )
            self.text(x, self.y0 + 16, label)
        for t in nice_ticks(ya, yb) if yticks else []:
            y = float(py(t))
            self.parts.append(
                f'<line class="grid" x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}"/>'
            )
            self.text(self.x0 - 6, y + 4, _fmt(t), "end")
        self.parts.append(f'<path class="axis" d="M{self.x0},{self.y1} V{self.y0} H{self.x1}"/>')
        cy = (self.y0 + self.y1) / 2
        self.text((self.x0 + self.x1) / 2, self.height - 10, xlabel)
        self.text(14, cy, ylabel, extra=f' transform="rotate(-90 14 {cy:.1f})"')
        return px, py

    def legend(self, labels: Sequence[str]) -> None:
        """Series keys right of the plot area (as many as fit)."""
        x = self.x1 + 12
        for i, label in enumerate(labels):
            y = self.y1 + 6 + 16 * i
            if y > self.height - 8:
                self.text(x, y, f"+{len(labels) - i} more", "start")
                break
            color, dash = style(i)
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(
                f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{color}" '
                f'stroke-width="2.5"{dashed}/>'
            )
            self.parts.append(
                f'<text x="{x + 24}" y="{y:.1f}">{escape(_cut(label, LEGEND_CHARS))}'
                f"<title>{escape(label)}</title></text>"
            )

    def svg(self) -> str:
        w, h = self.width, self.height
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">'
            f"<title>{escape(self.title)}</title>"
            "<style>.grid{stroke:#e3e3e3}.axis{stroke:#333;fill:none}"
            "text{fill:#222}.t{font-size:13px;font-weight:bold}</style>"
            f'<rect width="{w}" height="{h}" fill="#fff"/>'
            f'<text class="t" x="{w / 2}" y="22" text-anchor="middle">{escape(self.title)}</text>'
        )
        return head + "".join(self.parts) + "</svg>\n"


def empty(title: str, why: str) -> str:
    """A figure that says why there is nothing to draw."""
    f = Frame(title)
    f.text(f.width / 2, f.height / 2, why)
    return f.svg()


@dataclass(frozen=True)
class Series:
    """One line: its label, points (NaN y: a gap) and a tooltip per point."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    tips: Sequence[str] = ()


def lines(
    series: Sequence[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xticks: Sequence[tuple[float, str]],
    ylim: tuple[float, float] = (0.0, 1.0),
) -> str:
    """Lines with a dot per point, a legend on the right; x spans the ticks."""
    if not series:
        return empty(title, "nothing to plot")
    f = Frame(title, width=680, right=16 + 190)
    xs = [t for t, _ in xticks]
    pad = 0.5
    px, py = f.axes((min(xs) - pad, max(xs) + pad), ylim, xlabel, ylabel, xticks)
    for i, s in enumerate(series):
        color, dash = style(i)
        x, y = np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float)
        X, Y = px(x), py(y)
        d, pen = [], "M"
        for a, b, ok in zip(X, Y, np.isfinite(y), strict=True):
            if ok:
                d.append(f"{pen}{a:.1f} {b:.1f}")
                pen = "L"
            else:
                pen = "M"
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        f.parts.append(
            f'<path d="{"".join(d)}" stroke="{color}" stroke-width="2" fill="none"{dashed}/>'
        )
        tips = list(s.tips) or [f"{s.label}: {_fmt(v)}" for v in y]
        for a, b, ok, tip in zip(X, Y, np.isfinite(y), tips, strict=True):
            if ok:
                f.parts.append(
                    f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{color}">'
                    f"<title>{escape(tip)}</title></circle>"
                )
    f.legend([s.label for s in series])
    return f.svg()


def step_histograms(
    series: Sequence[tuple[str, np.ndarray]], *, title: str, xlabel: str, bins: int = 20
) -> str:
    """Histograms of several samples over shared bins, as overlaid outlines, each normalised to
    the fraction of its values (samples of different sizes compare); n per sample in the legend."""
    kept = [(label, v[np.isfinite(v)]) for label, v in series]
    kept = [(label, v) for label, v in kept if len(v)]
    if not kept:
        return empty(title, "no values")
    allv = np.concatenate([v for _, v in kept])
    lo, hi = float(allv.min()), float(allv.max())
    if lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0  # a score in [0, 1]: the whole range, so runs line up
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    fracs = [np.histogram(v, bins=edges)[0] / len(v) for _, v in kept]
    top = max(float(fr.max()) for fr in fracs) * 1.08
    f = Frame(title, width=680, right=16 + 190)
    px, py = f.axes((lo, hi), (0.0, top), xlabel, "fraction of latents")
    X = px(edges)
    for i, ((label, v), fr) in enumerate(zip(kept, fracs, strict=True)):
        color, dash = style(i)
        Y = py(fr)
        d = [f"M{X[0]:.1f} {float(py(0.0)):.1f}"]
        for k in range(bins):
            d.append(f"V{Y[k]:.1f}H{X[k + 1]:.1f}")
        d.append(f"V{float(py(0.0)):.1f}")
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        f.parts.append(
            f'<path d="{"".join(d)}" stroke="{color}" stroke-width="2" fill="{color}" '
            f'fill-opacity="0.08"{dashed}><title>{escape(label)}: n={len(v)}, median '
            f"{_fmt(float(np.median(v)))}</title></path>"
        )
    f.legend([f"{label} (n={len(v)})" for label, v in kept])
    return f.svg()


def _cell_color(v: float, lo: float, hi: float) -> str:
    """The report's agreement colours: blue for positive, red for negative, by magnitude."""
    if not math.isfinite(v):
        return "#f4f4f4"
    scale = max(abs(lo), abs(hi)) or 1.0
    a = min(1.0, abs(v) / scale) * 0.85
    return f"rgba(59,110,165,{a:.2f})" if v >= 0 else f"rgba(200,60,60,{a:.2f})"


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    matrix: np.ndarray,
    *,
    title: str,
    lo: float = -1.0,
    hi: float = 1.0,
    counts: np.ndarray | None = None,
    xlabel: str = "",
) -> str:
    """A labelled matrix of values in [lo, hi], each cell showing its value (``counts``: the n
    behind each cell, in its tooltip)."""
    m = np.asarray(matrix, dtype=float)
    if m.size == 0:
        return empty(title, "nothing to plot")
    cell = max(28, min(64, 360 // max(len(rows), len(cols))))
    label_w = 8 + 6 * min(LEGEND_CHARS, max(len(r) for r in rows))
    f = Frame(title, left=label_w, right=20, top=40 + 90, bottom=24 + (14 if xlabel else 0))
    f.width = int(f.left + cell * len(cols) + f.right)
    f.width = max(f.width, 7 * len(title) + 40)
    f.height = int(f.top + cell * len(rows) + f.bottom)
    for j, c in enumerate(cols):
        x = f.left + cell * (j + 0.5)
        y = f.top - 8
        f.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="start" '
            f'transform="rotate(-45 {x:.1f} {y:.1f})">{escape(_cut(c, LEGEND_CHARS))}'
            f"<title>{escape(c)}</title></text>"
        )
    for i, r in enumerate(rows):
        y = f.top + cell * i
        f.parts.append(
            f'<text x="{f.left - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(_cut(r, LEGEND_CHARS))}<title>{escape(r)}</title></text>"
        )
        for j, c in enumerate(cols):
            v = float(m[i, j])
            x = f.left + cell * j
            tip = f"{r} / {c}: {'n/a' if not math.isfinite(v) else f'{v:.3f}'}"
            if counts is not None:
                tip += f" (n={int(counts[i, j])})"
            f.parts.append(
                f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{cell}" height="{cell}" '
                f'fill="{_cell_color(v, lo, hi)}" stroke="#fff"><title>{escape(tip)}</title></rect>'
            )
            shown = "–" if not math.isfinite(v) else f"{v:.2f}"
            strong = math.isfinite(v) and abs(v) / (max(abs(lo), abs(hi)) or 1) > 0.6
            fill = ' style="fill:#fff"' if strong else ""
            f.text(x + cell / 2, y + cell / 2 + 4, shown, extra=fill)
    if xlabel:
        f.text(f.left + cell * len(cols) / 2, f.height - 8, xlabel)
    return f.svg()


def hbars(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    unit: str = "",
) -> str:
    """Horizontal bars per category, one bar per series (grouped), a legend on the right."""
    values = np.array([list(v) for _, v in series], dtype=float).reshape(len(series), -1)
    if not categories or not np.isfinite(values).any():
        return empty(title, "nothing to plot")
    k = len(series)
    bar = 12 if k > 1 else 16
    group = bar * k + 10
    label_w = 8 + 6 * min(LEGEND_CHARS, max(len(c) for c in categories))
    right = 16 + (190 if k > 1 else 0)
    f = Frame(title, width=max(560, label_w + 380 + right), left=label_w, right=right)
    f.height = int(f.top + group * len(categories) + f.bottom)
    top = float(np.nanmax(values)) * 1.08 or 1.0
    px, _ = f.axes((0.0, top), (0.0, 1.0), xlabel, "", yticks=False)
    for c_i, cat in enumerate(categories):
        y = f.top + group * c_i + 5
        f.parts.append(
            f'<text x="{f.left - 6}" y="{y + bar * k / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(_cut(cat, LEGEND_CHARS))}<title>{escape(cat)}</title></text>"
        )
        for s_i, (label, _) in enumerate(series):
            v = float(values[s_i, c_i])
            if not math.isfinite(v):
                continue
            color = style(s_i)[0] if k > 1 else COLOR
            w = max(0.0, float(px(v)) - f.x0)
            f.parts.append(
                f'<rect x="{f.x0}" y="{y + bar * s_i:.1f}" width="{w:.1f}" height="{bar - 1}" '
                f'fill="{color}"><title>{escape(label)} / {escape(cat)}: {_fmt(v)}{unit}'
                "</title></rect>"
            )
    if k > 1:
        f.legend([label for label, _ in series])
    return f.svg()
