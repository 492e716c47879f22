"""Finding (a): which examples the explainer should see (top, quantiles, random, mixed).

The paper compares explanations generated from the top-activating examples only with
explanations from examples sampled across the activation range, and finds that top-only
explanations score well on strong activations but generalise worse to weak ones. This script
makes one run per ``[latents] train_sampler`` on the same latents, cache and held-out sizes (all
runs share one run directory, so the activations are cached once), then calls ``autointerp
analyze distributions`` (score per sampler) and ``deciles`` (accuracy per activation decile,
per sampler).

    python examples/paper-findings/sampling.py                 # offline, minutes on 2 CPU cores
    python examples/paper-findings/sampling.py --config examples/paper-findings/served.toml \\
        --llm-base-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct --latents 100
"""

from __future__ import annotations

from findings import Finding, mean_scores

SAMPLERS = ("top", "quantiles", "random", "mixed")


def main(argv: list[str] | None = None) -> None:
    f = Finding("sampling", __doc__, latents=2, scorers="detection")
    f.parser.add_argument("--samplers", default=",".join(SAMPLERS),
                          help="comma-separated train samplers to compare")  # fmt: skip
    args = f.parse(argv)
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    runs: list[str] = []
    data: dict = {}
    for sampler in samplers:
        data = f.config(f"sampling-{sampler}", f.runs / "run", latents={"train_sampler": sampler})
        runs.append(f.run(data))
    dist = f.analyze("distributions", runs)
    deciles = f.analyze("deciles", runs)
    if dist is None or deciles is None:
        f.finish("")
        return
    lat = data["latents"]
    q = int(lat.get("n_quantiles", 10))
    f.add(
        f"{len(samplers)} runs on the same {lat['n']} latents of `{data['feature_source']['name']}`"
        f" (layer/path `{data['feature_source'].get('layer', data['feature_source'].get('path'))}`"
        f"), differing only in `train_sampler`: {lat['n_train']} explainer examples, "
        f"{lat['n_test']} held-out activating examples over {q} quantiles, "
        f"{lat['n_negatives']} non-activating; mode `{data.get('mode', 'parity')}`, "
        f"LLM `{data['llm']['name']}`.",
        "",
        "Headline score per latent, per train sampler:",
        "",
    )
    means = mean_scores(dist)
    labels = dist["runs"]
    rows = [
        [sampler, scorer, row["n"], row["mean"], row["median"]]
        for sampler, label in zip(samplers, labels, strict=True)
        for (run, scorer), row in means.items()
        if run == label
    ]
    f.table(["train sampler", "scorer", "latents", "mean", "median"], rows)
    f.add(
        "Accuracy per activation quantile of the held-out examples (1 = weakest), per sampler:", ""
    )
    rows = []
    for sampler, block in zip(samplers, deciles["runs"], strict=True):
        for scorer, b in block["scorers"].items():
            cells = [b["non_activating"]] + [
                b["quantiles"].get(str(i), {"accuracy": None, "n": 0}) for i in range(q)
            ]
            rows.append([sampler, scorer, *(c["accuracy"] for c in cells),
                         sum(c["n"] for c in cells)])  # fmt: skip
    f.table(["train sampler", "scorer", "non-act.", *(str(i + 1) for i in range(q)), "n"], rows)
    f.figures(dist, deciles)
    f.finish("Explainer example sampling: top vs quantiles vs random vs mixed")


if __name__ == "__main__":
    main()
