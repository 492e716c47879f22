"""LoRA fine-tuning of an adapter's model into a quirky model (peft), and loading it back.

The model learns to answer each statement with its persona's label: the loss is the two-way
cross-entropy between the log-probabilities of the two answer continuations (``choices``, e.g.
" False" / " True", any number of tokens each). LoRA goes on every linear layer except the
unembedding. After training (and after loading) the LoRA deltas are merged into the base weights,
so every site hook the adapter set on the original modules sees the fine-tuned model.

Saved as a folder: ``adapter_config.json`` (peft's LoRA config), ``adapter_model.safetensors``
(the LoRA weights only) and ``quirky.json`` (how it was trained, with accuracies).

Any adapter whose ``model`` attribute is a torch module returning logits (``.logits`` or a tensor)
for ``input_ids`` works: the transformers, Mamba and RWKV adapters do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.errors import AutointerpError

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import ModelAdapter
    from autointerp_probes.quirky import QuirkyExample


class FinetuneError(AutointerpError):
    """The model cannot be fine-tuned or the LoRA weights cannot be loaded."""


def torch_module(adapter: ModelAdapter) -> torch.nn.Module:
    import torch

    model = getattr(adapter, "model", None)
    if not isinstance(model, torch.nn.Module):
        raise FinetuneError(
            f"adapter '{adapter.name}' exposes no torch module as `.model`: "
            "LoRA fine-tuning needs one"
        )
    return model


def _require_peft() -> Any:
    try:
        import peft
    except ImportError:
        raise FinetuneError("LoRA fine-tuning needs peft: `pip install peft==0.21.2`") from None
    return peft


def _peft_accepts(config: Any, model: torch.nn.Module, leaf: str) -> bool:
    """peft's own refusal list (it rejects e.g. Mamba's ``out_proj``), asked per module."""
    from peft.tuners import tuners_utils

    check = getattr(tuners_utils, "_check_lora_target_modules_mamba", None)
    if check is None:
        return True
    try:
        check(config, model, leaf)
    except ValueError:
        return False
    return True


def lora_targets(
    model: torch.nn.Module, config: Any = None, vocab_size: int | None = None
) -> list[str]:
    """Full names of the linear layers (``nn.Linear``, GPT-2's ``Conv1D``) but the unembedding
    (the model's output embeddings, or any layer with ``vocab_size`` outputs), and but those peft
    refuses for this model (given the LoRA ``config``)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = []
    for name, module in model.named_modules():
        linear = isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"
        leaf = name.rpartition(".")[2]
        width = getattr(module, "out_features", None) or getattr(module, "nf", None)
        unembedding = module is head or (vocab_size is not None and width == vocab_size)
        wanted = linear and not unembedding and bool(name)
        if wanted and (config is None or _peft_accepts(config, model, leaf)):
            names.append(name)
    if not names:
        raise FinetuneError(f"{type(model).__name__}: no linear layers to put LoRA on")
    return names


def _merge(model: torch.nn.Module) -> None:
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer) and not module.merged:
            module.merge()


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    import inspect

    # no cache: RWKV and Mamba update their cached state in place, which autograd refuses
    takes_cache = "use_cache" in inspect.signature(model.forward).parameters
    kwargs = {"use_cache": False} if takes_cache else {}
    out = model(input_ids=ids, **kwargs)
    return out.logits if hasattr(out, "logits") else out


def _choice_ids(adapter: ModelAdapter, choice: str) -> list[int]:
    ids = adapter.tokenizer(choice, add_special_tokens=False)["input_ids"]
    if not ids:
        raise FinetuneError(f"answer {choice!r} tokenizes to nothing")
    return list(ids)


def choice_logprobs(
    adapter: ModelAdapter, model: torch.nn.Module, examples: Sequence[QuirkyExample]
) -> torch.Tensor:
    """``[n, 2]``: log-probability of each example's two answers after its statement, under the
    caller's grad mode. One forward over ``2n`` right-padded sequences."""
    import torch

    batch = adapter.tokenize([e.statement for e in examples])
    rows = zip(batch.input_ids, batch.attention_mask, strict=True)
    prompts = [row[mask.bool()].tolist() for row, mask in rows]
    seqs, starts, answers = [], [], []
    cache: dict[str, list[int]] = {}
    for prompt, e in zip(prompts, examples, strict=True):
        for choice in e.choices:
            ans = cache.setdefault(choice, _choice_ids(adapter, choice))
            seqs.append(prompt + ans)
            starts.append(len(prompt))
            answers.append(len(ans))
    width = max(map(len, seqs))
    device = next(model.parameters()).device
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):  # one row per sequence, not per token
        ids[i, : len(s)] = torch.tensor(s)
    ids = ids.to(device)
    logp = torch.log_softmax(_logits(model, ids)[:, :-1].float(), -1)
    token_lp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # [2n, width-1]: lp of token t+1
    pos = torch.arange(width - 1, device=device)[None]
    start = torch.tensor(starts, device=device)[:, None]
    length = torch.tensor(answers, device=device)[:, None]
    answer_mask = (pos >= start - 1) & (pos < start - 1 + length)
    return (token_lp * answer_mask).sum(-1).view(len(examples), 2)


