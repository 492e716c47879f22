"""``autointerp bench planted RUN``: explanations and scores of a planted run against the truth.

Reads a finished run of the `planted` feature source (its store; the truth comes from the run's
stored ``feature_source`` config, which determines the planted set) and reports:

- explanation correctness: the share of the latent's key tokens the explanation names (where the
  rule has key tokens), the cosine similarity of explanation and true description under the
  embedding scorer's packaged model (all-MiniLM-L6-v2; ``--no-embedding`` skips it), and an LLM
  judge's yes/no through the run's own LLM client (``--judge``; :mod:`autointerp_planted.judge`);
- per scorer (and explainer): Spearman correlation of the score with the latent's planted purity,
  and AUROC of the score separating pure latents (pure, graded) from polysemantic ones;
- per mode (pure, graded, noisy, polysemantic): mean correctness and mean score;
- LLM cost per explained latent, from the store's ledger.

Several runs (one per mode: parity, economy, small-llm) are compared side by side, and each run is
set against the parity run of the same planted set: the Spearman correlation of their scores over
the latents both scored, and the differences in Spearman-vs-purity and AUROC.

Purity is measured on the run's cache (:mod:`autointerp_planted.purity`): the share of the
latent's firings its dominant rule accounts for (against the second rule of a polysemantic
latent, and against the random firings of a noisy one); the Spearman correlations and tables use
it. The nominal purity stays in the output (``purity_nominal``, and ``spearman_purity_nominal``):
1 for pure and graded latents, 0.5 for polysemantic ones, and for noisy ones the expected share,
``1 - noise / frequency`` (``noise`` the chance per token of a random firing, ``frequency`` the
latent's measured one). Without the run's cache (a moved store) the nominal purity is used.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from autointerp.errors import ConfigError

console = Console()
app = typer.Typer(help="Benchmarks against planted ground truth.", no_args_is_help=True)


def key_match(text: str, keys: Sequence[str]) -> float | None:
    """The share of ``keys`` that ``text`` names (words whole and case-insensitive; symbols as
    they are); None without keys."""
    if not keys:
        return None
    low = text.lower()
    hits = 0
    for key in keys:
        k = key.lower()
        if re.fullmatch(r"\w+", k):
            hits += re.search(rf"\b{re.escape(k)}\b", low) is not None
        else:
            hits += k in low
    return hits / len(keys)


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation; None with fewer than 3 pairs or a constant side."""
    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return None if vx == 0 or vy == 0 else cov / math.sqrt(vx * vy)


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """The chance a positive outscores a negative (ties half); None unless both are present."""
    if not positive or not negative:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def purity(truth: dict[str, Any], frequency: float) -> float:
    if truth["purity"] is not None:
        return float(truth["purity"])
    if frequency <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - truth["noise"] / frequency))


def bind_run_tokenizer(source: Any, config: dict[str, Any]) -> None:
    """Bind ``source`` to the tokenizer of a run's model adapter (its stored ``[model]``)."""
    from autointerp.plugins import get_plugin_manager

    table = dict(config.get("model") or {})
    name = table.pop("name", None)
    if not name:
        raise ConfigError("the run's stored config has no [model] name: cannot measure purity")
    source.bind_model(get_plugin_manager().build("model_adapter", name, table))


