"""Summary plots as standalone SVG files, written by hand (no plotting library).

``histogram`` and ``scatter`` return the SVG text; ``write`` puts it in a file. Each plot has axes
with "nice" ticks, labels and a title; scatters over many points draw a seeded random subset (the
title says how many) so a 100k-latent run still gives a file a browser opens at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

WIDTH, HEIGHT = 480, 320
MARGIN = {"left": 58, "right": 16, "top": 40, "bottom": 48}
COLOR = "#3b6ea5"
#: Most points one scatter draws; more are subsampled.
MAX_POINTS = 4000


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = mag * min((1, 2, 5, 10), key=lambda m: abs(math.log(m * mag / raw)))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.6g}"


def _range(values: np.ndarray, pad: float = 0.0) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    span = hi - lo
    return lo - pad * span, hi + pad * span


class _Canvas:
    """One plot: maps data to pixels and collects SVG elements."""

    def __init__(self, title: str, xlim: tuple[float, float], ylim: tuple[float, float],
                 *, logx: bool = False) -> None:  # fmt: skip
        self.title, self.logx = title, logx
        self.x0, self.x1 = MARGIN["left"], WIDTH - MARGIN["right"]
        self.y0, self.y1 = HEIGHT - MARGIN["bottom"], MARGIN["top"]
        self.xlim = tuple(math.log10(v) for v in xlim) if logx else xlim
        self.ylim = ylim
        self.parts: list[str] = []

    def px(self, x: np.ndarray | float) -> np.ndarray:
        x = np.log10(x) if self.logx else np.asarray(x, dtype=float)
        lo, hi = self.xlim
        return self.x0 + (x - lo) / (hi - lo) * (self.x1 - self.x0)

    def py(self, y: np.ndarray | float) -> np.ndarray:
        lo, hi = self.ylim
        return self.y0 - (np.asarray(y, dtype=float) - lo) / (hi - lo) * (self.y0 - self.y1)

    def axes(self, xlabel: str, ylabel: str) -> None:
        p = self.parts
        if self.logx:
            lo, hi = self.xlim
            xt = [10.0**k for k in range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)]
        else:
            xt = nice_ticks(*self.xlim)
        for t in xt:
            x = float(self.px(t))
            p.append(
                f'<line class="grid" x1="{x:.1f}" y1="{self.y1}" x2="{x:.1f}" y2="{self.y0}"/>'
            )
            p.append(f'<text x="{x:.1f}" y="{self.y0 + 16}" text-anchor="middle">{_fmt(t)}</text>')
        for t in nice_ticks(*self.ylim):
            y = float(self.py(t))
            p.append(
                f'<line class="grid" x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}"/>'
            )
            p.append(f'<text x="{self.x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        p.append(f'<path class="axis" d="M{self.x0},{self.y1} V{self.y0} H{self.x1}"/>')
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        p.append(
            f'<text x="{cx:.1f}" y="{HEIGHT - 10}" text-anchor="middle">{escape(xlabel)}</text>'
        )
        p.append(
            f'<text x="14" y="{cy:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {cy:.1f})">{escape(ylabel)}</text>'
        )

    def svg(self) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">'
            f"<title>{escape(self.title)}</title>"
            "<style>.grid{stroke:#e3e3e3}.axis{stroke:#333;fill:none}"
            "text{fill:#222}.t{font-size:13px;font-weight:bold}</style>"
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>'
            f'<text class="t" x="{WIDTH / 2}" y="22" text-anchor="middle">'
            f"{escape(self.title)}</text>"
        )
        return head + "".join(self.parts) + "</svg>\n"


def _empty(title: str, why: str) -> str:
    c = _Canvas(title, (0.0, 1.0), (0.0, 1.0))
    c.parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{escape(why)}</text>'
    )
    return c.svg()


def histogram(values: Sequence[float] | np.ndarray, *, title: str, xlabel: str,
              bins: int = 20) -> str:  # fmt: skip
    """A histogram of the finite ``values``, with their count and median in the title."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return _empty(title, "no values")
    lo, hi = _range(v)
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    full = f"{title} (n={len(v)}, median {np.median(v):.3g})"
    c = _Canvas(full, (lo, hi), (0.0, float(counts.max()) * 1.08))
    c.axes(xlabel, "latents")
    xs, ys, y0 = c.px(edges), c.py(counts), c.py(0.0)
    for i, n in enumerate(counts):
        if n:
            w = max(0.5, float(xs[i + 1] - xs[i]) - 1)
            c.parts.append(
                f'<rect x="{xs[i] + 0.5:.1f}" y="{ys[i]:.1f}" width="{w:.1f}" '
                f'height="{float(y0 - ys[i]):.1f}" fill="{COLOR}"><title>'
                f"{_fmt(edges[i])} to {_fmt(edges[i + 1])}: {n}</title></rect>"
            )
    return c.svg()


def scatter(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, title: str,
            xlabel: str, ylabel: str, logx: bool = False, seed: int = 0) -> str:  # fmt: skip
    """A scatter of the pairs where both are finite (and x > 0 on a log axis)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if logx:
        keep &= a > 0
    a, b = a[keep], b[keep]
    if not len(a):
        return _empty(title, "no pairs to plot")
    if len(a) > MAX_POINTS:
        pick = np.sort(np.random.default_rng(seed).choice(len(a), MAX_POINTS, replace=False))
        title = f"{title} ({MAX_POINTS} of {len(a)} shown)"
        a, b = a[pick], b[pick]
    if logx:
        lo, hi = float(a.min()), float(a.max())
        xlim = (10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi)))
        if xlim[0] == xlim[1]:
            xlim = (xlim[0] / 10, xlim[1] * 10)
    else:
        xlim = _range(a, 0.04)
    c = _Canvas(title, xlim, _range(b, 0.06), logx=logx)
    c.axes(xlabel, ylabel)
    # one path of zero-length round-capped segments: a dot per point at ~12 bytes each
    d = "".join(f"M{px:.1f} {py:.1f}h0" for px, py in zip(c.px(a), c.py(b), strict=True))
    c.parts.append(
        f'<path d="{d}" stroke="{COLOR}" stroke-opacity="0.6" stroke-width="7" '
        'stroke-linecap="round" fill="none"/>'
    )
    return c.svg()


def write(path: Path, svg: str) -> Path:
    """Write one plot; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")
    return path
