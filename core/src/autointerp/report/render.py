"""The HTML report of a run: ``RUN/report/index.html``, static and offline, for any run size.

Layout of the report folder::

    index.html              the page (inline CSS and JS, run summary, plots, agreement matrix)
    plots/*.svg             summary plots, also shown in the page
    data/rows-0001.js       latent-table rows, a few thousand per file
    data/latents-0001.js    latent cards (examples, explanation, scores, predictions), loaded
                            only when a card in that file is opened

Data files are JSONP-style scripts (``window.AUTOINTERP.push(...)``) because a page opened from
``file://`` may not ``fetch()`` JSON. The generator streams: one latent at a time is read from the
store and written out, so memory holds only the table's numbers, never the cards.

Activations in cards are integers in [-1000, 1000], relative to the latent's largest shown
activation ``am`` (the page turns them back into values for tooltips). Token strings are stored
once per card file (``strings``) and referenced by position.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from autointerp.report import plots
from autointerp.report.runs import open_store, resolve_run
from autointerp.report.stats import agreement, spearman
from autointerp.types import Example, LatentRef, Score

#: Example kinds that are non-activating (the rest, but "top", are held-out test examples).
NEGATIVE_KINDS = frozenset({"random", "similar", "hard"})


@dataclass(frozen=True)
class ReportSettings:
    """How the report is split and how much of each latent it shows."""

    #: latent-table rows per data file
    rows_per_file: int = 5000
    #: latent cards per data file, and a size cap (bytes) that closes a file earlier
    cards_per_file: int = 500
    bytes_per_file: int = 4_000_000
    #: examples shown per group (activating, held-out, non-activating) in a card
    examples_per_group: int = 20
    #: explanation characters in the table (the card shows all)
    explanation_chars: int = 240


def _js(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/")


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(f"{v:.5g}")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "scorer"


class _ChunkWriter:
    """Writes ``data/<stem>-NNNN.js`` files of one kind, closing a file at a count or size."""

    def __init__(self, folder: Path, stem: str, per_file: int, max_bytes: int) -> None:
        self.folder, self.stem, self.per_file, self.max_bytes = folder, stem, per_file, max_bytes
        self.items: list[str] = []
        self.size = 0
        self.n_files = 0
        self.strings: dict[str, int] | None = None

    @property
    def current(self) -> int:
        """Number (from 1) of the file the next item goes to."""
        return self.n_files + 1

    def add(self, item: str) -> None:
        self.items.append(item)
        self.size += len(item)
        if len(self.items) >= self.per_file or self.size >= self.max_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.items:
            return
        self.n_files += 1
        extra = ""
        if self.strings is not None:
            extra = "," + _js(list(self.strings))
            self.strings = {}
        path = self.folder / f"{self.stem}-{self.n_files:04d}.js"
        with path.open("w", encoding="utf-8") as f:
            f.write(f'window.AUTOINTERP.push("{self.stem}",{self.n_files},[')
            f.write(",".join(self.items))
            f.write(f"]{extra});\n")
        self.items, self.size = [], 0


def _group(kind: str) -> str:
    if kind == "top":
        return "top"
    return "neg" if kind in NEGATIVE_KINDS or kind.startswith("negative") else "test"


def _card(
    latent: LatentRef,
    source_id: int,
    stats: Any,
    explanations: list[Any],
    scores: list[Score],
    labels: dict[tuple[str, str], int],
    examples: list[Example],
    failures: list[tuple[str, str]],
    strings: dict[str, int],
    settings: ReportSettings,
) -> dict[str, Any]:
    """One latent's card: everything its page section shows."""
    # predictions index [*held-out, *negatives]: the stored examples after the train ("top") ones
    scored = [e for e in examples if e.kind != "top"]
    preds: dict[int, list[list[Any]]] = {}
    sims: dict[int, list[tuple[int, list[float]]]] = {}
    for s in scores:
        col = labels[(s.explainer, s.scorer)]
        for p in s.predictions:
            if 0 <= p.example_id < len(scored):
                preds.setdefault(p.example_id, []).append(
                    [col, _num(p.predicted), _num(p.actual), _num(p.probability)]
                )
        # a simulating scorer's per-token guesses (0-10 scale) over the window it was shown
        for key, guess in (s.meta.get("token_predictions") or {}).items():
            if str(key).isdigit() and int(key) < len(scored) and isinstance(guess, list):
                sims.setdefault(int(key), []).append((col, guess))
    groups: dict[str, list[dict[str, Any]]] = {"top": [], "test": [], "neg": []}
    totals = {"top": 0, "test": 0, "neg": 0}
    shown: list[tuple[str, Example, int]] = []
    pos = -1
    for ex in examples:
        if ex.kind != "top":
            pos += 1
        g = _group(ex.kind)
        totals[g] += 1
        if totals[g] <= settings.examples_per_group:
            shown.append((g, ex, pos if ex.kind != "top" else -1))
    # all shown activations scaled in one array op, then cut back into examples
    flat = np.fromiter(
        (a for _, ex, _ in shown for a in ex.activations), dtype=float,
        count=sum(len(ex.activations) for _, ex, _ in shown),
    )  # fmt: skip
    peak = max(float(flat.max(initial=0.0)), stats.max_activation if stats else 0.0)
    scale = 1000.0 / peak if peak > 0 else 0.0
    scaled = np.rint(flat * scale).clip(-1000, 1000).astype(int).tolist()
    start = 0
    for t in dict.fromkeys(t for _, ex, _ in shown for t in ex.str_tokens):  # first-seen order
        if t not in strings:
            strings[t] = len(strings)
    for g, ex, sid in shown:
        n = len(ex.activations)
        toks = list(map(strings.__getitem__, ex.str_tokens))
        item: dict[str, Any] = {"k": ex.kind, "t": toks, "a": scaled[start : start + n]}
        start += n
        if sid >= 0 and sid in preds:
            item["p"] = preds[sid]
        if sid >= 0 and sid in sims:
            item["sim"] = [_simulated(col, guess, ex, strings) for col, guess in sims[sid]]
        groups[g].append(item)
    card: dict[str, Any] = {
        "s": source_id,
        "i": latent.index,
        "am": _num(peak),
        "e": [[e.explainer, e.text, _promoted(e.meta)] for e in explanations],
        "sc": [
            [
                labels[(s.explainer, s.scorer)],
                _num(s.value),
                s.n_failures,
                {k: _num(v) for k, v in s.metrics.items() if isinstance(v, int | float)},
            ]
            for s in scores
        ],
        "fl": [list(f) for f in failures],
        "ex": groups,
        "n": totals,
    }
    if stats is not None:
        card["f"], card["m"] = _num(stats.frequency), _num(stats.max_activation)
        card["x"] = {k: _num(v) for k, v in stats.extra.items() if isinstance(v, int | float)}
    return card


