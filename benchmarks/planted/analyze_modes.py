# ruff: noqa: E501  (an analysis script behind benchmarks/RESULTS.md: tables built in long f-strings)
"""Mode tables for the planted-bench section: scorer quality per run against the measured and the
nominal purity, on each run's own latents and on the latents every run scored, and per latent.

usage: python analyze_modes.py BENCH_JSON [BENCH_JSON...]  (markdown on stdout; run it where the
bench ran: the JSON holds the run directories as given, and the logprob table reads their stores)

Every run of every file is one row group, labelled by its mode and run directory; the first parity
run is the reference of the "against parity" table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from analyze import perm_p
from autointerp_planted.bench import auroc, spearman


def fmt(x: float | None, nd: int = 2) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def label(run: dict) -> str:
    return f"{run['mode']} ({Path(run['run_dir']).name})"


def scored(run: dict, scorer: str) -> dict[int, dict]:
    return {r["latent"]: r for r in run["latents"] if scorer in r["scores"]}


def quality(rows: list[dict], scorer: str) -> tuple[str, ...]:
    """n, Spearman vs measured purity (p), vs nominal, AUROC pure/poly, mean per planted mode."""
    values = [r["scores"][scorer] for r in rows]
    real = [r["purity"] for r in rows]
    nominal = [r["purity_nominal"] for r in rows]
    rho, p = spearman(values, real), perm_p(values, real, n=5000)
    pure = [r["scores"][scorer] for r in rows if r["mode"] in ("pure", "graded")]
    poly = [r["scores"][scorer] for r in rows if r["mode"] == "polysemantic"]
    means = []
    for mode in ("pure", "graded", "noisy", "polysemantic"):
        of = [r["scores"][scorer] for r in rows if r["mode"] == mode]
        means.append(fmt(sum(of) / len(of)) if of else "–")
    return (
        str(len(rows)),
        f"{fmt(rho)} (p {fmt(p)})",
        fmt(spearman(values, nominal)),
        fmt(auroc(pure, poly)),
        " / ".join(means),
    )


def logprob_aurocs(run: dict) -> dict[tuple[int, str], float]:
    """(latent, scorer) -> the AUROC of P(1) its stored score's metrics hold (where logprobs came)."""
    import sqlite3

    db = sqlite3.connect(f"file:{run['run_dir']}/results.sqlite?mode=ro", uri=True)
    rows = db.execute(
        "SELECT idx, scorer, metrics FROM scores WHERE run_id = ?", (run["run_id"],)
    ).fetchall()
    out = {}
    for idx, scorer, metrics in rows:
        value = json.loads(metrics).get("auroc")
        if value is not None:
            out[(idx, scorer)] = float(value)
    return out


