"""A miniature of "Does Transformer Interpretability Transfer to RNNs?", offline, on CPU.

Trains small matched byte-level language models — GPT-2, Mamba and RWKV with the same width, depth
and data — on a local corpus (Python's own language reference), then runs the *same* method code on
all three through the adapter contract: logit lens vs tuned lens (KL to the final output per layer)
and a CAA steering sweep. Prints one table side by side.

    python three_architectures.py --steps 300 --out runs/three-arch     # a few minutes per model

Only this driver knows architectures (to build and train the models); the methods do not.
Needs only the README's install (no test tools).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import torch
from autointerp_lens.lens import evaluate
from autointerp_lens.train import train_tuned_lens
from autointerp_steering.caa import caa_vectors, sweep
from autointerp_steering.data import ContrastPair

from autointerp.corpus import iter_texts, token_windows
from autointerp.plugins import PluginManager

ADAPTER = {"gpt2": "transformers", "mamba": "mamba", "rwkv": "rwkv"}
EOS = 256  # after the 256 byte tokens
VOCAB = 260


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens + ``<|endoftext|>``), built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = EOS
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = "<|endoftext|>"
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=special, eos_token=special, pad_token=special
    )


def lm_config(arch: str, n_layers: int, d_model: int, seq_len: int) -> Any:
    """Matched small configs: same width, depth and vocabulary for every architecture."""
    import transformers as tf

    ids = {"bos_token_id": EOS, "eos_token_id": EOS, "pad_token_id": EOS, "vocab_size": VOCAB}
    if arch == "gpt2":
        return tf.GPT2Config(
            n_embd=d_model, n_layer=n_layers, n_head=4, n_positions=max(128, seq_len), **ids
        )
    if arch == "mamba":
        return tf.MambaConfig(
            hidden_size=d_model, state_size=8, num_hidden_layers=n_layers, expand=2, **ids
        )
    if arch == "rwkv":
        return tf.RwkvConfig(
            hidden_size=d_model,
            attention_hidden_size=d_model,
            intermediate_size=2 * d_model,
            num_hidden_layers=n_layers,
            context_length=max(128, seq_len),
            rescale_every=0,
            **ids,
        )
    raise SystemExit(f"--archs: unknown architecture {arch!r}; choose from {', '.join(ADAPTER)}")


def corpus_file(out: Path) -> Path:
    from pydoc_data.topics import topics

    path = out / "corpus.txt"
    path.write_text("\n\n".join(t.strip() for _, t in sorted(topics.items())), encoding="utf-8")
    return path


def byte_windows(path: Path, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train/test windows of the corpus under the byte-level tokenizer the models share."""
    ids = byte_tokenizer()(path.read_text(encoding="utf-8"))["input_ids"]
    data = torch.tensor(ids, dtype=torch.long)
    n = (len(data) // seq_len) * seq_len
    windows = data[:n].view(-1, seq_len)
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(seed))
    windows = windows[order]
    cut = max(1, len(windows) // 20)
    return windows[cut:], windows[:cut]


def train_lm(arch: str, train: torch.Tensor, args: argparse.Namespace) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(args.seed)
    config = lm_config(arch, args.layers, args.d_model, args.seq_len)
    model = AutoModelForCausalLM.from_config(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    model.train()
    g = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, len(train), (args.batch_size,), generator=g)
        loss = model(input_ids=train[idx], labels=train[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"  {arch} step {step:4d} loss {loss.item():.3f} ({time.time() - start:.0f}s)")
    return model.eval()


def contrast_pairs(n: int, seed: int) -> list[ContrastPair]:
    """Keyword pairs from the corpus's own vocabulary: steer towards "True" over "False"."""
    rng = random.Random(seed)
    stems = ["The result is", "It returns", "The value is", "This evaluates to", "x is"]
    return [ContrastPair(f"{rng.choice(stems)} ", "True", "False") for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/three-arch"))
    parser.add_argument("--archs", default="gpt2,mamba,rwkv")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lens-steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = corpus_file(args.out)
    train, test = byte_windows(corpus, args.seq_len, args.seed)
    pm = PluginManager()
    pairs = contrast_pairs(20, args.seed)
    rows = []
    for arch in args.archs.split(","):
        print(f"{arch}: training a {args.layers}-layer d={args.d_model} byte-level LM")
        model = train_lm(arch, train, args)
        where = args.out / arch
        model.save_pretrained(where)
        byte_tokenizer().save_pretrained(where)
        # from here on, only the adapter contract: the same code for every architecture
        lm = pm.build("model_adapter", ADAPTER[arch], {"model": str(where)})
        lens_train = token_windows(lm, iter_texts(corpus), seq_len=args.seq_len, batch_size=8)
        lens = train_tuned_lens(
            lm, lens_train, max_tokens=args.lens_steps * 8 * args.seq_len, lr=3e-3, progress=False
        ).lens
        report = evaluate(lm, test[:32].split(8), lens)
        vecs = caa_vectors(lm, pairs)
        mid = lm.n_layers // 2
        result = sweep(lm, pairs, vecs, layers=[mid], multipliers=[-4, 0, 4])
        low, base, high = result.grid[0].tolist()
        rows.append(
            {
                "arch": arch,
                "bpb": report.bits_per_byte(report.ce_model),
                "kl_logit": sum(report.kl_logit[:-1]) / (len(report.sites) - 1),
                "kl_tuned": sum(report.kl_tuned[:-1]) / (len(report.sites) - 1),
                "steer": (low, base, high),
                "per_layer": report.rows(),
            }
        )
    print()
    print(f"{'':18}" + "".join(f"{r['arch']:>12}" for r in rows))
    print(f"{'LM bits/byte':18}" + "".join(f"{r['bpb']:12.3f}" for r in rows))
    print(f"{'mean KL logit':18}" + "".join(f"{r['kl_logit']:12.3f}" for r in rows))
    print(f"{'mean KL tuned':18}" + "".join(f"{r['kl_tuned']:12.3f}" for r in rows))
    for i, m in enumerate((-4, 0, 4)):
        label = f"steer x{m:+d} (mid)"
        print(f"{label:18}" + "".join(f"{r['steer'][i]:12.3f}" for r in rows))
    (args.out / "comparison.json").write_text(json.dumps(rows, indent=2))
    print(f"\nper-layer numbers in {args.out / 'comparison.json'}")


if __name__ == "__main__":
    main()
