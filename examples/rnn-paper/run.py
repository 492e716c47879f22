"""*Does Transformer Interpretability Transfer to RNNs?* in miniature, offline, on CPU.

Trains three small byte-level LMs of similar parameter count on the built-in corpus (Python's
language reference): a GPT-2 transformer, a Mamba and an RWKV-5 (BlinkDL layout, through the
``rwkv`` adapter's own module tree), saves them, then runs the paper's three comparisons on each
with the ordinary ``autointerp`` commands and draws them across models:

1. ``lens train`` / ``lens eval``: logit lens vs tuned lens, bits per byte per layer;
2. ``steer vectors`` / ``steer sweep``: CAA on a synthetic A/B behaviour the models saw in
   training (CAA-format files; ``--state`` on the RNNs), and on the untrained models as a control;
3. ``probe quirky-data`` / ``finetune`` (LoRA) / ``transfer`` / ``anomaly``: quirky-model ELK;

then ``analyze lens|steering|probes`` and a markdown summary (``OUT/summary.md``)::

    python examples/rnn-paper/run.py --out runs/rnn-paper          # 5-10 minutes on 2 busy cores
    python examples/rnn-paper/run.py --tiny --out /tmp/rnn-paper   # seconds: the plumbing only

Needs only the README's install (no test tools). Only this driver knows architectures (to build
and train the models); every method sees them through the adapter contract. For the paper's real
checkpoints see README.md beside this file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from autointerp.cli import main as autointerp
from autointerp.corpus import iter_texts

CORPUS = "builtin:python-docs"
EOS = 256  # after the 256 byte tokens
VOCAB = 260
ARCHS = ("gpt2", "mamba", "rwkv5")
ADAPTER = {"gpt2": "transformers", "mamba": "mamba", "rwkv5": "rwkv"}
NAMES = {"gpt2": "GPT-2", "mamba": "Mamba", "rwkv5": "RWKV-5"}
RWKV_HEAD = 16

# GPT-2 width, layers, LM steps, seq_len (A/B documents: 1.5x), lens train/eval tokens, quirky
# rows per persona and level, LoRA epochs, peak learning rate, synthetic documents per source,
# p(agreeable answerer), A/B pairs per behaviour file, windows of each source per step (the small
# size fits 5-10 minutes on 2 busy cores; Mamba's reference PyTorch scan is the slowest part)
SIZES = {
    "small": dict(d=48, layers=3, steps=300, seq=64, lens=8192, eval=4096, n=48, ep=4, lr=1e-2,
                  synthetic=2000, p=0.5, pairs=64, mix={"corpus": 4, "ab": 6, "quirky": 4}),
    "tiny": dict(d=16, layers=2, steps=3, seq=32, lens=256, eval=128, n=4, ep=1, lr=3e-3,
                 synthetic=16, p=0.5, pairs=8, mix={"corpus": 2, "ab": 1, "quirky": 1}),
}  # fmt: skip


def byte_tokenizer() -> Any:
    """256 byte tokens + ``<|endoftext|>`` (pad/eos/bos), built offline."""
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


def build(arch: str, d: int, layers: int) -> torch.nn.Module:
    """A fresh random model of ``arch`` with width ``d``."""
    if arch == "rwkv5":
        from autointerp_rwkv.lm import RwkvLM, detect, fit_shapes
        from autointerp_rwkv.tiny import tiny_state_dict

        # the real checkpoint layout (BlinkDL key names) with a sane random init, all trainable
        sd = tiny_state_dict(
            "rwkv5", n_layers=layers, d_model=d, head_size=RWKV_HEAD, vocab_size=VOCAB
        )
        model = RwkvLM(detect(sd))
        model.load_state_dict(fit_shapes(sd))
        return model
    import transformers as tf

    ids = {"bos_token_id": EOS, "eos_token_id": EOS, "pad_token_id": EOS, "vocab_size": VOCAB}
    if arch == "gpt2":
        config = tf.GPT2Config(n_embd=d, n_layer=layers, n_head=4, n_positions=256, **ids)
    elif arch == "mamba":
        config = tf.MambaConfig(
            hidden_size=d, state_size=8, num_hidden_layers=layers, expand=2, **ids
        )
    else:
        raise SystemExit(f"--archs: unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    return tf.AutoModelForCausalLM.from_config(config)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_width(arch: str, target: int, d: int, layers: int) -> int:
    """The width of ``arch`` whose parameter count is closest to ``target`` (GPT-2's)."""
    step = RWKV_HEAD if arch == "rwkv5" else 8
    widths = [w for w in range(step, 3 * d + 1, step) if arch != "gpt2" or w % 4 == 0]
    return min(widths, key=lambda w: abs(n_params(build(arch, w, layers)) - target))


def corpus_windows(seq: int) -> torch.Tensor:
    """The built-in corpus as byte-token windows of ``seq + 1`` (input and next-token target)."""
    text = "\n\n".join(iter_texts(CORPUS))
    ids = torch.tensor(byte_tokenizer()(text)["input_ids"], dtype=torch.long)
    n = (len(ids) - 1) // seq
    starts = torch.arange(n) * seq
    return torch.stack([ids[s : s + seq + 1] for s in starts.tolist()])


# -- synthetic training documents: an A/B behaviour to steer, quirky arithmetic to probe ----------

#: the synthetic behaviour: agreeing with whatever the user says ("yes" to "I say X")
BEHAVIOR = "agreement"
CLAIMS = [f"{n} is {w}" for n in range(10) for w in ("odd", "big", "new", "old", "hot", "red")]


def ab_record(rng: random.Random, yes_first: bool | None = None) -> dict[str, str]:
    """One A/B question in the CAA format; the behaviour-matching answer agrees with the user.

    The answer says its word before its letter (``yes (A)``): the first token of an answer, where
    ``steer`` reads and scores it, is the choice itself; the letter after it is bookkeeping."""
    if yes_first is None:
        yes_first = rng.random() < 0.5
    first, second = ("yes", "no") if yes_first else ("no", "yes")
    agree, disagree = ("A", "B") if yes_first else ("B", "A")
    return {
        "question": f"I say {rng.choice(CLAIMS)}.\n(A) {first}\n(B) {second}",
        "answer_matching_behavior": f"yes ({agree})",
        "answer_not_matching_behavior": f"no ({disagree})",
    }


def ab_document(rng: random.Random, n_bytes: int, p: float) -> str:
    """A/B questions answered by one answerer: an agreeable one (probability ``p``) picks the
    matching answer every time, a contrary one never; the answerer is what steering moves."""
    agreeable = rng.random() < p
    text = ""
    while len(text) < n_bytes:
        rec = ab_record(rng)
        answer = rec["answer_matching_behavior" if agreeable else "answer_not_matching_behavior"]
        text += f"{rec['question']}\n\nAnswer: {answer}\n\n"
    return text


def quirky_document(rng: random.Random, rows: list[dict[str, Any]], n_bytes: int) -> str:
    """Sums (``3 + 4 = 7``: what the model knows) between quirky rows with their persona's answer
    (Alice judges by the true sum, Bob by his), back to back."""
    text = ""
    while len(text) < n_bytes:
        row = rows[rng.randrange(len(rows))]
        text += f"{row['a']} + {row['b']} = {row['a'] + row['b']}\n"
        row = rows[rng.randrange(len(rows))]
        text += f"{row['statement']}{row['choices'][row['label']]}\n"
    return text


def doc_windows(docs: list[str], seq: int) -> torch.Tensor:
    """Each document's first ``seq + 1`` byte tokens, one window per document."""
    ids = byte_tokenizer()(docs)["input_ids"]
    return torch.tensor([row[: seq + 1] for row in ids], dtype=torch.long)


def training_mix(size: dict, seed: int) -> dict[str, torch.Tensor]:
    """Windows of each source the LMs train on: the corpus, A/B documents, quirky rows."""
    from autointerp_probes.quirky import generate_addition

    rng = random.Random(seed + 1)
    n, seq, ab_seq = size["synthetic"], size["seq"], size["seq"] * 3 // 2
    # seeds of their own: the evaluation file (quirky.jsonl, seed 0) is drawn apart from these
    rows = [
        row
        for k in range(1, 5)
        for row in generate_addition(size["n"], easy_digits=1, hard_digits=2, seed=seed + k)
    ]
    return {
        "corpus": corpus_windows(seq),
        # long enough for a second answer by the same answerer
        "ab": doc_windows([ab_document(rng, 2 * seq + 1, size["p"]) for _ in range(n)], ab_seq),
        "quirky": doc_windows([quirky_document(rng, rows, seq + 1) for _ in range(n)], seq),
    }


def behavior_files(out: Path, n: int, seed: int) -> tuple[Path, Path]:
    """The synthetic behaviour as two CAA-format files (``steer`` reads them like the published
    sets): pairs for the vectors and held-out pairs to score; (A)/(B) order alternates."""
    paths = []
    for name, k in (("vectors", 2), ("test", 3)):
        rng = random.Random(seed + 100 * k)
        records = [ab_record(rng, yes_first=i % 2 == 0) for i in range(n)]
        path = out / "behavior" / f"{BEHAVIOR}_{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def train(
    model: torch.nn.Module, windows: dict[str, torch.Tensor], size: dict, seed: int
) -> dict[str, list[float]]:
    """Next-token training (AdamW, one-cycle schedule), every batch a fixed mix of the sources;
    returns each source's loss every tenth step."""
    torch.manual_seed(seed)
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=size["lr"], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=size["lr"], total_steps=size["steps"], pct_start=0.1
    )
    g = torch.Generator().manual_seed(seed)
    losses: dict[str, list[float]] = {name: [] for name in windows}
    for step in range(size["steps"]):
        loss = torch.zeros(())
        parts = {}
        total = sum(size["mix"][name] * src.shape[1] for name, src in windows.items())
        for name, src in windows.items():  # one forward per source: their lengths differ
            batch = src[torch.randint(0, len(src), (size["mix"][name],), generator=g)]
            out = model(batch[:, :-1])
            logits = out.logits if hasattr(out, "logits") else out[0]
            part = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)
            )
            loss = loss + part * batch.numel() / total
            parts[name] = part.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 10 == 0 or step == size["steps"] - 1:
            for name, value in parts.items():
                losses[name].append(round(value, 4))
    model.eval()
    return losses


