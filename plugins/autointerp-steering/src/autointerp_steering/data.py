"""Contrast-pair datasets and the token bookkeeping every steering method shares.

A contrast pair is a prompt and two answers. Two record formats, in a JSON array (``.json``, as
the CAA datasets are published) or JSON lines (``.jsonl``)::

    {"prompt": "...Choices:\\n(A) Yes\\n(B) No\\nAnswer: (", "positive": "A", "negative": "B"}
    {"question": "...Choices:\\n(A) Yes\\n(B) No", "answer_matching_behavior": "(A)",
     "answer_not_matching_behavior": "(B)"}

``positive`` / ``answer_matching_behavior`` is the answer that matches the behaviour being steered
towards. A ``prompt`` is used as is; a CAA ``question`` is placed in a template first (``plain``:
``question + "\\n\\nAnswer: "``, ``chat``: the tokenizer's chat template, or a text with
``{question}``). The *answer token* is the first token where ``prompt + positive`` and ``prompt +
negative`` tokenize differently (the letter, for ``(A)`` / ``(B)``); everything before it is the
pair's context, so both answers are scored as next-token probabilities after exactly the same
tokens, whatever the tokenizer merges.

Batches are right-padded: in a causal model (transformer or RNN alike) the outputs at real tokens
never depend on padding that comes after them, so this is exact for any adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.errors import AutointerpError

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import ModelAdapter

ALIASES = {
    "prompt": ("prompt", "question"),
    "positive": ("positive", "answer_matching_behavior"),
    "negative": ("negative", "answer_not_matching_behavior"),
}


class DatasetError(AutointerpError):
    """A dataset file is malformed (names the file, line and field)."""


@dataclass(frozen=True)
class ContrastPair:
    prompt: str
    positive: str
    negative: str


@dataclass(frozen=True)
class PairTokens:
    """A tokenized pair: the shared context and the first token of each answer."""

    context: tuple[int, ...]
    positive: int
    negative: int


def _answer(record: dict[str, Any], name: str, where: str) -> str:
    """A string field; CAA's source datasets sometimes hold a one-element list."""
    for key in ALIASES[name]:
        if key in record:
            value = record[key]
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if not isinstance(value, str):
                raise DatasetError(f"{where}: field '{key}' must be a string")
            return value
    raise DatasetError(f"{where}: missing field '{name}' (or {', '.join(ALIASES[name][1:])})")


#: the CAA question format: ``question`` holds the question and its choices, the answers are
#: ``(A)`` / ``(B)``; the template puts them where the model answers
PLAIN_TEMPLATE = "{question}\n\nAnswer: "
#: open-ended questions under the plain template
OPEN_TEMPLATE = "Question: {question}\nAnswer:"


def format_question(
    question: str, template: str, tokenizer: Any = None, *, open_ended: bool = False
) -> str:
    """``question`` placed in ``template``: ``plain``, ``chat`` (the tokenizer's chat template,
    the question as the user turn, the assistant turn opened) or any text with ``{question}``."""
    if template == "plain":
        template = OPEN_TEMPLATE if open_ended else PLAIN_TEMPLATE
    if template == "chat":
        apply = getattr(tokenizer, "apply_chat_template", None)
        if apply is None or not getattr(tokenizer, "chat_template", None):
            raise DatasetError(
                "--template chat: this model's tokenizer has no chat template; use --template "
                "plain or a text with {question}"
            )
        messages = [{"role": "user", "content": question}]
        return str(apply(messages, tokenize=False, add_generation_prompt=True))
    if "{question}" not in template:
        raise DatasetError(
            f"--template {template!r}: expected plain, chat or a text containing {{question}}"
        )
    return template.replace("{question}", question)