def main() -> None:
    runs = []
    for path in sys.argv[1:]:
        data = json.loads(Path(path).read_text())
        runs += data.get("runs", [data])
    scorers = sorted({s["scorer"] for run in runs for s in run["scorers"]})
    head = "| run | scorer | n | Spearman vs measured purity (perm. p) | vs nominal purity | AUROC pure vs poly | mean pure / graded / noisy / poly |"
    rule = "|---|---|---:|---:|---:|---:|---|"

    print("### Scorer quality, each run on its own latents\n")
    print(head + "\n" + rule)
    for run in runs:
        for scorer in scorers:
            rows = list(scored(run, scorer).values())
            if rows:
                print(f"| {label(run)} | {scorer} | " + " | ".join(quality(rows, scorer)) + " |")

    print("\n### The same on the latents every run scored (per scorer)\n")
    print(head + "\n" + rule)
    for scorer in scorers:
        having = [run for run in runs if scored(run, scorer)]
        common = set.intersection(*(set(scored(run, scorer)) for run in having))
        for run in having:
            rows = [r for i, r in scored(run, scorer).items() if i in common]
            print(f"| {label(run)} | {scorer} | " + " | ".join(quality(rows, scorer)) + " |")

    parity = next((run for run in runs if run["mode"] == "parity"), None)
    if parity is not None:
        print(f"\n### Against {label(parity)}, on the latents both scored\n")
        print(
            "| run | scorer | n | Δ Spearman (measured) | Δ AUROC | agreement (Spearman of scores) | within 0.1 |"
        )
        print("|---|---|---:|---:|---:|---:|---|")
        for run in runs:
            if run is parity:
                continue
            for scorer in scorers:
                mine, base = scored(run, scorer), scored(parity, scorer)
                common = sorted(mine.keys() & base.keys())
                if len(common) < 3:
                    continue
                a = [mine[i] for i in common]
                b = [base[i] for i in common]

                def stats(
                    rows: list[dict], scorer: str = scorer
                ) -> tuple[float | None, float | None]:
                    v = [r["scores"][scorer] for r in rows]
                    pure = [r["scores"][scorer] for r in rows if r["mode"] in ("pure", "graded")]
                    poly = [r["scores"][scorer] for r in rows if r["mode"] == "polysemantic"]
                    return spearman(v, [r["purity"] for r in rows]), auroc(pure, poly)

                (ra, aa), (rb, ab) = stats(a), stats(b)
                d_rho = None if ra is None or rb is None else ra - rb
                d_auc = None if aa is None or ab is None else aa - ab
                agree = spearman([r["scores"][scorer] for r in a], [r["scores"][scorer] for r in b])
                within = (
                    d_rho is not None
                    and d_auc is not None
                    and abs(d_rho) <= 0.1
                    and abs(d_auc) <= 0.1
                )
                print(
                    f"| {label(run)} | {scorer} | {len(common)} | {fmt(d_rho)} | {fmt(d_auc)} | {fmt(agree)} | {'yes' if within else 'no'} |"
                )

    print(
        "\n### Scored by logprobs: Spearman of each score's AUROC of P(1) (its metrics) vs measured purity\n"
    )
    print(
        "| run | scorer | n | Spearman vs measured purity (perm. p) | mean pure / graded / noisy / poly |"
    )
    print("|---|---|---:|---:|---|")
    for run in runs:
        aurocs = logprob_aurocs(run)
        for scorer in scorers:
            rows = [r for r in run["latents"] if (r["latent"], scorer) in aurocs]
            if len(rows) < 3:
                continue
            v = [aurocs[(r["latent"], scorer)] for r in rows]
            real = [r["purity"] for r in rows]
            means = []
            for mode in ("pure", "graded", "noisy", "polysemantic"):
                of = [x for x, r in zip(v, rows, strict=True) if r["mode"] == mode]
                means.append(fmt(sum(of) / len(of)) if of else "–")
            rho, p = spearman(v, real), perm_p(v, real, n=5000)
            print(
                f"| {label(run)} | {scorer} | {len(rows)} | {fmt(rho)} (p {fmt(p)}) | {' / '.join(means)} |"
            )

    print("\n### Per latent: purity (nominal, measured, firings by cause) and scores\n")
    cols = [(run, s) for run in runs for s in scorers if scored(run, s)]
    print(
        "| latent | planted mode | truth | nominal | measured | firings: rules + random | "
        + " | ".join(f"{run['mode']} ({Path(run['run_dir']).name}) {s[:3]}" for run, s in cols)
        + " |"
    )
    print("|---:|---|---|---:|---:|---|" + "---:|" * len(cols))
    latents = {r["latent"]: r for run in runs for r in run["latents"]}
    for i in sorted(latents, key=lambda k: (-latents[k]["purity"], k)):
        r = latents[i]
        f = r.get("firings") or {}
        causes = (
            " + ".join(map(str, f.get("rule_firings", []))) + f" + {f.get('random_firings', 0)}"
            if f
            else "–"
        )
        cells = [fmt(scored(run, s).get(i, {}).get("scores", {}).get(s)) for run, s in cols]
        print(
            f"| {i} | {r['mode']} | {r['truth']} | {fmt(r['purity_nominal'])} | {fmt(r['purity_measured'])} | {causes} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