def _simulated(col: int, guess: list[float], ex: Example, strings: dict[str, int]) -> list[Any]:
    """[scorer, token ids, guesses as 0..1000]: the tokens are the window the scorer saw
    (``Example.window`` of the guesses' length, as the simulation scorer cuts it)."""
    toks, _ = ex.window(len(guess))
    for t in toks:
        if t not in strings:
            strings[t] = len(strings)
    q = np.rint(np.asarray(guess[: len(toks)], dtype=float) * 100).clip(0, 1000).astype(int)
    return [col, list(map(strings.__getitem__, toks)), q.tolist()]


def _promoted(meta: dict[str, Any]) -> list[Any] | None:
    """Promoted tokens an output-side explanation was given: strings or [token, logit]."""
    raw = meta.get("promoted") or meta.get("promoted_tokens")
    if not isinstance(raw, list | tuple) or not raw:
        return None
    out: list[Any] = []
    for p in raw:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, list | tuple) and p and isinstance(p[0], str):
            value = p[1] if len(p) > 1 and isinstance(p[1], int | float) else None
            out.append([p[0], _num(value)])
    return out or None


def _clear(folder: Path, pattern: str) -> None:
    """Remove files a previous report wrote (only ours, by pattern)."""
    if folder.is_dir():
        for p in folder.glob(pattern):
            p.unlink()


