"""Finding (d): how similar are the explanations of latents at different layers?

The paper embeds every explanation of one layer's latents, matches each to the most similar
explanation of another layer, and finds adjacent layers closer than distant ones. This script
explains the first N latents at several layers (cache + explain only: the similarity needs no
scores), then calls ``autointerp analyze similarity`` over the runs (the layer-by-layer matrix
of mean best-match similarity, all-MiniLM-L6-v2 offline).

    python examples/paper-findings/layer_similarity.py         # MLP neurons of layers 2, 6, 10
    python examples/paper-findings/layer_similarity.py --layers 0-29 --latents 200 \\
        --sae 'saes/resid_post.{layer}.safetensors' --config examples/paper-findings/served.toml \\
        --llm-base-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct
"""

from __future__ import annotations

from findings import Finding


def parse_layers(text: str) -> list[int]:
    """``2,6,10`` or ``0-29`` (inclusive) or a mix."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
        except ValueError:
            raise SystemExit(f"--layers {text!r}: expected numbers like 2,6,10 or 0-29") from None
    return out


def main(argv: list[str] | None = None) -> None:
    f = Finding("layer-similarity", __doc__, latents=6, scorers="detection")
    f.parser.add_argument("--layers", default="2,6,10", help="layers, e.g. 2,6,10 or 0-29")
    f.parser.add_argument(
        "--sae", default=None, help="SAE per layer, a path with {layer} (default: MLP neurons)"
    )
    f.parser.add_argument("--top-k", type=int, default=32, help="neurons kept per token")
    args = f.parse(argv)
    layers = parse_layers(args.layers)
    if len(layers) < 2:
        raise SystemExit("--layers: give at least two layers to compare")
    runs, data = [], {}
    for layer in layers:
        source = (
            {"name": "sae", "path": args.sae.format(layer=layer)}
            if args.sae
            else {"name": "neurons", "layer": layer, "top_k": args.top_k}
        )
        data = f.config(f"layer-{layer}", f.runs / f"layer-{layer}", feature_source=source)
        runs.append(f.run(data, stages=("cache", "explain")))
    sim = f.analyze("similarity", runs)
    if sim is None:
        f.finish("")
        return
    lat = data["latents"]
    f.add(
        f"Explanations of the first {lat['n']} latents (firing >= {lat['min_activations']} times) "
        f"of `{data['feature_source']['name']}` at layers {', '.join(map(str, layers))}; "
        f"{lat['n_train']} explainer examples each, LLM `{data['llm']['name']}`; embedded with "
        f"{sim['model']}. Cell (row, column): mean over the row layer's latents of the cosine "
        "similarity to the best-matching explanation of the column layer.",
        "",
    )
    names = [f"layer {layer}" for layer in layers]
    counts = {r["label"]: r["n_explanations"] for r in sim["runs"]}
    f.table(
        ["", *names, "explanations"],
        [[n, *row, counts.get(label)] for n, row, label in
         zip(names, sim["mean"], sim["labels"], strict=True)],
    )  # fmt: skip
    off = [
        (abs(layers[i] - layers[j]), (sim["mean"][i][j] + sim["mean"][j][i]) / 2)
        for i in range(len(layers))
        for j in range(i + 1, len(layers))
    ]
    f.add("Mean similarity by layer distance (both directions averaged):", "")
    by: dict[int, list[float]] = {}
    for distance, value in off:
        by.setdefault(distance, []).append(value)
    f.table(["layer distance", "mean best-match similarity", "pairs"],
            [[d, sum(v) / len(v), len(v)] for d, v in sorted(by.items())])  # fmt: skip
    f.figures(sim)
    f.finish("Explanation similarity across layers")


if __name__ == "__main__":
    main()