def _measured(
    run_dir: Path, source: Any, config: dict[str, Any], indices: list[int]
) -> dict[int, dict[str, Any]] | None:
    """Measured purity of ``indices`` on the run's cache; None (with a warning) without one."""
    from autointerp_planted.purity import measure_purity

    cache_dir = run_dir / "cache" / source.site
    if not indices:
        return {}
    if not (cache_dir / "manifest.json").is_file():
        console.print(
            f"[yellow]{cache_dir}: no cache; using the nominal purity (rerun the run's cache "
            "stage to measure it)[/yellow]"
        )
        return None
    bind_run_tokenizer(source, config)
    return measure_purity(source, cache_dir, indices)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def bench_planted(
    run_dir: Path,
    run_id: int | None = None,
    *,
    embed: bool = True,
    model: str | None = None,
    judge: bool = False,
    judge_llm: dict[str, Any] | None = None,
    measure: bool = True,
) -> dict[str, Any]:
    """The benchmark of one run of a planted source, as JSON-able data. ``judge`` asks an LLM
    (``judge_llm``, an ``[llm]`` table; default: the run's own) whether each explanation names
    the truth. ``measure``: purity measured on the run's cache (else the nominal one)."""
    from autointerp.store import Store
    from autointerp_planted.plugin import PlantedConfig
    from autointerp_planted.source import PlantedSource

    with Store.open(run_dir) as store:
        rid = store.pick_run(run_id)
        record = store.get_run(rid)
        assert record is not None
        table = dict(record.config.get("feature_source", {}))
        if table.get("name") != "planted":
            raise ConfigError(
                f"{run_dir}: run {rid} used feature source {table.get('name')!r}, not 'planted'"
            )
        table.pop("name")
        source = PlantedSource(PlantedConfig.model_validate(table))
        run_mode = str(record.config.get("mode", "parity"))
        llm_table = dict(judge_llm or record.config.get("llm") or {})
        stats = {s.latent.index: s for s in store.latents(rid)}
        explanations = store.explanations(rid)
        scores = store.scores(rid)
        usage = store.usage(rid)

    indices = sorted({e.latent.index for e in explanations})
    measured = _measured(run_dir, source, dict(record.config), indices) if measure else None
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for e in explanations:
        truth = source.truth(e.latent.index)
        freq = stats[e.latent.index].frequency if e.latent.index in stats else 0.0
        nominal = purity(truth, freq)
        counts = (measured or {}).get(e.latent.index)
        real = None if counts is None else counts["purity"]
        rows[(e.explainer, e.latent.index)] = {
            "latent": e.latent.index,
            "explainer": e.explainer,
            "explanation": e.text,
            "truth": truth["description"],
            "mode": truth["mode"],
            "kinds": truth["kinds"],
            "keys": truth["keys"],
            "purity": nominal if real is None else real,
            "purity_nominal": nominal,
            "purity_measured": real,
            "firings": counts,
            "frequency": freq,
            "key_match": key_match(e.text, truth["keys"]),
            "similarity": None,
            "judge": None,
            "scores": {},
        }
    if embed and rows:
        from autointerp_report.embed import TextEncoder, default_model_path

        encoder = TextEncoder(model or default_model_path())
        items = list(rows.values())
        a = encoder.encode([r["explanation"] for r in items])
        b = encoder.encode([r["truth"] for r in items])
        for r, sim in zip(items, (a * b).sum(axis=1), strict=True):
            r["similarity"] = float(sim)
    if judge and rows:
        from autointerp_planted.judge import run_judge

        items = list(rows.values())
        with Store.open(run_dir) as store:
            verdicts = run_judge(
                llm_table,
                [(r["explanation"], r["truth"]) for r in items],
                store=store,
                run_id=rid,
            )
        for r, verdict in zip(items, verdicts, strict=True):
            r["judge"] = None if verdict is None else float(verdict)
    for s in scores:
        row = rows.get((s.explainer, s.latent.index))
        if row is not None and s.value is not None:
            row["scores"][s.scorer] = float(s.value)

    items = list(rows.values())
    scorers = sorted({name for r in items for name in r["scores"]})
    explainers = sorted({r["explainer"] for r in items})
    per_scorer = []
    for explainer in explainers:
        for scorer in scorers:
            have = [r for r in items if r["explainer"] == explainer and scorer in r["scores"]]
            pure = [r["scores"][scorer] for r in have if r["mode"] in ("pure", "graded")]
            poly = [r["scores"][scorer] for r in have if r["mode"] == "polysemantic"]
            per_scorer.append(
                {
                    "explainer": explainer,
                    "scorer": scorer,
                    "n": len(have),
                    "spearman_purity": spearman(
                        [r["scores"][scorer] for r in have], [r["purity"] for r in have]
                    ),
                    "spearman_purity_nominal": spearman(
                        [r["scores"][scorer] for r in have], [r["purity_nominal"] for r in have]
                    ),
                    "auroc_pure_vs_polysemantic": auroc(pure, poly),
                }
            )
    per_mode = {}
    for mode in ("pure", "graded", "noisy", "polysemantic"):
        of = [r for r in items if r["mode"] == mode]
        per_mode[mode] = {
            "n": len(of),
            "purity": _mean([r["purity"] for r in of]),
            "purity_nominal": _mean([r["purity_nominal"] for r in of]),
            "key_match": _mean([r["key_match"] for r in of]),
            "similarity": _mean([r["similarity"] for r in of]),
            "judge": _mean([r["judge"] for r in of]),
            "scores": {sc: _mean([r["scores"].get(sc) for r in of]) for sc in scorers},
        }
    n_latents = len({r["latent"] for r in items})
    return {
        "run_dir": str(run_dir),
        "run_id": rid,
        "mode": run_mode,
        "set": source.config.set,
        "seed": source.config.seed,
        "n_planted": source.n_latents,
        "n_explained": n_latents,
        "purity": "nominal" if measured is None else "measured",
        "correctness": {
            "key_match": _mean([r["key_match"] for r in items]),
            "similarity": _mean([r["similarity"] for r in items]),
            "llm_judge": _mean([r["judge"] for r in items]),
            # the goal's measure: pure latents of one token-set rule
            "llm_judge_pure_token": _mean(
                [r["judge"] for r in items if r["mode"] == "pure" and r["kinds"] == ["token"]]
            ),
        },
        "scorers": per_scorer,
        "modes": per_mode,
        "cost": {
            "usd_total": usage.cost_usd,
            "usd_per_latent": usage.cost_usd / n_latents if n_latents else None,
            "llm_calls": usage.calls,
            "tokens_per_latent": (usage.prompt_tokens + usage.completion_tokens) / n_latents
            if n_latents
            else None,
        },
        "latents": items,
    }