def write_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    run_id: int | None = None,
    *,
    settings: ReportSettings | None = None,
    progress: bool = False,
) -> Path:
    """Write the report of a run (the latest in its store by default); returns index.html."""
    run_dir = Path(run_dir)
    settings = settings or ReportSettings()
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    data, plot_dir = out / "data", out / "plots"
    for folder in (data, plot_dir):
        folder.mkdir(parents=True, exist_ok=True)
    _clear(data, "rows-*.js")
    _clear(data, "latents-*.js")
    _clear(plot_dir, "*.svg")

    with open_store(run_dir) as store:
        run = store.get_run(resolve_run(store, run_dir, run_id))
        assert run is not None
        stats = store.latents(run.id)
        keys = store.score_keys(run.id)
        failures: dict[LatentRef, list[tuple[str, str]]] = {}
        for (ref, component), reason in store.failures(run.id).items():
            failures.setdefault(ref, []).append((component, reason))
        refs = sorted({s.latent for s in stats} | set(failures))
        by_ref = {s.latent: s for s in stats}
        explainers = store.explainer_names(run.id)
        scoring = sorted({e for e, _ in keys})
        names = [s if len(scoring) <= 1 else f"{s} ({e})" for e, s in keys]
        labels = {k: i for i, k in enumerate(keys)}
        sources = sorted({r.source for r in refs})
        source_ids = {s: i for i, s in enumerate(sources)}
        usage = store.usage(run.id)

        rows = _ChunkWriter(data, "rows", settings.rows_per_file, 1 << 62)
        cards = _ChunkWriter(data, "latents", settings.cards_per_file, settings.bytes_per_file)
        cards.strings = {}
        freq = np.full(len(refs), np.nan)
        values = np.full((len(keys), len(refs)), np.nan)
        for n, ref in enumerate(_progress(refs, progress)):
            st = by_ref.get(ref)
            exps = [e for name in explainers if (e := store.get_explanation(run.id, ref, name))]
            scores = [s for k in keys if (s := store.get_score(run.id, ref, *k))]
            fails = failures.get(ref, [])
            chunk = cards.current
            card = _card(
                ref, source_ids[ref.source], st, exps, scores, labels,
                store.examples(run.id, ref), fails, cards.strings, settings,
            )  # fmt: skip
            cards.add(_js(card))
            cells: list[float | None] = [None] * len(keys)
            for s in scores:
                cells[labels[(s.explainer, s.scorer)]] = _num(s.value)
                if s.value is not None:
                    values[labels[(s.explainer, s.scorer)], n] = s.value
            if st is not None:
                freq[n] = st.frequency
            text = exps[0].text if exps else ""
            if len(text) > settings.explanation_chars:
                text = text[: settings.explanation_chars - 1] + "…"
            row = [n, source_ids[ref.source], ref.index, text,
                   _num(st.frequency) if st else None, _num(st.max_activation) if st else None,
                   len(fails), chunk, *cells]  # fmt: skip
            rows.add(_js(row))
        rows.flush()
        cards.flush()

    plot_list = _plots(plot_dir, names, values, freq)
    by_scorer = {
        name: {i: float(v) for i, v in enumerate(values[k]) if math.isfinite(v)}
        for k, name in enumerate(names)
    }
    agree_names, rho, shared = agreement(by_scorer) if names else ([], np.zeros((0, 0)), None)
    meta = {
        "run": {
            "id": run.id,
            "name": run.name,
            "status": run.status,
            "started": run.started_at,
            "finished": run.finished_at,
            "dir": str(run_dir),
        },
        "sources": sources,
        "scorers": names,
        "n_latents": len(refs),
        "row_files": rows.n_files,
        "card_files": cards.n_files,
        "plots": plot_list,
        "agreement": {
            "names": agree_names,
            "rho": [[_num(v) for v in r] for r in rho],
            "n": shared.tolist() if shared is not None else [],
        },
        "usage": {
            "calls": usage.calls,
            "cache_hits": usage.cache_hits,
            "tokens": usage.prompt_tokens + usage.completion_tokens,
            "cost_usd": round(usage.cost_usd, 4),
        },
    }
    index = out / "index.html"
    index.write_text(_page(meta), encoding="utf-8")
    return index


def _progress(refs: list[LatentRef], show: bool) -> Iterable[LatentRef]:
    if not show or len(refs) < 2000:
        yield from refs
        return
    from rich.progress import track

    yield from track(refs, description="report", transient=True)


def _plots(folder: Path, names: list[str], values: np.ndarray, freq: np.ndarray) -> list[dict]:
    """Score histograms, score vs frequency, and scorer-vs-scorer scatters with Spearman."""
    made: list[dict[str, str]] = []

    def put(name: str, title: str, svg: str) -> None:
        plots.write(folder / name, svg)
        made.append({"file": f"plots/{name}", "title": title})

    for k, name in enumerate(names):
        slug = _slug(name)
        title = f"{name}: score distribution"
        put(f"hist-{slug}.svg", title, plots.histogram(values[k], title=title, xlabel="score"))
    for k, name in enumerate(names):
        title = f"{name} vs firing frequency"
        svg = plots.scatter(freq, values[k], title=title, xlabel="firing frequency (log)",
                            ylabel=f"{name} score", logx=True)  # fmt: skip
        put(f"freq-{_slug(name)}.svg", title, svg)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            rho = spearman(values[a], values[b])
            shown = "n/a" if math.isnan(rho) else f"{rho:.2f}"
            title = f"{names[b]} vs {names[a]}: Spearman {shown}"
            svg = plots.scatter(values[a], values[b], title=title, xlabel=names[a],
                                ylabel=names[b])  # fmt: skip
            put(f"pair-{_slug(names[a])}-vs-{_slug(names[b])}.svg", title, svg)
    return made


def _asset(name: str) -> str:
    return (files("autointerp.report") / "assets" / name).read_text(encoding="utf-8")


def _page(meta: dict[str, Any]) -> str:
    title = f"autointerp report: {meta['run']['name']} (run {meta['run']['id']})"
    parts = {
        "TITLE": title.replace("&", "&amp;").replace("<", "&lt;"),
        "CSS": _asset("report.css"),
        "META": _js(meta),
        "JS": _asset("report.js"),
    }
    # one pass, so text put in (a run name, say) is never itself substituted
    return re.sub(r"/\*(TITLE|CSS|META|JS)\*/", lambda m: parts[m[1]], _asset("report.html"))