@dataclass
class Accuracy:
    """Answers vs the persona's labels, per ``persona:level`` cell and overall."""

    overall: float
    cells: dict[str, float]
    margin: float  # mean log-odds of the labelled answer over the other


def answer_accuracy(
    adapter: ModelAdapter, examples: Sequence[QuirkyExample], *, batch_size: int = 32
) -> Accuracy:
    """How often the model prefers the persona's labelled answer."""
    import torch

    model = torch_module(adapter)
    with torch.no_grad():
        lp = torch.cat(
            [
                choice_logprobs(adapter, model, examples[i : i + batch_size])
                for i in range(0, len(examples), batch_size)
            ]
        )
    labels = torch.tensor([e.label for e in examples], device=lp.device)
    odds = lp[:, 1] - lp[:, 0]
    signed = torch.where(labels.bool(), odds, -odds)
    right = (signed > 0).cpu()
    cells: dict[str, list[bool]] = {}
    for e, ok in zip(examples, right.tolist(), strict=True):
        cells.setdefault(f"{e.character.lower()}:{e.level}", []).append(ok)
    return Accuracy(
        float(right.float().mean()),
        {k: sum(v) / len(v) for k, v in sorted(cells.items())},
        float(signed.mean()),
    )


def add_lora(
    adapter: ModelAdapter, *, rank: int = 8, alpha: float = 16.0, targets: Sequence[str] = ()
) -> Any:
    """Put fresh LoRA layers on the adapter's model (identity at first); the LoRA config."""
    peft = _require_peft()
    model = torch_module(adapter)
    if any(isinstance(m, peft.tuners.lora.LoraLayer) for m in model.modules()):
        raise FinetuneError("this model already carries LoRA layers; build a fresh adapter")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=["-"])
    vocab = getattr(adapter, "vocab_size", None)
    config.target_modules = list(targets) or lora_targets(model, config, vocab)
    _inject(peft, config, model)
    return config


def _inject(peft: Any, config: Any, model: torch.nn.Module) -> None:
    import warnings

    with warnings.catch_warnings():
        # GPT-2's Conv1D: peft notes it transposes (fan_in_fan_out) and does the right thing
        warnings.filterwarnings("ignore", message="fan_in_fan_out", category=UserWarning)
        peft.inject_adapter_in_model(config, model)


def finetune(
    adapter: ModelAdapter,
    examples: Sequence[QuirkyExample],
    *,
    rank: int = 8,
    alpha: float = 16.0,
    lr: float = 3e-3,
    epochs: int = 3,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[Any, list[float]]:
    """Fine-tune the adapter's model in place with LoRA; returns (LoRA config, loss per epoch).

    The LoRA deltas end merged into the model (see the module docstring)."""
    import torch

    if not examples:
        raise FinetuneError("no examples to fine-tune on")
    config = add_lora(adapter, rank=rank, alpha=alpha)
    model = torch_module(adapter)
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
        if "lora_" in name:
            params.append(p)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    labels = torch.tensor([e.label for e in examples])
    g = torch.Generator().manual_seed(seed)
    losses = []
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(examples), generator=g).tolist()
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                lp = choice_logprobs(adapter, model, [examples[i] for i in idx])
                loss = torch.nn.functional.cross_entropy(lp, labels[idx].to(lp.device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            losses.append(total / len(examples))
    for p in model.parameters():
        p.requires_grad_(False)
    _merge(model)
    return config, losses


def save_lora(adapter: ModelAdapter, config: Any, folder: str | Path, info: dict[str, Any]) -> Path:
    """Write the LoRA config and weights, and ``quirky.json`` (``info``), to ``folder``."""
    from safetensors.torch import save_file

    peft = _require_peft()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = torch_module(adapter)
    state = peft.get_peft_model_state_dict(model)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, folder / WEIGHTS)
    config.save_pretrained(str(folder))
    (folder / "quirky.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return folder


WEIGHTS = "adapter_model.safetensors"


def load_lora(adapter: ModelAdapter, folder: str | Path) -> dict[str, Any]:
    """Put the saved LoRA of ``folder`` on the adapter's model (merged); returns ``quirky.json``."""
    from safetensors.torch import load_file

    peft = _require_peft()
    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() or not (folder / "adapter_config.json").is_file():
        raise FinetuneError(
            f"--lora {folder}: expected adapter_config.json and {WEIGHTS} "
            "(written by `autointerp probe finetune --save`)"
        )
    config = peft.LoraConfig.from_pretrained(str(folder))
    model = torch_module(adapter)
    try:
        _inject(peft, config, model)
        result = peft.set_peft_model_state_dict(model, load_file(folder / WEIGHTS))
    except (ValueError, RuntimeError, KeyError) as exc:
        raise FinetuneError(f"--lora {folder}: does not fit this model ({exc})") from None
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise FinetuneError(f"--lora {folder}: weights for modules this model lacks: {missing[:3]}")
    for p in model.parameters():
        p.requires_grad_(False)
    _merge(model)
    info = folder / "quirky.json"
    return json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