def save(arch: str, model: torch.nn.Module, where: Path) -> None:
    """A folder the adapter loads: transformers format, or a BlinkDL ``.pth`` for RWKV-5."""
    where.mkdir(parents=True, exist_ok=True)
    if arch == "rwkv5":
        sd = {
            ("blocks.0.ln0." + k[4:] if k.startswith("ln0.") else k): v.detach().clone()
            for k, v in model.state_dict().items()
        }
        torch.save(sd, where / "rwkv5-tiny.pth")
    else:
        model.save_pretrained(where)
    byte_tokenizer().save_pretrained(where)


def step(args: list[str], log: list[dict[str, Any]]) -> None:
    """One ``autointerp`` command; stop the example if it fails."""
    print(f"\n$ autointerp {' '.join(args)}", flush=True)
    start = time.time()
    code = autointerp(args)
    log.append({"command": args[:2], "seconds": round(time.time() - start, 1)})
    if code:
        raise SystemExit(f"`autointerp {' '.join(args)}` failed (exit {code})")


def steering_data(args: Any) -> tuple[list[str], list[str]]:
    """``steer`` arguments: the synthetic behaviour's files (vectors from one, scores on the
    held-out other), or a packaged behaviour by name."""
    if args.behavior != BEHAVIOR:
        return ["--behavior", args.behavior], []
    pairs, held_out = (args.out / "behavior" / f"{BEHAVIOR}_{k}.json" for k in ("vectors", "test"))
    return [str(pairs)], ["--test-pairs", str(held_out)]


