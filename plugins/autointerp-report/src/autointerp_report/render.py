"""The HTML report of a run: ``RUN/report/index.html``, static and offline, for any run size.

Layout of the report folder::

    index.html              the page (inline CSS and JS, run summary, plots, agreement matrix)
    plots/*.svg             summary plots, also shown in the page
    analyses/*.svg, *.json  the run's analyses (``autointerp analyze``), also shown in the page
    data/rows-0001.js       latent-table rows, a few thousand per file
    data/latents-0001.js    latent cards (examples, explanation, scores, predictions), loaded
                            only when a card in that file is opened

Data files are JSONP-style scripts (``window.AUTOINTERP.push(...)``) because a page opened from
``file://`` may not ``fetch()`` JSON. The generator streams: latents are read from the store in
chunks (one range query per table) and their cards written out part by part (a part: one card
file's worth, rendered in worker processes for large runs), so memory holds only the table's
numbers and the parts in flight, never all cards.

Activations in cards are integers in [-1000, 1000], relative to the latent's largest shown
activation ``am`` (the page turns them back into values for tooltips). Token strings are stored
once per card file (``strings``) and referenced by position.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from autointerp.examples import scored_examples
from autointerp.status import component_costs
from autointerp.store import Store
from autointerp.types import Example, LatentIds, LatentRef, Score
from autointerp_report import plots
from autointerp_report.analyses import report_figures
from autointerp_report.runs import open_run_input
from autointerp_report.stats import agreement_arrays, spearman


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
    #: latents read from the store per query (bounds memory: one chunk's examples at a time)
    read_chunk: int = 64
    #: processes rendering cards; 0: one per CPU (at most 4) for runs of ``PARALLEL_FROM``+
    #: latents, else this process
    workers: int = 0


def _js(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # "</script" ends the element and "<!--" starts the HTML parser's script-data escape state,
    # where a later "<script" swallows the rest of the page: escape every "<" (and U+2028/9)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@lru_cache(maxsize=1 << 16)  # predictions repeat a few values (0, 1) across thousands of cards
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
        path = self.folder / f"{self.stem}-{self.n_files:04d}.js"
        with path.open("w", encoding="utf-8") as f:
            f.write(f'window.AUTOINTERP.push("{self.stem}",{self.n_files},[')
            f.write(",".join(self.items))
            f.write("]);\n")
        self.items, self.size = [], 0


#: card group of each example role (the page's names)
_GROUP = {"train": "top", "test": "test", "negative": "neg"}


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
    test, negatives = scored_examples(examples)
    scored = [*test, *negatives]  # what predictions' example_id indexes
    position = {id(ex): i for i, ex in enumerate(scored)}
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
    for ex in examples:
        g = _GROUP[ex.role]
        totals[g] += 1
        if totals[g] <= settings.examples_per_group:
            shown.append((g, ex, position.get(id(ex), -1)))
    # all shown activations scaled in one array op, then cut back into examples
    flat = np.array(list(chain.from_iterable(ex.activations for _, ex, _ in shown)), dtype=float)
    peak = max(float(flat.max(initial=0.0)), stats.max_activation if stats else 0.0)
    scale = 1000.0 / peak if peak > 0 else 0.0
    scaled = np.rint(flat * scale).clip(-1000, 1000).astype(int).tolist()
    start = 0
    # new strings get the next ids in first-seen order (the loop runs over distinct ones only)
    for t in dict.fromkeys(chain.from_iterable(ex.str_tokens for _, ex, _ in shown)):
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

    with open_run_input(run_dir, run_id) as (store, picked):
        run = store.get_run(picked)
        assert run is not None
        keys = store.score_keys(run.id)
        failures: dict[LatentRef, list[tuple[str, str]]] = {}
        for (ref, component), reason in store.failures(run.id).items():
            failures.setdefault(ref, []).append((component, reason))
        # the latents as compact ids; their stats are read a part at a time where rendered
        refs = store.latent_ids(run.id)
        if any(ref not in refs for ref in failures):
            refs = refs | LatentIds(failures)
        explainers = store.explainer_names(run.id)
        scoring = sorted({e for e, _ in keys})
        names = [s if len(scoring) <= 1 else f"{s} ({e})" for e, s in keys]
        labels = {k: i for i, k in enumerate(keys)}
        sources = refs.sources
        source_ids = {s: i for i, s in enumerate(sources)}
        usage = store.usage(run.id)
        costs = component_costs(store, run.id)  # LLM calls, tokens, dollars per component

        rows = _ChunkWriter(data, "rows", settings.rows_per_file, 1 << 62)
        freq = np.full(len(refs), np.nan)
        values = np.full((len(keys), len(refs)), np.nan)
        job = _Job(store.path, run.id, settings, labels, explainers, source_ids)

        ordered = iter(refs)

        def part(size: int) -> _Part:
            these = list(islice(ordered, size))
            return these, {r: failures[r] for r in these if r in failures}

        n = n_files = 0
        workers = _workers(settings, len(refs))
        with _part_results(store, job, part, len(refs), workers) as results:
            for bodies, latents in _progress(results, len(refs), progress):
                for body in bodies:  # card files are numbered here, in latent order
                    path = data / f"latents-{n_files + 1:04d}.js"
                    path.write_text(f'window.AUTOINTERP.push("latents",{n_files + 1},{body});\n',
                                    encoding="utf-8")  # fmt: skip
                    n_files += 1
                for row, raw in latents:
                    row[0], row[7] = n, n_files - len(bodies) + 1 + row[7]
                    rows.add(_js(row))
                    values[:, n], freq[n] = raw[:-1], raw[-1]
                    n += 1
        rows.flush()

    plot_list = _plots(plot_dir, names, values, freq)
    # the run's own analyses (accuracy per quantile, scorer correlations, cost per component)
    # and any figure `autointerp analyze` wrote into the same folder before
    plot_list += report_figures(run_dir, run.id, out / "analyses")
    by_scorer = {}
    for k, name in enumerate(names):
        known = np.flatnonzero(np.isfinite(values[k]))
        by_scorer[name] = (known, values[k][known])
    agree_names, rho, shared = (
        agreement_arrays(by_scorer) if names else ([], np.zeros((0, 0)), None)
    )
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
        "explainers": explainers,
        "n_latents": len(refs),
        "row_files": rows.n_files,
        "card_files": n_files,
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
        "costs": costs,
    }
    index = out / "index.html"
    index.write_text(_page(meta), encoding="utf-8")
    return index


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _progress(results: Iterable[Any], total: int, show: bool) -> Iterator[Any]:
    """Part results as they come, with a progress bar (in latents) for large runs."""
    if not show or total < 2000:
        yield from results
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("report", total=total)
        for result in results:
            yield result
            bar.advance(task, len(result[1]))


@dataclass(frozen=True)
class _Job:
    """What rendering a part of the latents needs, the same for every part."""

    store_path: Path
    run_id: int
    settings: ReportSettings
    labels: dict[tuple[str, str], int]
    explainers: list[str]
    source_ids: dict[str, int]


#: a part: its latents (consecutive in the table) and their failures; its stats are read where
#: it is rendered
_Part = tuple[list[LatentRef], dict[LatentRef, list[tuple[str, str]]]]
#: card file bodies, then per latent (table row, [*raw score values, frequency]); a row's
#: position and card file are numbered by the caller (row[7]: index among this part's bodies)
_PartResult = tuple[list[str], list[tuple[list[Any], list[float]]]]


def _render_part(store: Store, job: _Job, part: _Part) -> _PartResult:
    """Cards and table rows of one part, read from the store one chunk of latents at a time.
    Cards go to files of at most ``cards_per_file`` / ``bytes_per_file``, each with its strings."""
    refs, failures = part
    settings, labels = job.settings, job.labels
    bodies: list[str] = []
    items: list[str] = []
    strings: dict[str, int] = {}
    size = 0
    out: list[tuple[list[Any], list[float]]] = []

    def close() -> None:
        nonlocal items, strings, size
        if items:
            bodies.append(f"[{','.join(items)}],{_js(list(strings))}")
        items, strings, size = [], {}, 0

    step = settings.read_chunk
    for chunk in (refs[i : i + step] for i in range(0, len(refs), step)):
        # one ordered range read per chunk and table, never a query per latent
        examples = store.latent_examples(job.run_id, chunk, tokens=False)
        chunk_exps = store.latent_explanations(job.run_id, chunk)
        chunk_scores = store.latent_scores(job.run_id, chunk)
        stats = store.latent_stats(job.run_id, chunk)
        for ref in chunk:
            st = stats.get(ref)
            exps = chunk_exps.get(ref, [])
            scores = chunk_scores.get(ref, [])
            fails = failures.get(ref, [])
            file_idx = len(bodies)
            card = _card(
                ref, job.source_ids[ref.source], st, exps, scores, labels,
                examples.get(ref, []), fails, strings, settings,
            )  # fmt: skip
            item = _js(card)
            items.append(item)
            size += len(item)
            if len(items) >= settings.cards_per_file or size >= settings.bytes_per_file:
                close()
            cells: list[float | None] = [None] * len(labels)
            raw = [math.nan] * len(labels) + [st.frequency if st else math.nan]
            for s in scores:
                k = labels[(s.explainer, s.scorer)]
                cells[k] = _num(s.value)
                raw[k] = math.nan if s.value is None else s.value
            texts = dict.fromkeys(job.explainers, "")
            texts.update((e.explainer, _cut(e.text, settings.explanation_chars)) for e in exps)
            first, *more = texts.values() if texts else [""]
            row = [0, job.source_ids[ref.source], ref.index, first,
                   _num(st.frequency) if st else None, _num(st.max_activation) if st else None,
                   len(fails), file_idx, *cells, *more]  # fmt: skip
            out.append((row, raw))
    close()
    return bodies, out


def _workers(settings: ReportSettings, n_latents: int) -> int:
    if settings.workers > 0:
        return settings.workers
    if n_latents < PARALLEL_FROM:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))  # fmt: skip


#: latents from which a report renders its cards in worker processes (by default)
PARALLEL_FROM = 5000

_worker_state: tuple[Store, _Job] | None = None


def _init_worker(job: _Job) -> None:
    global _worker_state
    _worker_state = (Store(job.store_path, readonly=True), job)


def _run_part(part: _Part) -> _PartResult:
    assert _worker_state is not None
    return _render_part(*_worker_state, part)


@contextmanager
def _part_results(
    store: Store, job: _Job, part: Callable[[int], _Part], n: int, workers: int
) -> Iterator[Iterator[_PartResult]]:
    """Rendered parts of the ``n`` latents in order (``part(size)``: the next ``size``
    latents): in this process, or in ``workers`` processes
    (spawned, not forked: the caller may hold threads and a loaded model), each with its own
    connection, at most two parts per worker in flight. A part is one card file's worth: after
    the first parts, as many cards as the mean card size so far fits in ``bytes_per_file``, so
    parts seldom leave a small remainder file."""
    settings = job.settings
    seen = [0, 0]  # card bytes, cards

    def parts() -> Iterator[_Part]:
        start = 0
        while start < n:
            size = settings.cards_per_file
            if seen[1]:
                fit = int(0.9 * settings.bytes_per_file * seen[1] / max(seen[0], 1))
                size = max(1, min(size, fit))
            yield part(size)
            start += size

    def count(result: _PartResult) -> _PartResult:
        seen[0] += sum(map(len, result[0]))
        seen[1] += len(result[1])
        return result

    if workers <= 1:
        yield (count(_render_part(store, job, p)) for p in parts())
        return
    import multiprocessing
    import sys
    import types
    from concurrent.futures import ProcessPoolExecutor

    # a worker that dies fails the report (BrokenProcessPool) instead of leaving it waiting
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(job,),
    )

    def results() -> Iterator[_PartResult]:
        todo = parts()
        pending: deque[Any] = deque()
        # workers start with the first submissions; they would import the caller's __main__ (a
        # script, a notebook, stdin...) unless it is hidden: they need only this module, and a
        # script without a main guard would run again
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            for p in todo:
                pending.append(pool.submit(_run_part, p))
                if len(pending) >= 2 * workers:
                    break
        finally:
            sys.modules["__main__"] = main
        while pending:
            result = count(pending.popleft().result())
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_run_part, nxt))
            yield result

    with pool:
        yield results()


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
    return (files("autointerp_report") / "assets" / name).read_text(encoding="utf-8")


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
