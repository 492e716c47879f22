"""Quirky-model ELK end to end: dataset, LoRA fine-tune, transfer probes, anomaly detection.

Needs only the README's install (autointerp, this plugin, peft). On a real model::

    python examples/quirky_elk.py -a transformers -m HuggingFaceTB/SmolLM2-135M --n 500 --epochs 3

Every step is an ``autointerp probe`` command; results land in ``--workdir`` as JSON (and the
fine-tuned LoRA in ``lora/``). A tiny random model only shows the plumbing: its AUROCs mean nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autointerp.cli import main as autointerp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-a", "--adapter", default="transformers")
    parser.add_argument("-m", "--model", required=True, help="hub name or local path")
    parser.add_argument("--workdir", type=Path, default=Path("runs/quirky-elk"))
    parser.add_argument("--n", type=int, default=200, help="rows per persona and level")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    work, model = args.workdir, ["-a", args.adapter, "-m", args.model]
    data, lora = str(work / "quirky.jsonl"), str(work / "lora")
    steps = [
        ["probe", "quirky-data", data, "--n", str(args.n)],
        ["probe", "finetune", data, "--save", lora, "--epochs", str(args.epochs), *model],
        ["probe", "transfer", data, "--lora", lora, "--out", str(work / "transfer.json"), *model],
        ["probe", "anomaly", data, "--lora", lora, "--out", str(work / "anomaly.json"), *model],
    ]
    for step in steps:
        code = autointerp(step)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
