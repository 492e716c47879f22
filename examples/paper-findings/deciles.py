"""Finding (b): detection accuracy per activation decile.

The paper scores explanations on held-out examples drawn from every activation decile and finds
that accuracy falls for the weakest activations: an explanation built from top examples describes
strong activations. This script makes one run whose test examples are spread over the deciles
(``[latents] n_quantiles = 10``, ``n_test`` a multiple of 10) and calls ``autointerp analyze
deciles`` (accuracy per decile and on non-activating examples) and ``distributions``.

    python examples/paper-findings/deciles.py                  # offline, minutes on 2 CPU cores
    python examples/paper-findings/deciles.py --config examples/paper-findings/served.toml \\
        --llm-base-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct --latents 100
"""

from __future__ import annotations

from findings import Finding


def main(argv: list[str] | None = None) -> None:
    f = Finding("deciles", __doc__, latents=4, scorers="detection")
    f.parser.add_argument("--quantiles", type=int, default=10, help="activation quantiles")
    args = f.parse(argv)
    q = args.quantiles
    data = f.config("deciles", f.runs / "run", latents={"n_quantiles": q, "n_test": q})
    run = f.run(data)
    deciles = f.analyze("deciles", [run])
    dist = f.analyze("distributions", [run])
    if deciles is None:
        f.finish("")
        return
    f.add(
        f"One run, {data['latents']['n']} latents of `{data['feature_source']['name']}` "
        f"(`{data['feature_source'].get('layer', data['feature_source'].get('path'))}`), "
        f"{data['latents']['n_test']} held-out activating examples per latent spread over "
        f"{q} activation quantiles, {data['latents']['n_negatives']} non-activating; "
        f"mode `{data.get('mode', 'parity')}`, LLM `{data['llm']['name']}`.",
        "",
        "Accuracy per activation quantile (1 = weakest; n = predictions pooled over latents):",
        "",
    )
    rows = []
    for block in deciles["runs"]:
        for scorer, b in block["scorers"].items():
            cells = [b["non_activating"]] + [
                b["quantiles"].get(str(i), {"accuracy": None, "n": 0}) for i in range(q)
            ]
            rows.append([scorer, *(c["accuracy"] for c in cells), sum(c["n"] for c in cells)])
    f.table(["scorer", "non-act.", *(str(i + 1) for i in range(q)), "n"], rows)
    for note in deciles.get("notes", []):
        f.add(f"- note: {note}")
    f.add("Headline score per latent (`autointerp analyze distributions`):", "")
    f.table(
        ["scorer", "latents", "mean", "median"],
        [
            [s, r["n"], r["mean"], r["median"]]
            for s, b in dist["scorers"].items()
            for r in b["runs"]
        ],
    )
    f.figures(deciles, dist)
    f.finish("Accuracy per activation decile")


if __name__ == "__main__":
    main()
