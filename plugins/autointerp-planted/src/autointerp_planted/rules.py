"""Planted latents: rules over token ids whose meaning is known, evaluated a batch at a time.

A latent is one rule, or two OR-ed (polysemantic), with a difficulty: extra random firings
(``noise``), a strength, and optionally graded values. Rules are plain JSON-able data::

    {"kind": "token",    "match": PRED}                      the token matches
    {"kind": "after",    "prev": PRED, "match": PRED}        ... and the token before matches prev
    {"kind": "inside",   "brackets": "()", "match": PRED}    ... and the last bracket before it
                                                             (in the context) is an opening one
    {"kind": "cooccur",  "with": PRED, "window": 8, "match": PRED}
                                                             ... and a token matching ``with`` is
                                                             among the ``window`` tokens before it
    {"kind": "position", "lo": 0, "hi": 2}                   position in the context in [lo, hi)

    PRED = {"words": ["monday", ...]}   the decoded token, stripped and lowercased, is one of them
         | {"regex": "^\\s*\\d+$"}       re.search on the decoded token, as decoded

``match`` may be left out (any token). A predicate depends on the token alone, so it is compiled
once per vocabulary into a boolean table (``table[id]``); context rules are shifts, cumulative
maxima and cumulative sums over the ``[contexts, ctx_len]`` batch. Special tokens never match.

:func:`reference_fires` is a slow, obviously-correct version of :func:`fires` (a loop over
positions on the decoded strings) that the tests hold the fast one to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

RULE_KINDS = ("token", "after", "inside", "cooccur", "position")
Pred = Mapping[str, Any]
Rule = Mapping[str, Any]


class RuleError(ValueError):
    """A planted rule that cannot be read (one-line message)."""


def predicate(pred: Pred | None) -> Callable[[str], bool]:
    """The predicate as a function of one decoded token string."""
    if pred is None:
        return lambda s: True
    if "words" in pred:
        words = {str(w).lower() for w in pred["words"]}
        return lambda s: s.strip().lower() in words
    if "regex" in pred:
        pattern = re.compile(pred["regex"])
        return lambda s: pattern.search(s) is not None
    if "more" in pred:  # a bracket: holds more of one character than of the other
        more, than = str(pred["more"]), str(pred["than"])
        return lambda s: s.count(more) > s.count(than)
    raise RuleError(f"a predicate needs 'words' or 'regex', got {sorted(pred)}")


def check_rule(rule: Rule) -> None:
    kind = rule.get("kind")
    if kind not in RULE_KINDS:
        raise RuleError(f"rule kind {kind!r}: expected one of {', '.join(RULE_KINDS)}")
    for key in ("match", "prev", "with"):
        if rule.get(key) is not None:
            predicate(rule[key])
    if kind == "after" and rule.get("prev") is None:
        raise RuleError("an 'after' rule needs 'prev'")
    if kind == "cooccur" and (rule.get("with") is None or int(rule.get("window", 0)) < 1):
        raise RuleError("a 'cooccur' rule needs 'with' and a window >= 1")
    if kind == "inside" and len(rule.get("brackets", "")) != 2:
        raise RuleError("an 'inside' rule needs 'brackets', two characters such as '()'")
    if kind == "position" and not 0 <= int(rule.get("lo", 0)) < int(rule.get("hi", 1)):
        raise RuleError("a 'position' rule needs 0 <= lo < hi")


class Vocab:
    """The decoded string of every token id, and boolean tables of predicates over them."""

    def __init__(self, strings: Sequence[str], special: Sequence[int] = ()) -> None:
        self.strings = list(strings)
        self.special = np.zeros(len(self.strings), dtype=bool)
        self.special[[i for i in special if 0 <= i < len(self.strings)]] = True
        self._tables: dict[str, np.ndarray] = {}

    @classmethod
    def of(cls, tokenizer: Any, size: int | None = None) -> Vocab:
        """A Hugging Face tokenizer's vocabulary, each id decoded on its own (ids past the
        tokenizer's length, where the model's embedding is larger, decode to "")."""
        n = len(tokenizer)
        strings = tokenizer.batch_decode([[i] for i in range(n)])
        strings += [""] * max(0, (size or n) - n)
        return cls(strings, getattr(tokenizer, "all_special_ids", ()))

    def table(self, pred: Pred | None) -> np.ndarray:
        """``[vocab]`` bool: which ids match ``pred`` (special tokens never do)."""
        key = repr(sorted((pred or {}).items()))
        if key not in self._tables:
            test = predicate(pred)
            hits = np.fromiter((test(s) for s in self.strings), bool, len(self.strings))
            self._tables[key] = hits & ~self.special
        return self._tables[key]


def fires(rule: Rule, ids: np.ndarray, vocab: Vocab) -> np.ndarray:
    """``[contexts, ctx_len]`` bool: where ``rule`` fires on the ids."""
    b, t = ids.shape
    match = vocab.table(rule.get("match"))[ids]
    kind = rule["kind"]
    if kind == "token":
        return match
    if kind == "after":
        prev = vocab.table(rule["prev"])[ids]
        out = np.zeros_like(match)
        out[:, 1:] = match[:, 1:] & prev[:, :-1]
        return out
    if kind == "inside":
        opening, closing = (vocab.table(_bracket(c, rule["brackets"])) for c in (0, 1))
        pos = np.arange(1, t + 1)
        # the position (1-based, 0: none) of the last opening / closing bracket up to each token
        last_open = np.maximum.accumulate(np.where(opening[ids], pos, 0), axis=1)
        last_close = np.maximum.accumulate(np.where(closing[ids], pos, 0), axis=1)
        inside = np.zeros_like(match)
        inside[:, 1:] = last_open[:, :-1] > last_close[:, :-1]  # brackets before the token
        return match & inside
    if kind == "cooccur":
        other = vocab.table(rule["with"])[ids].astype(np.int32)
        w = int(rule["window"])
        seen = np.zeros((b, t + 1), dtype=np.int32)
        np.cumsum(other, axis=1, out=seen[:, 1:])
        start = np.maximum(np.arange(t) - w, 0)
        return match & (seen[:, np.arange(t)] - seen[:, start] > 0)
    if kind == "position":
        pos = np.arange(t)
        return np.broadcast_to((pos >= int(rule["lo"])) & (pos < int(rule["hi"])), (b, t)).copy()
    raise RuleError(f"rule kind {kind!r}: expected one of {', '.join(RULE_KINDS)}")


def _bracket(which: int, brackets: str) -> Pred:
    """A token opens (0) or closes (1) when it holds more of that bracket than of the other."""
    return {"more": brackets[which], "than": brackets[1 - which]}


def reference_fires(rule: Rule, ids: Sequence[Sequence[int]], strings: Sequence[str],
                    special: Sequence[int] = ()) -> list[list[bool]]:  # fmt: skip
    """The slow reference of :func:`fires`: a loop over each context's positions."""
    special_set = set(special)

    def test(pred: Pred | None, token: int) -> bool:
        if token in special_set:
            return False
        return predicate(pred)(strings[token])

    out = []
    for row in ids:
        fired = []
        for p, token in enumerate(row):
            ok = test(rule.get("match"), token)
            kind = rule["kind"]
            if kind == "after":
                ok = ok and p > 0 and test(rule["prev"], row[p - 1])
            elif kind == "inside":
                depth_open = False
                for q in range(p):
                    if test(_bracket(0, rule["brackets"]), row[q]):
                        depth_open = True
                    elif test(_bracket(1, rule["brackets"]), row[q]):
                        depth_open = False
                ok = ok and depth_open
            elif kind == "cooccur":
                w = int(rule["window"])
                ok = ok and any(test(rule["with"], row[q]) for q in range(max(0, p - w), p))
            elif kind == "position":
                ok = int(rule["lo"]) <= p < int(rule["hi"])
            fired.append(bool(ok))
        out.append(fired)
    return out