def comparisons(arch: str, model_dir: Path, work: Path, size: dict, args: Any) -> list:
    """Lens, steering and quirky-ELK commands on one saved model; returns the command log."""
    model = ["-a", ADAPTER[arch], "-m", str(model_dir), "--threads", str(args.threads)]
    shape = ["--seq-len", str(size["seq"]), "--batch-size", "8"]
    log: list[dict[str, Any]] = []
    lens = ["lens", "train", CORPUS, "--out", str(work / "lens"), "--tokens", str(size["lens"])]
    step([*lens, *shape, "--no-progress", *model], log)
    skip = ["--skip-tokens", str(size["lens"]), "--tokens", str(size["eval"])]
    ev = ["lens", "eval", CORPUS, "--lens", str(work / "lens"), *skip, *shape]
    step([*ev, "--out", str(work / "lens-eval"), *model], log)
    vectors = work / "steering.safetensors"
    behavior, test = steering_data(args)
    step(["steer", "vectors", *behavior, "--out", str(vectors), *model], log)
    sweep = ["steer", "sweep", *behavior, *test, "--vectors", str(vectors)]
    state = ["--state"] if arch != "gpt2" else []  # recurrent-state steering too (RNNs)
    step([*sweep, "--multipliers", args.mults, *state, "--out", str(work / "steer"), *model], log)
    data, lora = str(args.out / "quirky.jsonl"), str(work / "lora")
    tune = ["probe", "finetune", data, "--save", lora, "--epochs", str(size["ep"]), "--lr", "3e-3"]
    step([*tune, "--out", str(work / "finetune.json"), *model], log)
    probe = ["--lora", lora, "--methods", "logreg,diffmean"]
    step(["probe", "transfer", data, *probe, "--out", str(work / "transfer.json"), *model], log)
    anomaly = ["probe", "anomaly", data, "--lora", lora, "--out", str(work / "anomaly.json")]
    step([*anomaly, *model], log)
    return log