def pair_from_record(
    record: dict[str, Any], where: str, template: str = "plain", tokenizer: Any = None
) -> ContrastPair:
    """A native record (``prompt`` holds the whole text before the answer) or a CAA record
    (``question`` is placed in ``template``)."""
    positive = _answer(record, "positive", where)
    negative = _answer(record, "negative", where)
    if "prompt" in record:
        prompt = _answer(record, "prompt", where)
    else:
        question = _answer(record, "prompt", where)
        prompt = format_question(question, template, tokenizer)
    return ContrastPair(prompt, positive, negative)


def load_pairs(
    source: str | Path, *, template: str = "plain", tokenizer: Any = None
) -> list[ContrastPair]:
    """Contrast pairs from a file (JSON array or JSONL), ``hf:NAME[:SPLIT]``, a standard
    behaviour name (its packaged sample) or ``caa:NAME[:SPLIT]`` (see :mod:`.behaviors`)."""
    from autointerp_steering.behaviors import read_records

    pairs = [
        pair_from_record(rec, where, template, tokenizer) for where, rec in read_records(source)
    ]
    if not pairs:
        raise DatasetError(f"{source}: no contrast pairs")
    return pairs


def load_questions(
    source: str | Path, *, template: str = "plain", tokenizer: Any = None
) -> list[tuple[str, str]]:
    """Open-ended questions as ``(question, prompt)``: the ``question`` (or ``prompt``) field of
    each record; choices after ``Choices:`` in an A/B question are dropped."""
    from autointerp_steering.behaviors import read_records

    out = []
    for where, rec in read_records(source, "open_ended"):
        question = _answer(rec, "prompt", where)
        if "answer_matching_behavior" in rec:
            question = question.split("\n\nChoices:", 1)[0].strip()
        out.append((question, format_question(question, template, tokenizer, open_ended=True)))
    if not out:
        raise DatasetError(f"{source}: no questions")
    return out


# -- tokens ----------------------------------------------------------------------------------------


def unpadded(adapter: ModelAdapter, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without padding (either padding side)."""
    batch = adapter.tokenize(list(texts))
    mask = batch.attention_mask.bool()
    return [row[m].tolist() for row, m in zip(batch.input_ids, mask, strict=True)]


def pad_id(adapter: ModelAdapter) -> int:
    tok = adapter.tokenizer
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tok, attr, None)
        if isinstance(value, int):
            return value
    return 0


def pad_right(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences: ``input_ids`` and ``attention_mask``, both ``[batch, max_len]``."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each right-padded row."""
    return mask.long().sum(-1) - 1


def gather_last(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x[b, last_index(b)]`` for ``x`` of shape ``[batch, seq, ...]``."""
    import torch

    rows = torch.arange(x.shape[0], device=x.device)
    return x[rows, last_index(mask).to(x.device)]


def tokenize_pairs(adapter: ModelAdapter, pairs: Sequence[ContrastPair]) -> list[PairTokens]:
    """Find each pair's shared context and answer tokens (vectorized over the dataset)."""
    import torch

    pos = unpadded(adapter, [p.prompt + p.positive for p in pairs])
    neg = unpadded(adapter, [p.prompt + p.negative for p in pairs])
    width = max(max(map(len, pos)), max(map(len, neg))) + 1
    a = torch.full((len(pairs), width), -1, dtype=torch.long)
    b = torch.full((len(pairs), width), -2, dtype=torch.long)
    for row, (x, y) in enumerate(zip(pos, neg, strict=True)):
        a[row, : len(x)] = torch.as_tensor(x)
        b[row, : len(y)] = torch.as_tensor(y)
    first = (a != b).long().argmax(1)
    out = []
    for row, k in enumerate(first.tolist()):
        tp, tn = int(a[row, k]), int(b[row, k])
        if tp < 0 or tn < 0 or k == 0:
            raise DatasetError(
                f"pair {row}: the answers {pairs[row].positive!r} / {pairs[row].negative!r} do "
                "not start with different tokens after a non-empty prompt"
            )
        out.append(PairTokens(tuple(pos[row][:k]), tp, tn))
    return out


def chunks(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
