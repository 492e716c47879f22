"""Figures across models and layers for the lens, steering and probe results (the comparisons of
*Does Transformer Interpretability Transfer to RNNs?*), drawn from the JSON files those commands
write, with the report's helpers (:mod:`autointerp_report.figures`).

- ``lens``: bits per byte per layer, logit lens vs tuned lens, every model on one plot
  (``autointerp lens eval --out`` → ``lens-eval.json``).
- ``steering``: the behaviour metric's shift from the unsteered baseline per layer × multiplier, a
  heatmap per model, and the steering range per layer of every model on one plot
  (``autointerp steer sweep --out`` → ``sweep.json``).
- ``probes``: probe AUROC per layer on each train→test transfer, one series per model, and the
  anomaly-detection AUROC per layer (``autointerp probe transfer|anomaly --out``).

Each function takes ``(label, data)`` pairs, writes SVG files and a JSON summary into ``out`` and
returns the summary (``figures``: the files written). :func:`load_results` reads and checks files.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from autointerp.errors import ConfigError
from autointerp_report.figures import DASHES, LEGEND_CHARS, PALETTE, Frame, Series, heatmap, lines
from autointerp_report.plots import write

#: what each kind of file is and which command writes it (for error messages)
PRODUCERS = {
    "lens": "`autointerp lens eval --out DIR` (DIR/lens-eval.json)",
    "steering": "`autointerp steer sweep --out DIR` (DIR/sweep.json)",
    "probe-transfer": "`autointerp probe transfer --out FILE.json`",
    "probe-anomaly": "`autointerp probe anomaly --out FILE.json`",
}
SITE = re.compile(r"^(?P<kind>[a-z_]+)\.(?P<layer>\d+)$")


def kind_of(data: Any) -> str | None:
    """Which command wrote ``data`` (a key of :data:`PRODUCERS`), or None."""
    if not isinstance(data, dict):
        return None
    rows = data.get("rows")
    if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "bpb_logit" in rows[0]:
        return "lens"
    if isinstance(data.get("residual"), dict) and "cells" in data["residual"]:
        return "steering"
    if isinstance(data.get("results"), dict) and "layers" in data:
        return "probe-transfer"
    if isinstance(data.get("activations"), list) and "layers" in data:
        return "probe-anomaly"
    return None


def load_results(paths: Sequence[Path], kinds: Sequence[str]) -> list[tuple[Path, str, Any]]:
    """``(path, kind, data)`` per file; a missing, unreadable or wrong-kind file fails in one
    line naming the file, what it is and which command writes the expected kind."""
    out = []
    for path in paths:
        if path.is_dir():  # a command's output folder: its JSON file
            found = [path / n for n in ("lens-eval.json", "sweep.json") if (path / n).is_file()]
            path = found[0] if found else path
        if not path.is_file():
            raise ConfigError(f"{path}: no such file (expected {_expected(kinds)})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"{path}: not valid JSON ({exc}); expected {_expected(kinds)}"
            ) from None
        kind = kind_of(data)
        if kind not in kinds:
            what = f"a {kind} result" if kind else "not a result this command knows"
            raise ConfigError(f"{path}: {what}; expected {_expected(kinds)}")
        out.append((path, kind, data))
    return out


def _expected(kinds: Sequence[str]) -> str:
    return " or ".join(f"the JSON of {PRODUCERS[k]}" for k in kinds)


def labels_for(
    paths: Sequence[Path],
    given: Sequence[str] | None,
    data: Sequence[Mapping[str, Any]] = (),
) -> list[str]:
    """The series labels: ``given`` (one per file), else the models the files record (their
    ``subject``) when those tell the files apart, else the shortest path tails that do (a
    command's standard file name, e.g. ``sweep.json``, by its folder)."""
    if given:
        if len(given) != len(paths):
            raise ConfigError(
                f"--label: got {len(given)} labels for {len(paths)} files; give one per file"
            )
        return list(given)
    models = [str((d.get("subject") or {}).get("model") or "") for d in data]
    names = [Path(m.rstrip("/")).name for m in models]
    if len(names) == len(paths) and all(names) and len(set(names)) == len(names):
        return names
    tails = []
    for p in paths:
        parts = list(p.parts)
        if p.suffix == ".json":
            parts = parts[:-1] if p.stem in ("lens-eval", "sweep") else [*parts[:-1], p.stem]
        tails.append(parts or [p.stem])
    for k in range(1, max(len(t) for t in tails) + 1):
        names = ["/".join(t[-k:]) for t in tails]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def depth(site: str) -> int:
    """Blocks applied before a site: ``resid_pre.L`` -> L, any ``*.L`` after block L -> L + 1."""
    m = SITE.match(site)
    if not m:
        raise ConfigError(f"site {site!r}: expected KIND.LAYER (e.g. resid_pre.3)")
    layer = int(m["layer"])
    return layer if m["kind"] == "resid_pre" else layer + 1


def _finite(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else math.nan


def _top(values: list[float], floor: float = 1.0) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max([floor, *finite]) * 1.05


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") or "model"


def _ticks(xs: Sequence[int]) -> list[tuple[float, str]]:
    lo, hi = min(xs), max(xs)
    step = max(1, math.ceil((hi - lo + 1) / 12))
    return [(float(x), str(x)) for x in range(lo, hi + 1, step)]


def _save(out: Path, name: str, svg: str, figures: list[dict[str, str]], title: str) -> None:
    write(out / name, svg)
    figures.append({"file": str(out / name), "title": title})


def _dump(out: Path, name: str, summary: dict[str, Any]) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    summary["data"] = str(out / name)
    (out / name).write_text(json.dumps(summary, indent=2, allow_nan=False), encoding="utf-8")
    return summary


def _nulls(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


# -- lens ----------------------------------------------------------------------------------------


def paired_lines(
    groups: Sequence[tuple[str, Sequence[Series]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xticks: Sequence[tuple[float, str]],
    ylim: tuple[float, float],
) -> str:
    """Lines where a group (a model) keeps one colour and its members (the lenses) differ by dash:
    solid, then dashed; a dot per point with its exact value."""
    f = Frame(title, width=680, right=16 + 190)
    xs = [t for t, _ in xticks]
    px, py = f.axes((min(xs) - 0.5, max(xs) + 0.5), ylim, xlabel, ylabel, xticks)
    keys: list[tuple[str, str, str]] = []
    for g, (_, members) in enumerate(groups):
        color = PALETTE[g % len(PALETTE)]
        for k, s in enumerate(members):
            dash = DASHES[(k + g // len(PALETTE)) % len(DASHES)]
            y = np.asarray(s.y, dtype=float)
            X, Y, ok = px(np.asarray(s.x, dtype=float)), py(y), np.isfinite(y)
            d, pen = [], "M"
            for a, b, good in zip(X, Y, ok, strict=True):
                d.append(f"{pen}{a:.1f} {b:.1f}" if good else "")
                pen = "L" if good else "M"
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            f.parts.append(
                f'<path d="{"".join(d)}" stroke="{color}" stroke-width="2" fill="none"{dashed}>'
                f"<title>{escape(s.label)}</title></path>"
            )
            for a, b, good, tip in zip(X, Y, ok, s.tips, strict=True):
                if good:
                    f.parts.append(
                        f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}">'
                        f"<title>{escape(tip)}</title></circle>"
                    )
            keys.append((s.label, color, dash))
    x = f.x1 + 12
    for i, (label, color, dash) in enumerate(keys):
        y = f.y1 + 6 + 16 * i
        if y > f.height - 8:
            f.text(x, y, f"+{len(keys) - i} more", "start")
            break
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        f.parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{color}" '
            f'stroke-width="2.5"{dashed}/>'
        )
        f.parts.append(
            f'<text x="{x + 24}" y="{y:.1f}">{escape(label[:LEGEND_CHARS])}'
            f"<title>{escape(label)}</title></text>"
        )
    return f.svg()


def lens_figures(results: Sequence[tuple[str, dict[str, Any]]], out: Path) -> dict[str, Any]:
    """Bits per byte per layer (depth: blocks applied), logit and tuned lens of every model: a
    colour per model, the tuned lens solid and the logit lens dashed."""
    models, groups = [], []
    for label, data in results:
        rows = data["rows"]
        x = [depth(r["site"]) for r in rows]
        logit = [_finite(r.get("bpb_logit")) for r in rows]
        tuned = [_finite(r.get("bpb_tuned")) for r in rows]
        has_tuned = any(math.isfinite(v) for v in tuned)
        models.append(
            {
                "label": label,
                "bpb_model": _finite(data.get("bpb_model")),
                "sites": [r["site"] for r in rows],
                "depth": x,
                "bpb_logit": _nulls(logit),
                "bpb_tuned": _nulls(tuned) if has_tuned else None,
            }
        )
        members = []
        for name, ys in (("tuned lens", tuned), ("logit lens", logit)):
            if name == "tuned lens" and not has_tuned:
                continue
            tips = [
                f"{label}, {name}, {r['site']}: {v:.3f} bits/byte"
                for r, v in zip(rows, ys, strict=True)
            ]
            members.append(Series(f"{label}: {name}", x, ys, tips))
        groups.append((label, members))
    depths = [d for m in models for d in m["depth"]]
    top = _top([v for _, ms in groups for s in ms for v in s.y])
    title = "bits per byte per layer: tuned lens (solid) vs logit lens (dashed)"
    svg = paired_lines(
        groups, title=title, xlabel="layer (blocks applied)", ylabel="bits per byte",
        xticks=_ticks(depths), ylim=(0.0, top),
    )  # fmt: skip
    figures: list[dict[str, str]] = []
    _save(out, "lens-bpb.svg", svg, figures, title)
    for m in models:
        m["bpb_model"] = m["bpb_model"] if math.isfinite(m["bpb_model"]) else None
    summary = {"analysis": "lens", "models": models, "figures": figures}
    return _dump(out, "lens.json", summary)


# -- steering ------------------------------------------------------------------------------------


def steering_grid(block: dict[str, Any]) -> tuple[list[str], list[float], np.ndarray, float]:
    """(rows, multipliers, metric grid with NaN gaps, baseline) of one sweep record."""
    rows: list[str] = []
    mults: list[float] = []
    for c in block["cells"]:
        if c["row"] not in rows:
            rows.append(c["row"])
        if float(c["multiplier"]) not in mults:
            mults.append(float(c["multiplier"]))
    mults.sort()
    grid = np.full((len(rows), len(mults)), np.nan)
    for c in block["cells"]:
        grid[rows.index(c["row"]), mults.index(float(c["multiplier"]))] = _finite(c["metric"])
    base = block.get("baseline")
    return rows, mults, grid, _finite(base) if base is not None else math.nan


def steering_figures(
    results: Sequence[tuple[str, dict[str, Any]]],
    out: Path,
    *,
    which: str = "residual",
    absolute: bool = False,
) -> dict[str, Any]:
    """A heatmap per model (layer × multiplier; the shift from the unsteered baseline unless
    ``absolute``) and, across models, the steering range per layer (metric at the largest
    multiplier minus at the smallest)."""
    metric = "judge score 0-10" if which == "open_ended" else "p(matching) / (p(A)+p(B))"
    scale = 10.0 if which == "open_ended" else 1.0
    models, series, figures = [], [], []
    for label, data in results:
        if which not in data:
            have = ", ".join(k for k in data if isinstance(data[k], dict) and "cells" in data[k])
            raise ConfigError(
                f"{label}: the sweep has no {which!r} result (it has {have}); choose --which "
                "from those, or rerun `steer sweep` with --state / --judge"
            )
        rows, mults, grid, base = steering_grid(data[which])
        shown = grid if absolute or not math.isfinite(base) else grid - base
        what = metric if absolute else f"{metric} − baseline {base:.3f}"
        title = f"{label}: {which} steering, {what}"
        cols = [f"×{m:g}" for m in mults]
        # colours span the largest shift, so small effects stay visible; cells print the value
        span = max([scale * 0.01, *np.abs(shown[np.isfinite(shown)]).tolist()])
        lo, hi = (0.0, scale) if absolute else (-span, span)
        title += "" if absolute else f" (colours ±{span:.2g})"
        svg = heatmap(rows, cols, shown, title=title, lo=lo, hi=hi, xlabel="multiplier")
        _save(out, f"steering-{_slug(label)}.svg", svg, figures, title)
        x = [depth(r) for r in rows]
        spread = (grid[:, -1] - grid[:, 0]).tolist() if len(mults) > 1 else [math.nan] * len(rows)
        tips = [
            f"{label}, {r}: {v:.3f} (×{mults[-1]:g} vs ×{mults[0]:g})"
            for r, v in zip(rows, spread, strict=True)
        ]
        series.append(Series(label, x, spread, tips))
        models.append(
            {
                "label": label,
                "dataset": data.get("dataset"),
                "rows": rows,
                "multipliers": mults,
                "baseline": base if math.isfinite(base) else None,
                "metric": [_nulls(r) for r in grid.tolist()],
                "range": _nulls(spread),
            }
        )
    title = f"{which} steering range per layer: metric at the largest − smallest multiplier"
    finite = [abs(v) for s in series for v in s.y if math.isfinite(v)]
    top = max([scale * 0.1, *finite]) * 1.05
    svg = lines(
        series, title=title, xlabel="layer (blocks applied)", ylabel=f"Δ {metric}",
        xticks=_ticks([x for s in series for x in s.x]), ylim=(-top, top),
    )  # fmt: skip
    _save(out, "steering-range.svg", svg, figures, title)
    summary = {
        "analysis": "steering",
        "which": which,
        "absolute": absolute,
        "models": models,
        "figures": figures,
    }
    return _dump(out, "steering.json", summary)


# -- probes --------------------------------------------------------------------------------------


def probe_figures(
    results: Sequence[tuple[str, str, dict[str, Any]]],
    out: Path,
    *,
    method: str | None = None,
    against: str = "alice",
) -> dict[str, Any]:
    """``results``: ``(label, kind, data)`` with kind ``probe-transfer`` or ``probe-anomaly``.
    Per train→test pair, one figure of the ``method`` probe's AUROC per layer (vs the truth,
    ``alice``, or the quirky persona's labels, ``bob``), a series per model; and one figure of
    anomaly AUROC per layer."""
    key = f"vs_{against}"
    transfer = [(label, d) for label, kind, d in results if kind == "probe-transfer"]
    anomaly = [(label, d) for label, kind, d in results if kind == "probe-anomaly"]
    if transfer and method is None:
        first = next(iter(transfer[0][1]["results"].values()), {})
        method = next(iter(first), None)
    pairs: dict[str, list[Series]] = {}
    models: list[dict[str, Any]] = []
    for label, data in transfer:
        layers = list(data["layers"])
        entry: dict[str, Any] = {"label": label, "kind": "transfer", "layers": layers, "auroc": {}}
        for pair, by_method in data["results"].items():
            if method not in by_method:
                raise ConfigError(
                    f"{label}: no {method!r} probe in the transfer results (it has "
                    f"{', '.join(by_method)}); choose --method from those"
                )
            values = by_method[method][key]
            ys = [math.nan] * len(layers) if values is None else [_finite(v) for v in values]
            entry["auroc"][pair] = _nulls(ys)
            tips = [
                f"{label}, {pair}, layer {x}: AUROC {y:.3f}"
                for x, y in zip(layers, ys, strict=True)
            ]
            pairs.setdefault(pair, []).append(Series(label, layers, ys, tips))
        models.append(entry)
    figures: list[dict[str, str]] = []
    truth = "truth (alice labels)" if against == "alice" else "the quirky persona's labels"
    for i, (pair, series) in enumerate(pairs.items()):
        title = f"{method} probe AUROC vs {truth}, trained → tested: {pair}"
        xs = [int(x) for s in series for x in s.x]
        svg = lines(series, title=title, xlabel="layer", ylabel="AUROC", xticks=_ticks(xs))
        _save(out, f"probe-transfer-{i + 1}.svg", svg, figures, title)
    if anomaly:
        series = []
        for label, data in anomaly:
            layers = list(data["layers"])
            ys = [_finite(v) for v in data["activations"]]
            tips = [f"{label}, layer {x}: AUROC {y:.3f}" for x, y in zip(layers, ys, strict=True)]
            series.append(Series(label, layers, ys, tips))
            models.append(
                {
                    "label": label,
                    "kind": "anomaly",
                    "layers": layers,
                    "auroc": _nulls(ys),
                    "probe_scores": _finite(data.get("probe_scores")),
                    "trusted": data.get("trusted"),
                    "test": data.get("test"),
                }
            )
        first = anomaly[0][1]
        title = (
            f"anomaly AUROC per layer (Mahalanobis; {first.get('anomalous', 'bob')} in "
            f"{first.get('test', '?')}, trusted {first.get('trusted', '?')})"
        )
        xs = [int(x) for s in series for x in s.x]
        svg = lines(series, title=title, xlabel="layer", ylabel="AUROC", xticks=_ticks(xs))
        _save(out, "probe-anomaly.svg", svg, figures, title)
    for m in models:
        if m["kind"] == "anomaly" and not math.isfinite(m["probe_scores"]):
            m["probe_scores"] = None
    summary = {
        "analysis": "probes",
        "method": method,
        "against": against,
        "models": models,
        "figures": figures,
    }
    return _dump(out, "probes.json", summary)


# -- tables --------------------------------------------------------------------------------------


def render(summary: dict[str, Any], console: Any) -> None:
    """Print a summary as rich tables and where its figures are."""
    from rich import box
    from rich.table import Table

    def f3(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    name = summary["analysis"]
    if name == "lens":
        t = Table(box=box.SIMPLE_HEAD, title="bits per byte per layer (logit / tuned lens)")
        t.add_column("model")
        t.add_column("model bpb", justify="right")
        depths = sorted({d for m in summary["models"] for d in m["depth"]})
        for d in depths:
            t.add_column(f"L{d}", justify="right")
        for m in summary["models"]:
            by = {
                d: (lo, tu)
                for d, lo, tu in zip(
                    m["depth"],
                    m["bpb_logit"],
                    m["bpb_tuned"] or [None] * len(m["depth"]),
                    strict=True,
                )
            }
            cells = [f"{f3(by[d][0])} / {f3(by[d][1])}" if d in by else "" for d in depths]
            t.add_row(m["label"], f3(m["bpb_model"]), *cells)
        console.print(t)
    elif name == "steering":
        for m in summary["models"]:
            t = Table(
                box=box.SIMPLE_HEAD,
                title=f"{m['label']}: {summary['which']} steering (baseline {f3(m['baseline'])})",
            )
            t.add_column("layer \\ multiplier")
            for x in m["multipliers"]:
                t.add_column(f"{x:g}", justify="right")
            for r, vals in zip(m["rows"], m["metric"], strict=True):
                t.add_row(r, *(f3(v) for v in vals))
            console.print(t)
    elif name == "probes":
        for m in summary["models"]:
            if m["kind"] == "transfer":
                t = Table(
                    box=box.SIMPLE_HEAD,
                    title=f"{m['label']}: {summary['method']} AUROC vs {summary['against']}",
                )
                t.add_column("train→test")
                for x in m["layers"]:
                    t.add_column(f"L{x}", justify="right")
                for pair, vals in m["auroc"].items():
                    t.add_row(pair, *(f3(v) for v in vals))
            else:
                t = Table(box=box.SIMPLE_HEAD, title=f"{m['label']}: anomaly AUROC per layer")
                t.add_column("features")
                for x in m["layers"]:
                    t.add_column(f"L{x}", justify="right")
                t.add_row("activations", *(f3(v) for v in m["auroc"]))
                t.add_row(
                    "probe scores (all layers)",
                    f3(m["probe_scores"]),
                    *[""] * (len(m["layers"]) - 1),
                )
            console.print(t)
    for fig in summary["figures"]:
        console.print(f"figure: {fig['file']}", highlight=False, soft_wrap=True)
    console.print(f"data: {summary['data']}", highlight=False, soft_wrap=True)