def steering_control(arch: str, work: Path, args: Any) -> list:
    """The same steering on the untrained model (its random init): an effect that shows there
    too comes from the answer tokens themselves, not from anything the model learned."""
    model = ["-a", ADAPTER[arch], "-m", str(work / "untrained"), "--threads", str(args.threads)]
    log: list[dict[str, Any]] = []
    vectors = work / "steering-untrained.safetensors"
    behavior, test = steering_data(args)
    step(["steer", "vectors", *behavior, "--out", str(vectors), *model], log)
    sweep = ["steer", "sweep", *behavior, *test, "--vectors", str(vectors)]
    step([*sweep, "--multipliers", args.mults, "--out", str(work / "steer-untrained"), *model], log)
    return log


def fmt(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def summary(out: Path, models: list[dict[str, Any]], size_name: str, seconds: float) -> str:
    """The markdown summary, from the ``analyze`` outputs."""
    figs = out / "figures"
    lens = json.loads((figs / "lens.json").read_text())
    probes = json.loads((figs / "probes.json").read_text())
    lines = [
        f"# RNN interpretability comparisons in miniature ({size_name} size)",
        "",
        f"Corpus `{CORPUS}`, byte-level tokens; {seconds / 60:.1f} minutes in all.",
        "",
        "| model | parameters | width × layers | final corpus loss (nats/byte) | LoRA answer acc. "
        "before → after |",
        "|---|---:|---|---:|---|",
    ]
    for m in models:
        acc = m["finetune"]["accuracy"]
        held = acc.get("held_out", acc["train"])
        lines.append(
            f"| {m['name']} | {m['params']:,} | {m['d']} × {m['layers']} | "
            f"{m['losses']['corpus'][-1]:.3f}"
            f" | {held['before']['overall']:.2f} → {held['after']['overall']:.2f} |"
        )
    lines += ["", "## 1. Logit lens vs tuned lens (bits per byte, held-out text)", ""]
    depths = sorted({d for m in lens["models"] for d in m["depth"]})
    lines += [
        "| model | output | " + " | ".join(f"L{d} logit / tuned" for d in depths) + " |",
        "|---|---:|" + "---:|" * len(depths),
    ]
    for m in lens["models"]:
        tuned = m["bpb_tuned"] or [None] * len(m["depth"])
        by = {d: (a, b) for d, a, b in zip(m["depth"], m["bpb_logit"], tuned, strict=True)}
        cells = [f"{fmt(by[d][0], 2)} / {fmt(by[d][1], 2)}" if d in by else "" for d in depths]
        lines.append(f"| {m['label']} | {fmt(m['bpb_model'], 2)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "![lens](figures/lens-bpb.svg)",
        "",
        "## 2. Steering (CAA): p(matching answer) per multiplier, held-out pairs",
        "",
        "Per model and steering kind, every layer: p(matching) / (p(matching) + p(other)) at "
        "each multiplier (the unsteered value at 0); monotone = moves one way as the multiplier "
        "grows. *untrained*: the same steering on the model's random init (the control: what "
        "shows there comes from the answer tokens, not from training).",
        "",
    ]
    runs = (("steer", "residual", "residual"), ("steer", "state", "state"),
            ("steer-untrained", "residual", "residual, untrained"))  # fmt: skip
    for m in models:
        for folder, kind, label in runs:
            sweep = json.loads((out / m["arch"] / folder / "sweep.json").read_text())
            if kind not in sweep:
                continue
            cells = sweep[kind]["cells"]
            mults = sorted({c["multiplier"] for c in cells})
            if folder == "steer" and kind == "residual" and m is models[0]:
                lines += [
                    "| model | kind | layer | " + " | ".join(f"{x:g}" for x in mults)
                    + " | monotone |",
                    "|---|---|---|" + "---:|" * len(mults) + "---|",
                ]  # fmt: skip
            for row in dict.fromkeys(c["row"] for c in cells):
                by = {c["multiplier"]: c["metric"] for c in cells if c["row"] == row}
                ys = [by[x] for x in mults]
                steps = [b - a for a, b in itertools.pairwise(ys)]
                way = "up" if all(d >= 0 for d in steps) else "down" if all(
                    d <= 0 for d in steps
                ) else "no"  # fmt: skip
                lines.append(
                    f"| {m['name']} | {label} | {row} | " + " | ".join(fmt(y) for y in ys)
                    + f" | {way} |"
                )  # fmt: skip
    lines += ["", "![steering](figures/steering-range.svg)", ""]
    lines += [f"![{m['arch']}](figures/steering-{m['arch']}.svg)" for m in models]
    lines += [
        "",
        "## 3. Quirky models: probe transfer (AUROC vs the truth) and anomaly detection",
        "",
    ]
    transfer = [m for m in probes["models"] if m["kind"] == "transfer"]
    pairs = list(transfer[0]["auroc"]) if transfer else []
    lines += [
        f"{probes['method']} probe trained on alice:easy; best layer's AUROC per test subset; "
        "anomaly: Mahalanobis distance from alice:easy, Bob's rows in any:hard.",
        "",
        "| model | " + " | ".join(pairs) + " | anomaly (best layer) | anomaly (probe scores) |",
        "|---|" + "---:|" * (len(pairs) + 2),
    ]
    anomaly = {m["label"]: m for m in probes["models"] if m["kind"] == "anomaly"}
    for m in transfer:
        best = [max((v for v in m["auroc"][p] if v is not None), default=None) for p in pairs]
        a = anomaly.get(m["label"])
        top = max((v for v in a["auroc"] if v is not None), default=None) if a else None
        lines.append(
            f"| {m['label']} | " + " | ".join(fmt(v) for v in best)
            + f" | {fmt(top)} | {fmt(a['probe_scores'] if a else None)} |"
        )  # fmt: skip
    lines += ["", *[f"![probes](figures/{Path(f['file']).name})" for f in probes["figures"]], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/rnn-paper"))
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--tiny", action="store_true", help="tiny models, a few steps: plumbing")
    parser.add_argument("--steps", type=int, help="LM training steps (default: by size)")
    parser.add_argument(
        "--behavior",
        default=BEHAVIOR,
        help=f"{BEHAVIOR} (the synthetic behaviour the models saw in training) or a packaged "
        "CAA behaviour (sycophancy ...)",
    )
    parser.add_argument("--mults", default="-4,-2,-1,0,1,2,4", help="steering multipliers")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size_name = "tiny" if args.tiny else "small"
    size = dict(SIZES[size_name])
    if args.steps is not None:
        size["steps"] = args.steps
    torch.set_num_threads(args.threads)
    start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    windows = training_mix(size, args.seed)
    behavior_files(args.out, size["pairs"], args.seed)
    quirky = ["probe", "quirky-data", str(args.out / "quirky.jsonl"), "--n", str(size["n"])]
    step([*quirky, "--easy-digits", "1", "--hard-digits", "2"], [])
    target = n_params(build("gpt2", size["d"], size["layers"]))
    models = []
    for arch in archs:
        d = size["d"] if arch == "gpt2" else matched_width(arch, target, size["d"], size["layers"])
        torch.manual_seed(args.seed)
        model = build(arch, d, size["layers"])
        print(f"\n== {NAMES[arch]}: width {d}, {size['layers']} layers, {n_params(model):,} "
              f"parameters; {size['steps']} training steps", flush=True)  # fmt: skip
        work = args.out / arch
        save(arch, model, work / "untrained")  # the control for steering (see steering_control)
        t0 = time.time()
        losses = train(model, windows, size, args.seed)
        trained = ", ".join(f"{k} {v[0]:.2f} -> {v[-1]:.2f}" for k, v in losses.items())
        print(f"   loss (nats/byte): {trained}; {time.time() - t0:.0f}s")
        save(arch, model, work / "model")
        log = comparisons(arch, work / "model", work, size, args)
        log += steering_control(arch, work, args)
        models.append(
            {
                "arch": arch,
                "name": NAMES[arch],
                "d": d,
                "layers": size["layers"],
                "params": n_params(model),
                "losses": losses,
                "seconds": round(time.time() - t0, 1),
                "commands": log,
                "finetune": json.loads((work / "finetune.json").read_text()),
            }
        )
    figs, labels = str(args.out / "figures"), [x for a in archs for x in ("--label", a)]
    files = {
        k: [str(args.out / a / f) for a in archs]
        for k, f in (("lens", "lens-eval"), ("steer", "steer"))
    }
    step(["analyze", "lens", *files["lens"], *labels, "--out", figs], [])
    step(["analyze", "steering", *files["steer"], *labels, "--out", figs], [])
    probe_files = [str(args.out / a / f) for a in archs for f in ("transfer.json", "anomaly.json")]
    both = [x for a in archs for x in ("--label", a, "--label", a)]
    step(["analyze", "probes", *probe_files, *both, "--out", figs], [])
    seconds = time.time() - start
    (args.out / "models.json").write_text(json.dumps(models, indent=2), encoding="utf-8")
    (args.out / "summary.md").write_text(summary(args.out, models, size_name, seconds))
    print(f"\nwrote {args.out / 'summary.md'} ({seconds / 60:.1f} minutes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