def _label(result: dict[str, Any]) -> str:
    return f"{result['mode']}: {Path(result['run_dir']).name}@{result['run_id']}"


def _values(result: dict[str, Any], explainer: str, scorer: str) -> dict[int, float]:
    return {
        r["latent"]: r["scores"][scorer]
        for r in result["latents"]
        if r["explainer"] == explainer and scorer in r["scores"]
    }


def compare_runs(results: Sequence[dict[str, Any]], tolerance: float = 0.1) -> dict[str, Any]:
    """Several runs' scorer quality side by side, each set against the first parity run: deltas
    of Spearman-vs-purity and AUROC (``within`` says both are within ``tolerance``), and the
    Spearman correlation of the two runs' scores over the latents both scored."""
    parity = next((r for r in results if r["mode"] == "parity"), None)
    rows = []
    for result in results:
        for s in result["scorers"]:
            row: dict[str, Any] = {"run": _label(result), "mode": result["mode"], **s}
            base = None
            if parity is not None and result is not parity:
                base = next(
                    (
                        p
                        for p in parity["scorers"]
                        if (p["explainer"], p["scorer"]) == (s["explainer"], s["scorer"])
                    ),
                    None,
                )
            if base is not None:
                assert parity is not None
                deltas = [
                    None if a is None or b is None else a - b
                    for a, b in (
                        (s["spearman_purity"], base["spearman_purity"]),
                        (s["auroc_pure_vs_polysemantic"], base["auroc_pure_vs_polysemantic"]),
                    )
                ]
                mine = _values(result, s["explainer"], s["scorer"])
                theirs = _values(parity, s["explainer"], s["scorer"])
                common = sorted(mine.keys() & theirs.keys())
                row |= {
                    "delta_spearman": deltas[0],
                    "delta_auroc": deltas[1],
                    "within": all(d is not None and abs(d) <= tolerance for d in deltas),
                    "agreement_spearman": spearman(
                        [mine[i] for i in common], [theirs[i] for i in common]
                    ),
                    "n_common": len(common),
                }
            rows.append(row)
    return {"parity": _label(parity) if parity else None, "tolerance": tolerance, "rows": rows}


