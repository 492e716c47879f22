"""The bench's LLM judge with the packaged 1.5B instead of the run's 0.5B (answers cached in the
run's store under the 1.5B's model name): is the 0.5B judge's all-yes a model-size effect?"""

import json
import sys

from autointerp_planted.bench import bench_planted

run = sys.argv[1]
r = bench_planted(
    run,
    embed=False,
    judge=True,
    judge_llm={"name": "local", "model": "qwen2.5-coder-1.5b-instruct", "threads": 1},
)
print(
    json.dumps(
        {
            "correctness": r["correctness"],
            "latents": [
                [x["latent"], x["mode"], x["truth"], x["explanation"], x["judge"]]
                for x in r["latents"]
            ],
        },
        indent=0,
    )
)
