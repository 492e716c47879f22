# ruff: noqa: E501  (an analysis script behind benchmarks/RESULTS.md: tables built in long f-strings)
"""Tables for the planted-bench results section: reads bench-planted.json and the runs' stores.

usage: python analyze.py BENCH_JSON RUN_DIR [RUN_DIR...]  (markdown on stdout)
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from autointerp_planted.bench import auroc, spearman

from autointerp.store import unpack_json


def fmt(x, nd=2):
    return "–" if x is None else f"{x:.{nd}f}"


def perm_p(x, y, n=20000, seed=0):
    """Two-sided permutation p-value of Spearman(x, y)."""
    import random

    r0 = spearman(x, y)
    if r0 is None:
        return None
    rng = random.Random(seed)
    y = list(y)
    hits = 0
    for _ in range(n):
        rng.shuffle(y)
        r = spearman(x, y)
        hits += r is not None and abs(r) >= abs(r0) - 1e-12
    return hits / n


def store(run: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{run}/results.sqlite?mode=ro", uri=True)


def main() -> None:
    bench = json.loads(Path(sys.argv[1]).read_text())
    results = bench.get("runs", [bench])
    runs = [Path(p) for p in sys.argv[2:]]
    by_mode = {r["mode"]: r for r in results}

    print("### Per latent\n")
    modes = [r["mode"] for r in results]
    head = (
        "| latent | planted mode | truth | purity | "
        + " | ".join(f"{m}: explanation | key | sim | judge | det | fuzz" for m in modes)
        + " |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    lat = {m: {x["latent"]: x for x in by_mode[m]["latents"]} for m in modes}
    for i in lat[modes[0]]:
        base = lat[modes[0]][i]
        cells = [str(i), base["mode"], base["truth"], fmt(base["purity"])]
        for m in modes:
            x = lat[m].get(i)
            if x is None:
                cells += ["–"] * 6
                continue
            cells += [
                x["explanation"].replace("|", "\\|"),
                fmt(x["key_match"]),
                fmt(x["similarity"]),
                fmt(x["judge"], 0),
                fmt(x["scores"].get("detection")),
                fmt(x["scores"].get("fuzzing")),
            ]
        print("| " + " | ".join(cells) + " |")

    print("\n### Answers (from the stores)\n")
    print(
        "| mode | scorer | latents | prompts | answered 1 | prompts answered all one class | "
        "unparseable prompts | re-asks | BA = 0.5 exactly | mean BA | mean AUROC of P(1) | "
        "Spearman(AUROC-P1, purity) (perm. p) | AUROC-P1 pure vs poly |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        con = store(run)
        (cfg,) = con.execute("select config from runs order by id desc limit 1").fetchone()
        mode = json.loads(cfg).get("mode", "parity")
        res = by_mode.get(mode)
        purity = {x["latent"]: x["purity"] for x in res["latents"]} if res else {}
        pmode = {x["latent"]: x["mode"] for x in res["latents"]} if res else {}
        for scorer in ("detection", "fuzzing"):
            rows = con.execute(
                "select idx, value, metrics, predictions, meta from scores where scorer=?",
                (scorer,),
            ).fetchall()
            if not rows:
                continue
            ones = total = prompts = one_class = unparse = reasks = half = 0
            aurocs = {}
            bas = []
            for idx, _value, metrics, preds, meta in rows:
                preds, meta, metrics = unpack_json(preds), json.loads(meta), json.loads(metrics)
                answered = [p["predicted"] for p in preds if p["predicted"] is not None]
                ones += sum(1 for a in answered if a == 1)
                total += len(answered)
                prompts += meta.get("batches", 0)
                unparse += len([r for r in meta.get("parse_failures", []) if r])
                reasks += meta.get("reasks", 0)
                ba = metrics.get("balanced_accuracy")
                if ba is not None:
                    bas.append(ba)
                    half += abs(ba - 0.5) < 1e-9
                if metrics.get("auroc") is not None:
                    aurocs[idx] = metrics["auroc"]
            # prompts answered all one class: from the stored responses
            hashes = [
                h
                for (m,) in con.execute("select meta from scores where scorer=?", (scorer,))
                for h in json.loads(m).get("llm_calls", [])
            ]
            for h in hashes:
                r = con.execute(
                    "select response from llm_calls where request_hash=?", (h,)
                ).fetchone()
                if r is None:
                    continue
                text = unpack_json(r[0])["text"]
                digits = (
                    [c for c in text.split("Answer")[-1] if c in "01"]
                    if "Answer" in text
                    else [c for c in text if c in "01"]
                )
                if digits and len(set(digits)) == 1:
                    one_class += 1
            common = [i for i in aurocs if i in purity]
            sp = (
                spearman([aurocs[i] for i in common], [purity[i] for i in common])
                if common
                else None
            )
            pure = [aurocs[i] for i in common if pmode[i] in ("pure", "graded")]
            poly = [aurocs[i] for i in common if pmode[i] == "polysemantic"]
            print(
                f"| {mode} | {scorer} | {len(rows)} | {prompts} | {fmt(ones / total if total else None)} | "
                f"{one_class}/{len(hashes)} | {unparse} | {reasks} | {half}/{len(bas)} | "
                f"{fmt(sum(bas) / len(bas) if bas else None)} | "
                f"{fmt(sum(aurocs.values()) / len(aurocs) if aurocs else None)} | {fmt(sp)} (p {fmt(perm_p([aurocs[i] for i in common], [purity[i] for i in common]) if common else None)}) | "
                f"{fmt(auroc(pure, poly))} |"
            )

    print("\n### Headline scores: Spearman permutation p-values\n")
    for res in results:
        for sc in ("detection", "fuzzing"):
            have = [x for x in res["latents"] if sc in x["scores"]]
            xs = [x["scores"][sc] for x in have]
            ys = [x["purity"] for x in have]
            print(
                f"- {res['mode']} {sc}: n {len(have)}, Spearman {fmt(spearman(xs, ys))}, permutation p {fmt(perm_p(xs, ys) if have else None)}"
            )

    print("\n### Cost and time\n")
    print(
        "| mode | latents | LLM calls / latent | prompt tokens / latent (cached) | completion tokens / latent | "
        "wall time (first to last LLM call) | s / latent |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        con = store(run)
        (cfg,) = con.execute("select config from runs order by id desc limit 1").fetchone()
        mode = json.loads(cfg).get("mode", "parity")
        n = con.execute("select count(*) from explanations").fetchone()[0]
        calls, pt, ct, comp, t0, t1 = con.execute(
            "select count(*), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), min(at - latency_s), max(at) "
            "from llm_ledger where stage != 'bench'"
        ).fetchone()
        print(
            f"| {mode} | {n} | {calls / n:.1f} | {pt / n:.0f} ({ct / n:.0f}) | {comp / n:.0f} | "
            f"{(t1 - t0) / 60:.1f} min | {(t1 - t0) / n:.0f} |"
        )


if __name__ == "__main__":
    main()