def bench_figure(results: Sequence[dict[str, Any]]) -> str:
    """Spearman-vs-purity and AUROC per scorer, a bar per run (SVG, the report's style)."""
    from autointerp_report.figures import hbars

    keys = sorted({(s["explainer"], s["scorer"]) for r in results for s in r["scorers"]})
    categories, series = [], []
    for explainer, scorer in keys:
        who = scorer if len({e for e, _ in keys}) == 1 else f"{explainer}/{scorer}"
        categories += [f"{who}: Spearman vs purity", f"{who}: AUROC pure/poly"]
    for result in results:
        by = {(s["explainer"], s["scorer"]): s for s in result["scorers"]}
        values: list[float] = []
        for key in keys:
            s = by.get(key, {})
            for metric in ("spearman_purity", "auroc_pure_vs_polysemantic"):
                v = s.get(metric)
                values.append(math.nan if v is None else float(v))
        series.append((_label(result), values))
    return hbars(
        categories, series, title="Planted benchmark: scorer quality per run", xlabel="value"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@app.command("planted")
def planted_command(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories of planted-source runs (RUN@ID picks a run); several runs "
            "(e.g. one per mode) are compared with the parity one."
        ),
    ],
    run_id: Annotated[
        int | None, typer.Option(help="Run id in the store (default: latest).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="JSON output (default: FIRST_RUN/bench-planted.json).")
    ] = None,
    embedding: Annotated[
        bool, typer.Option(help="Embedding similarity of explanation and truth.")
    ] = True,
    model: Annotated[
        str | None, typer.Option(help="Sentence-embedding model folder (default: packaged).")
    ] = None,
    judge: Annotated[
        bool,
        typer.Option(
            help="Ask an LLM (the run's own client) whether each explanation names the truth: "
            "one short call per explanation, cached in the run's store."
        ),
    ] = False,
    judge_llm: Annotated[
        str | None,
        typer.Option(
            help="The judge's LLM client (e.g. openai-compatible) instead of the run's own: a "
            "judge should be stronger than the explainer it checks."
        ),
    ] = None,
    judge_option: Annotated[
        list[str] | None,
        typer.Option(
            "--judge-option",
            "-j",
            metavar="KEY=VALUE",
            help="An option of the judge's client (repeat), e.g. -j base_url=... -j model=...",
        ),
    ] = None,
    measured_purity: Annotated[
        bool,
        typer.Option(
            help="Measure each latent's purity on the run's cache (loads the run's tokenizer); "
            "--no-measured-purity: the nominal purity."
        ),
    ] = True,
) -> None:
    """Explanation correctness and scorer quality against a planted set's ground truth."""
    table: dict[str, Any] | None = None
    if judge_llm or judge_option:
        if not judge_llm:
            raise typer.BadParameter("--judge-option needs --judge-llm (the client they belong to)")
        from autointerp.adapter_cli import parse_options

        table = {"name": judge_llm, **parse_options(judge_option, "--judge-option")}
        judge = True
    results = []
    for spec in runs:
        path, _, rid = str(spec).partition("@")
        if rid and not rid.isdigit():
            raise typer.BadParameter(f"{spec}: expected RUN or RUN@ID with a numeric ID")
        result = bench_planted(
            Path(path),
            int(rid) if rid else run_id,
            embed=embedding,
            model=model,
            judge=judge,
            judge_llm=table,
            measure=measured_purity,
        )
        results.append(result)
        _print_result(result)
    first = Path(results[0]["run_dir"])
    data: dict[str, Any] = results[0] if len(results) == 1 else {"runs": results}
    if len(results) > 1:
        data["comparison"] = compare_runs(results)
        _print_comparison(data["comparison"])
    target = out or first / "bench-planted.json"
    target.write_text(json.dumps(data, indent=1), encoding="utf-8")
    figure = first / "report" / "analyses" / "planted-bench.svg"
    figure.parent.mkdir(parents=True, exist_ok=True)
    figure.write_text(bench_figure(results), encoding="utf-8")
    console.print(f"written to {target} and {figure} (linked by the run's next report)")


def _print_comparison(comparison: dict[str, Any]) -> None:
    table = Table(
        "run", "scorer", "Spearman", "AUROC", "Δ Spearman", "Δ AUROC", "agreement", "within",
        title=f"against parity ({comparison['parity'] or 'none'}; tolerance "
        f"{comparison['tolerance']})",
    )  # fmt: skip
    for r in comparison["rows"]:
        within = r.get("within")
        table.add_row(
            r["run"], r["scorer"], _fmt(r["spearman_purity"]),
            _fmt(r["auroc_pure_vs_polysemantic"]), _fmt(r.get("delta_spearman")),
            _fmt(r.get("delta_auroc")), _fmt(r.get("agreement_spearman")),
            "-" if within is None else ("yes" if within else "no"),
        )  # fmt: skip
    console.print(table)


def _print_result(result: dict[str, Any]) -> None:
    c = result["correctness"]
    console.print(
        f"{_label(result)}: planted set {result['set']!r} (seed {result['seed']}): "
        f"{result['n_explained']} of {result['n_planted']} latents explained; key tokens named "
        f"{_fmt(c['key_match'])}, embedding similarity {_fmt(c['similarity'])}, LLM judge "
        f"{_fmt(c['llm_judge'])} (pure token sets {_fmt(c['llm_judge_pure_token'])})"
    )
    table = Table(
        "explainer", "scorer", "n", f"Spearman vs purity ({result['purity']})",
        "Spearman vs nominal purity", "AUROC pure/poly",
    )  # fmt: skip
    for s in result["scorers"]:
        table.add_row(s["explainer"], s["scorer"], str(s["n"]), _fmt(s["spearman_purity"]),
                      _fmt(s["spearman_purity_nominal"]),
                      _fmt(s["auroc_pure_vs_polysemantic"]))  # fmt: skip
    console.print(table)
    modes = Table(
        "latent mode", "n", "purity", "nominal", "key match", "similarity", "judge",
        *(s for s in _scorers(result)),
    )  # fmt: skip
    for mode, m in result["modes"].items():
        keys = ("purity", "purity_nominal", "key_match", "similarity", "judge")
        cells = [_fmt(m[k]) for k in keys]
        cells += [_fmt(m["scores"].get(s)) for s in _scorers(result)]
        modes.add_row(mode, str(m["n"]), *cells)
    console.print(modes)
    cost = result["cost"]
    console.print(
        f"cost: ${cost['usd_total']:.4f} in {cost['llm_calls']} LLM calls, "
        f"{_fmt(cost['usd_per_latent'])} $/latent"
    )


def _scorers(result: dict[str, Any]) -> list[str]:
    return sorted({s["scorer"] for s in result["scorers"]})
