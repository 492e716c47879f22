"""Finding (c): are SAE latents easier to explain than the model's own neurons?

The paper finds SAE latents more interpretable than neurons of the same layer. This script
trains a small TopK SAE on layer L's residual stream with ``autointerp sae train`` (or takes
``--sae FILE``: a bigger SAE, sparsify or SAELens files), then runs the SAE's latents and layer
L's top-k MLP neurons (``top_k`` = the SAE's k: as sparse per token) with the same corpus, sizes
and seed, and calls ``autointerp analyze distributions`` and ``deciles`` over both runs and
``autointerp compare`` (medians, bootstrap intervals, permutation and Mann-Whitney tests).

    python examples/paper-findings/sae_vs_neurons.py           # offline, ~10 minutes on 2 CPU cores
    python examples/paper-findings/sae_vs_neurons.py --sae-tokens 1000000 --sae-expansion 8 \\
        --config examples/paper-findings/served.toml --llm-base-url http://localhost:8000/v1 \\
        --llm-model Qwen/Qwen2.5-7B-Instruct --latents 200

examples/sae-vs-neurons/ holds the same comparison as two hand-written configs.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from findings import Finding, cli, mean_scores


def main(argv: list[str] | None = None) -> None:
    f = Finding("sae-vs-neurons", __doc__, latents=6, scorers="detection")
    p = f.parser
    p.add_argument("--layer", type=int, default=6, help="neurons of mlp L; SAE on resid_post.L")
    p.add_argument("--sae", type=Path, default=None, help="an SAE file or folder (else trained)")
    p.add_argument("--k", type=int, default=32, help="SAE k, and the neurons' top_k")
    p.add_argument("--sae-tokens", type=int, default=32768, help="SAE training tokens")
    p.add_argument("--sae-expansion", type=int, default=4, help="SAE latents per model dimension")
    p.add_argument("--sae-batch-size", type=int, default=1024, help="tokens per SAE step")
    p.add_argument("--sae-passes", type=int, default=4, help="SAE steps per activation buffer")
    args = f.parse(argv)
    layer = args.layer
    sae = args.sae or f.out / f"sae-resid_post.{layer}.safetensors"
    if args.sae is None and not sae.exists():
        train = ["sae", "train", "--site", f"resid_post.{layer}", "--k", str(args.k),
                 "--expansion", str(args.sae_expansion), "--tokens", str(args.sae_tokens),
                 "--batch-size", str(args.sae_batch_size), "--passes", str(args.sae_passes),
                 "--buffer-tokens", str(min(max(args.sae_tokens, args.sae_batch_size), 65536)),
                 "--lr", "1e-3", "--no-progress", "--out", sae.as_posix()]  # fmt: skip
        probe = f.config("probe", f.out)  # the subject model and corpus the runs will use
        if probe["model"].get("model"):
            train += ["--model", str(probe["model"]["model"])]
        train += ["--corpus", str(probe["corpus"]["path"])]
        if args.dry_run:
            f.say("would run: autointerp " + shlex.join(train))
        else:
            f.say("training the SAE: autointerp " + shlex.join(train))
            print(cli(*train), end="")
    runs = []
    sources = {
        "sae": {"name": "sae", "path": sae.as_posix()},
        "neurons": {"name": "neurons", "layer": layer, "top_k": args.k},
    }
    configs = {}
    for kind, source in sources.items():
        configs[kind] = f.config(f"{kind}-l{layer}", f.runs / kind, feature_source=source)
        runs.append(f.run(configs[kind]))
    dist = f.analyze("distributions", runs)
    deciles = f.analyze("deciles", runs)
    compared = f.compare(runs)
    if dist is None or deciles is None or compared is None:
        f.finish("")
        return
    lat = configs["sae"]["latents"]
    f.add(
        f"SAE latents (`{sae.as_posix()}`, resid_post.{layer}) vs top-{args.k} MLP neurons of "
        f"layer {layer}; first {lat['n']} latents of each firing >= {lat['min_activations']} "
        f"times; {lat['n_train']} explainer examples, {lat['n_test']} held-out activating, "
        f"{lat['n_negatives']} non-activating; mode `{configs['sae'].get('mode', 'parity')}`, "
        f"LLM `{configs['sae']['llm']['name']}`.",
        "",
        "Headline score per latent (`autointerp compare`: median with 95 % bootstrap interval; "
        "tests vs the SAE run):",
        "",
    )
    rows = []
    for scorer, block in compared["scorers"].items():
        for kind, row in zip(sources, block["runs"], strict=True):
            vs = row.get("vs_first") or {}
            ci = row["ci"]
            rows.append([kind, scorer, row["n"], row["mean"], row["median"],
                         f"[{_f(ci[0])}, {_f(ci[1])}]", vs.get("p_permutation"),
                         vs.get("p_mann_whitney")])  # fmt: skip
    f.table(["source", "scorer", "latents", "mean", "median", "95 % CI", "p (perm.)",
             "p (Mann-Whitney)"], rows)  # fmt: skip
    assert mean_scores(dist)  # the figure's data: same numbers as compare's means
    q = int(lat.get("n_quantiles", 10))
    rows = []
    for kind, block in zip(sources, deciles["runs"], strict=True):
        for scorer, b in block["scorers"].items():
            cells = [b["non_activating"]] + [
                b["quantiles"].get(str(i), {"accuracy": None, "n": 0}) for i in range(q)
            ]
            rows.append([kind, scorer, *(c["accuracy"] for c in cells),
                         sum(c["n"] for c in cells)])  # fmt: skip
    f.add("Accuracy per activation quantile (1 = weakest):", "")
    f.table(["source", "scorer", "non-act.", *(str(i + 1) for i in range(q)), "n"], rows)
    f.figures(dist, deciles)
    f.finish("SAE latents vs MLP neurons")


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    main()
