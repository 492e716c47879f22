#!/bin/sh
# usage: make_config.sh MODE RUN_DIR "INDICES" N_TRAIN N_TEST N_NEG [MODEL]
# environment (optional): NAME (run name, default planted-MODE), CONCURRENCY (latents in flight,
# default 2), PARALLEL (llama.cpp slots, default 2), SCORERS (default "detection fuzzing")
mode=$1; dir=$2; idx=$3; ntr=$4; nte=$5; nneg=$6; model=${7:-qwen2.5-coder-0.5b-instruct}
cat <<TOML
name = "${NAME:-planted-$mode}"
run_dir = "$dir"
mode = "$mode"
seed = 0
threads = 1
concurrency = ${CONCURRENCY:-2}

[model]
name = "transformers"
model = "smollm2-135m"

[feature_source]
name = "planted"
set = "default"
seed = 0

[corpus]
path = "builtin:python-docs"
ctx_len = 64
n_tokens = 16384

[latents]
indices = [$idx]
n_train = $ntr
n_test = $nte
n_negatives = $nneg

[explainer]
name = "default"

[llm]
name = "local"
model = "$model"
threads = 1
parallel = ${PARALLEL:-2}
TOML
for scorer in ${SCORERS:-detection fuzzing}; do
  printf '\n[[scorers]]\nname = "%s"\n' "$scorer"
done
