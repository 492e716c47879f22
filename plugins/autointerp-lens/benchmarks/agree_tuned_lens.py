"""Agreement of our logit lens with the tuned-lens library (0.2) on the same tiny GPT-2.

tuned-lens 0.2 pins old dependencies, so it lives in its own venv::

    python -m venv /tmp/tl-venv
    /tmp/tl-venv/bin/pip install torch==2.13.0 tuned-lens==0.2.0
    python agree_tuned_lens.py --tl-python /tmp/tl-venv/bin/python

This script (run in the project's venv) saves a seeded tiny random GPT-2 and a batch of token ids,
computes our logit-lens KL(final ‖ lens) per lensed site through the adapter contract, then has
tuned-lens's ``LogitLens`` decode the model's hidden states in the other venv, and compares layer by
layer (the embedding and every block but the last; the last is exact by construction).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REFERENCE = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM
from tuned_lens.nn.lenses import LogitLens
where = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(where).eval()
ids = torch.tensor(json.load(open(where + "/ids.json")))
lens = LogitLens.from_model(model)
with torch.no_grad():
    out = model(ids, output_hidden_states=True)
    final = torch.log_softmax(out.logits, -1)
    kls = []
    for idx, h in enumerate(out.hidden_states[:-1]):
        logp = torch.log_softmax(lens(h, idx), -1)
        kls.append(float((final.exp() * (final - logp)).sum(-1).mean()))
json.dump(kls, open(where + "/reference.json", "w"))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tl-python", required=True, help="python of the tuned-lens venv")
    parser.add_argument("--rtol", type=float, default=1e-4)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from autointerp_lens.lens import evaluate

    from autointerp.plugins import PluginManager
    from autointerp.testing.adapters import tiny_model, tiny_tokenizer

    ids = torch.randint(0, 256, (4, 24), generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        tiny_model("gpt2", n_layers=4).save_pretrained(where)
        tiny_tokenizer().save_pretrained(where)
        (where / "ids.json").write_text(json.dumps(ids.tolist()))
        lm = PluginManager().build("model_adapter", "transformers", {"model": str(where)})
        ours = evaluate(lm, [ids])
        subprocess.run([args.tl_python, "-c", REFERENCE, str(where)], check=True)
        ref = json.loads((where / "reference.json").read_text())
    worst = 0.0
    print(f"{'site':14} {'ours KL':>12} {'tuned-lens KL':>14} {'rel. diff':>10}")
    for site, a, b in zip(ours.sites, ours.kl_logit, ref, strict=False):
        rel = abs(a - b) / max(abs(b), 1e-12)
        worst = max(worst, rel)
        print(f"{site:14} {a:12.6f} {b:14.6f} {rel:10.1e}")
    ok = worst <= args.rtol and len(ref) == len(ours.sites) - 1
    print(f"{'agree' if ok else 'DISAGREE'}: max rel. diff {worst:.1e} (rtol {args.rtol})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
