"""Examples for a latent, built from the activation cache by lookup (never a scan of the cache).

The token stream is cut into windows of ``window`` tokens (contexts are split, never joined). For
one latent, only its own activations are read; per window its peak is computed vectorized. Train
examples (shown to the explainer) are the windows with the highest peaks, or, by
``train_sampler``, drawn from the activation quantiles, at random, or both; test examples are drawn
from the remaining activating windows, spread over activation quantiles; every example drawn by
quantile or at random carries its quantile in its kind ("quantile:3", "train-quantile:3",
"train-random:3"; 0 = weakest); negatives are windows where the latent never
fires, drawn at random or from similar contexts ("hard" negatives: windows holding the tokens the
latent fires on most, or their nearest neighbours in the model's embedding space, where it stays
silent).
The sets are disjoint, and every draw comes from a generator seeded by (seed, latent), so any
latent's examples are reproducible on their own: no global random state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from autointerp.errors import AutointerpError
from autointerp.types import Example, LatentRef

if TYPE_CHECKING:
    import numpy as np

    from autointerp.cache import ActivationCache


class ExamplesError(AutointerpError):
    """Examples cannot be built with these settings (one-line message)."""


def scored_examples(stored: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(test, negatives) of a latent's stored examples, in the order scorers get them: a score's
    ``Prediction.example_id`` indexes ``[*test, *negatives]``."""
    test: list[Example] = []
    negatives: list[Example] = []
    for x in stored:  # a loop per example (not per token), each role read once
        role = x.role
        if role == "test":
            test.append(x)
        elif role == "negative":
            negatives.append(x)
    return test, negatives


@dataclass(frozen=True)
class ExampleSettings:
    """How many examples of each kind, and how wide (the peer tools' defaults)."""

    window: int = 32
    n_train: int = 40
    n_test: int = 50
    n_quantiles: int = 10
    n_negatives: int = 50
    #: "random": any silent window; "similar": silent windows holding the latent's top tokens
    #: (topped up at random when too few exist); "mixed": half similar, half random
    negatives: Literal["random", "similar", "mixed"] = "random"
    #: distinct top-activating token ids that define "similar" contexts
    similar_tokens: int = 5
    #: embedding-space neighbours added per top token (needs ``embeddings`` in the builder)
    similar_neighbours: int = 0
    seed: int = 0
    #: how test examples are drawn: "stratified" spreads ``n_test`` over all quantiles (shares
    #: differ by at most one, weak to strong); "quantile-v1", the sampler of earlier runs
    #: (``max(1, n_test // n_quantiles)`` per quantile, then cut: biased towards the weakest
    #: quantiles when ``n_test`` is no multiple of them), is kept so those runs resume unchanged
    test_sampler: Literal["stratified", "quantile-v1"] = "stratified"
    #: how train examples (shown to the explainer) are drawn: "top", the ``n_train`` strongest
    #: windows; "quantiles", ``n_train`` spread over ``n_quantiles`` quantiles of all activating
    #: windows as the stratified test sampler spreads them; "random", uniformly among them;
    #: "mixed", the ``round(train_top_share * n_train)`` strongest (halves up), the rest spread
    #: over the quantiles of the other activating windows
    train_sampler: Literal["top", "quantiles", "random", "mixed"] = "top"
    #: the share of top windows in a "mixed" train sample
    train_top_share: float = 0.5


#: the train samplers :class:`ExampleBuilder` knows
TRAIN_SAMPLERS = ("top", "quantiles", "random", "mixed")


@dataclass(frozen=True)
class LatentExamples:
    latent: LatentRef
    train: list[Example]
    test: list[Example]
    negatives: list[Example]


@dataclass(frozen=True, eq=False)
class ExampleSet:
    """A latent's examples as arrays, one row per example: the first ``n_train`` are train
    examples, the next ``n_test`` test examples, the rest negatives. What work units return and
    the store keeps (a few bytes per token, not a JSON document per example)."""

    latent: LatentRef
    kinds: tuple[str, ...]
    #: token ids ``[n, window]``
    tokens: np.ndarray
    #: the latent's activation on each token ``[n, window]``, float32
    activations: np.ndarray
    n_train: int
    n_test: int

    def __len__(self) -> int:
        return len(self.kinds)

    def examples(
        self, decode: Callable[[Sequence[int]], list[str]] | None = None
    ) -> LatentExamples:
        """As :class:`LatentExamples` of :class:`Example` objects, token strings from ``decode``
        (a :class:`TokenStrings` looks them up for all examples at once; None: left empty)."""
        lookup = getattr(decode, "lookup", None)
        if lookup is not None:
            strings = lookup(self.tokens).tolist()
        elif decode is not None:
            strings = [decode(row) for row in self.tokens.tolist()]
        else:
            strings = [()] * len(self.kinds)
        made = [
            Example(tuple(t), tuple(st), tuple(a), k)
            for t, st, a, k in zip(
                self.tokens.tolist(), strings, self.activations.tolist(), self.kinds, strict=True
            )
        ]
        a, b = self.n_train, self.n_train + self.n_test
        return LatentExamples(self.latent, made[:a], made[a:b], made[b:])


class TokenStrings:
    """Token strings by id for a tokenizer, decoded once per id and then looked up for whole
    arrays of ids at a time (a table indexed by id, not a call per token)."""

    def __init__(self, decode_one: Callable[[int], str]) -> None:
        import numpy as np

        self._decode_one = decode_one
        self._table = np.empty(0, dtype=object)
        self._known = np.zeros(0, dtype=bool)
        self._saved = np.zeros(0, dtype=bool)

    @classmethod
    def of(cls, tokenizer: Any) -> TokenStrings:
        """For a Hugging Face tokenizer: each id decoded on its own."""
        return cls(lambda token: tokenizer.decode([token]))

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """The strings of ``ids`` (any shape), an object array of the same shape."""
        import numpy as np

        ids = np.asarray(ids, dtype=np.int64)
        if ids.size:
            grow = int(ids.max()) + 1 - len(self._table)
            if grow > 0:
                self._table = np.concatenate([self._table, np.empty(grow, dtype=object)])
                self._known = np.concatenate([self._known, np.zeros(grow, dtype=bool)])
                self._saved = np.concatenate([self._saved, np.zeros(grow, dtype=bool)])
            new = np.unique(ids[~self._known[ids]])
            if len(new):
                self._table[new] = [self._decode_one(int(t)) for t in new.tolist()]
                self._known[new] = True
        return self._table[ids]

    def __call__(self, ids: Sequence[int]) -> list[str]:
        return self.lookup(ids).tolist()

    def unsaved(self, ids: np.ndarray) -> dict[int, str]:
        """The strings of those distinct ``ids`` not yet passed to :meth:`saved`."""
        import numpy as np

        ids = np.asarray(ids, dtype=np.int64)
        self.lookup(ids)  # grows the tables to cover them
        new = ids[~self._saved[ids]]
        return dict(zip(new.tolist(), self._table[new].tolist(), strict=True))

    def saved(self, ids: Iterable[int]) -> None:
        """Mark ids whose strings are now stored (a run stores each id's string once)."""
        import numpy as np

        self._saved[np.fromiter(ids, dtype=np.int64)] = True


def latent_rng(seed: int, latent: LatentRef) -> np.random.Generator:
    """A generator that depends only on (seed, latent)."""
    import numpy as np

    digest = hashlib.sha256(f"{seed}:{latent.source}:{latent.index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class ExampleBuilder:
    """Builds :class:`LatentExamples` for any latent of one cache."""

    def __init__(
        self,
        cache: ActivationCache,
        source_key: str,
        decode: Callable[[Sequence[int]], list[str]],
        settings: ExampleSettings | None = None,
        *,
        embeddings: np.ndarray | None = None,
    ) -> None:
        """``embeddings``: the model's token embeddings ``[vocab, d]``, for neighbour negatives."""
        self.cache = cache
        self.source_key = source_key
        self.decode = decode
        self.settings = settings or ExampleSettings()
        self.stream = cache.tokens().reshape(-1)
        ctx = cache.ctx_len
        w = self.settings.window
        if w < 1 or ctx % w:
            raise ExamplesError(f"window {w} must divide the cached context length {ctx}")
        self.n_windows = len(self.stream) // w
        if self.settings.negatives not in ("random", "similar", "mixed"):
            raise ExamplesError(
                f"negatives = {self.settings.negatives!r}: expected random, similar or mixed"
            )
        if self.settings.train_sampler not in TRAIN_SAMPLERS:
            raise ExamplesError(
                f"train_sampler = {self.settings.train_sampler!r}: expected "
                "top, quantiles, random or mixed"
            )
        if self.settings.n_quantiles < 1:
            raise ExamplesError(f"n_quantiles = {self.settings.n_quantiles}: expected >= 1")
        if not 0 <= self.settings.train_top_share <= 1:
            raise ExamplesError(
                f"train_top_share = {self.settings.train_top_share}: expected 0 to 1"
            )
        if self.settings.similar_neighbours and embeddings is None:
            raise ExamplesError("similar_neighbours needs the model's token embeddings")
        self.embeddings = embeddings
        self._by_token: tuple[np.ndarray, np.ndarray] | None = None
        self._unit: np.ndarray | None = None

    def _token_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Stream positions sorted by token id, and the sorted ids: an inverted index built once,
        so finding a token's occurrences is a binary search, not a scan per latent."""
        import numpy as np

        if self._by_token is None:
            order = np.argsort(self.stream, kind="stable")
            self._by_token = order, self.stream[order]
        return self._by_token

    def top_token_ids(self, tokens: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Up to ``similar_tokens`` distinct token ids the latent fires on, strongest first,
        with their embedding-space neighbours when asked for."""
        import numpy as np

        s = self.settings
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        ids = self.stream[tokens.astype(np.int64)]
        order = np.argsort(-values, kind="stable")
        first = np.unique(ids[order], return_index=True)[1]
        top = ids[order][np.sort(first)][: s.similar_tokens]
        if s.similar_neighbours and self.embeddings is not None:
            top = np.unique(np.concatenate([top, self._neighbours(top)]))
        return top

    def _neighbours(self, ids: np.ndarray) -> np.ndarray:
        import numpy as np

        if self._unit is None:  # unit rows, computed once: cosine = dot product
            assert self.embeddings is not None
            norms = np.linalg.norm(self.embeddings, axis=1, keepdims=True)
            self._unit = (self.embeddings / np.maximum(norms, 1e-12)).astype(np.float32)
        e = self._unit
        sims = e[ids] @ e.T  # [len(ids), vocab]
        sims[np.arange(len(ids)), ids] = -np.inf
        k = min(self.settings.similar_neighbours, sims.shape[1] - 1)
        return np.argpartition(-sims, k - 1, axis=1)[:, :k].reshape(-1) if k > 0 else ids[:0]

    def similar_windows(self, ids: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Windows (ascending) holding any of ``ids`` where the latent never fires."""
        import numpy as np

        order, sorted_ids = self._token_index()
        lo = np.searchsorted(sorted_ids, ids, side="left")
        hi = np.searchsorted(sorted_ids, ids, side="right")
        counts = hi - lo
        # the positions of every chosen id, gathered without a loop: runs [lo, hi) of `order`
        idx = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        windows = np.unique(order[idx] // self.settings.window)
        windows = windows[windows < self.n_windows]
        return windows[~np.isin(windows, active, assume_unique=True)]

    def build(self, index: int) -> LatentExamples:
        """Train, test and negative examples of latent ``index``."""
        return self.build_set(index).examples(self.decode)

    def build_set(self, index: int) -> ExampleSet:
        """The examples of latent ``index`` as arrays (train, then test, then negatives): the
        windows are chosen per latent, and their tokens and activations gathered for all of
        them at once."""
        import numpy as np

        s = self.settings
        latent = LatentRef(self.source_key, index)
        tokens, values = self.cache.latent(index)
        tokens = tokens.astype(np.int64)
        rng = latent_rng(s.seed, latent)
        windows = tokens // s.window
        active, starts = np.unique(windows, return_index=True)
        peaks = np.maximum.reduceat(values, starts) if len(values) else values
        order = np.argsort(-peaks, kind="stable")
        train_i, train_kinds = self._pick_train(peaks, order, rng)
        train_w = active[train_i]
        taken = np.zeros(len(active), dtype=bool)
        taken[train_i] = True
        rest_i = order[~taken[order]]  # strongest first, as "top" runs always drew from
        rest, rest_peaks = active[rest_i], peaks[rest_i]
        sample = _quantile_sample if s.test_sampler == "quantile-v1" else _stratified_sample
        test_w, quantiles = sample(rest, rest_peaks, s.n_test, s.n_quantiles, rng)
        negatives_w, negative_kinds = self._pick_negatives(tokens, values, active, rng)
        chosen = np.concatenate([train_w, test_w, negatives_w]).astype(np.int64)
        w = s.window
        ids = self.stream[chosen[:, None] * w + np.arange(w)]
        acts = np.zeros((len(chosen), w), dtype=np.float32)
        if len(chosen) and len(tokens):  # each activation to its chosen window, if any
            by_window = np.argsort(chosen)
            sorted_w = chosen[by_window]
            at = np.minimum(np.searchsorted(sorted_w, windows), len(chosen) - 1)
            hit = sorted_w[at] == windows
            acts[by_window[at[hit]], tokens[hit] - windows[hit] * w] = values[hit]
        kinds = train_kinds + [f"quantile:{q}" for q in quantiles.tolist()] + list(negative_kinds)
        return ExampleSet(latent, tuple(kinds), ids, acts, len(train_w), len(test_w))

    def _pick_train(
        self, peaks: np.ndarray, order: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, list[str]]:
        """Positions in the latent's activating windows of its train examples, strongest first,
        and their kinds (see :attr:`ExampleSettings.train_sampler`)."""
        import numpy as np

        s = self.settings
        n = min(s.n_train, len(peaks))
        if s.train_sampler == "top" or n == 0:
            return order[:n], ["top"] * n
        positions = np.arange(len(peaks))
        if s.train_sampler == "random":
            picked = rng.choice(positions, size=n, replace=False)
            labels = quantile_labels(peaks, s.n_quantiles)[picked]
            kind = "train-random"
        elif s.train_sampler == "quantiles":
            picked, labels = _stratified_sample(positions, peaks, n, s.n_quantiles, rng)
            kind = "train-quantile"
        else:  # mixed: the strongest, then the others' quantiles
            n_top = min(n, int(s.train_top_share * s.n_train + 0.5))
            others = order[n_top:]
            picked, labels = _stratified_sample(
                others, peaks[others], n - n_top, s.n_quantiles, rng
            )
            picked, labels = (
                np.concatenate([order[:n_top], picked]),
                np.concatenate([np.full(n_top, -1), labels]),
            )
            kind = "train-quantile"
        strongest = np.argsort(-peaks[picked], kind="stable")
        picked, labels = picked[strongest], labels[strongest]
        kinds = ["top" if q < 0 else f"{kind}:{q}" for q in labels.tolist()]
        return picked, kinds

    def _pick_negatives(
        self, tokens: np.ndarray, values: np.ndarray, active: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, list[str]]:
        """Negative windows and their kinds ("similar" first, then "random")."""
        import numpy as np

        s = self.settings
        if s.negatives == "random":
            picked = _negatives(self.n_windows, active, s.n_negatives, rng)
            return picked, ["random"] * len(picked)
        want = s.n_negatives if s.negatives == "similar" else s.n_negatives // 2
        pool = self.similar_windows(self.top_token_ids(tokens, values), active)
        similar = np.sort(rng.choice(pool, size=min(want, len(pool)), replace=False))
        # the rest at random among silent windows not already taken
        taken = np.union1d(active, similar)
        rest = _negatives(self.n_windows, taken, s.n_negatives - len(similar), rng)
        return np.concatenate([similar, rest]), ["similar"] * len(similar) + ["random"] * len(rest)


def quantile_labels(peaks: np.ndarray, n_quantiles: int) -> np.ndarray:
    """The activation quantile of each window (0 = weakest) among ``peaks``: the windows sorted
    by peak, cut into ``n_quantiles`` bins whose sizes differ by at most one (as the samplers cut
    them)."""
    import numpy as np

    labels = np.zeros(len(peaks), dtype=np.int64)
    if len(peaks):
        bins = np.array_split(np.argsort(peaks, kind="stable"), min(n_quantiles, len(peaks)))
        labels[np.concatenate(bins)] = np.repeat(np.arange(len(bins)), [len(b) for b in bins])
    return labels


def _stratified_sample(
    windows: np.ndarray, peaks: np.ndarray, n: int, n_quantiles: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``min(n, len(windows))`` windows spread over the activation quantiles (0 = weakest) and
    their quantiles: every quantile gets ``n // n_quantiles``, the remainder goes to quantiles
    spaced evenly from weak to strong, and a quantile too small to give its share hands the rest
    on to the others. Returned weakest quantile first."""
    import numpy as np

    m = min(n, len(windows))
    if m <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    bins = np.array_split(np.argsort(peaks, kind="stable"), min(n_quantiles, len(windows)))
    sizes = np.array([len(b) for b in bins])
    counts = np.zeros(len(bins), dtype=np.int64)
    short = m
    while short:  # a few rounds at most: the bins' sizes differ by at most one
        spare = np.flatnonzero(counts < sizes)
        if short < len(spare):  # one more each for `short` quantiles spaced evenly
            counts[spare[((np.arange(short) + 0.5) * len(spare) / short).astype(np.int64)]] += 1
            break
        add = np.minimum(sizes[spare] - counts[spare], short // len(spare))
        counts[spare] += add
        short -= int(add.sum())
    chosen = [rng.choice(b, size=c, replace=False) for b, c in zip(bins, counts, strict=True)]
    quantile = np.repeat(np.arange(len(bins)), counts)
    return windows[np.concatenate(chosen)], quantile


def _quantile_sample(
    windows: np.ndarray, peaks: np.ndarray, n: int, n_quantiles: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The "quantile-v1" sampler (of runs made before "stratified"): ``max(1, n // quantiles)``
    windows from each activation quantile (0 = weakest), cut to ``n``."""
    import numpy as np

    if not len(windows) or n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(peaks, kind="stable")
    bins = np.array_split(order, min(n_quantiles, len(order)))
    per_bin = max(1, n // len(bins))
    chosen, quantile = [], []
    for q, members in enumerate(bins):
        take = rng.choice(members, size=min(per_bin, len(members)), replace=False)
        chosen.append(windows[take])
        quantile.append(np.full(len(take), q))
    return np.concatenate(chosen)[:n], np.concatenate(quantile)[:n]


def _negatives(n_windows: int, active: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct random windows in which the latent never fires."""
    import numpy as np

    n_free = n_windows - len(active)
    if n_free <= 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    # the k-th free window, for k drawn without replacement, found by searching the active ones
    picks = np.sort(rng.choice(n_free, size=min(n, n_free), replace=False))
    return picks + np.searchsorted(active - np.arange(len(active)), picks, side="right")


# -- work units ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExampleUnit:
    """A work unit of example building: some latents of one cache (plain data, picklable, so an
    executor may run it in another process). ``embeddings``: a ``.npy`` of the model's token
    embeddings, for neighbour negatives."""

    cache_dir: str
    source_key: str
    settings: ExampleSettings
    indices: tuple[int, ...]
    embeddings: str | None = None


def build_unit(unit: ExampleUnit) -> list[ExampleSet]:
    """The examples of every latent of ``unit``, in order, as arrays (the driver looks up token
    strings with the model's tokenizer: workers hold no model)."""
    builder = _unit_builder(unit.cache_dir, unit.source_key, unit.settings, unit.embeddings)
    return [builder.build_set(i) for i in unit.indices]


def _no_strings(ids: Sequence[int]) -> list[str]:
    return []


@lru_cache(maxsize=4)
def _unit_builder(
    cache_dir: str, source_key: str, settings: ExampleSettings, embeddings: str | None
) -> ExampleBuilder:
    """One builder per cache and settings in each process (its token index is built once)."""
    import numpy as np

    from autointerp.cache import ActivationCache

    vectors = np.load(embeddings, mmap_mode="r") if embeddings else None
    return ExampleBuilder(
        ActivationCache(Path(cache_dir)), source_key, _no_strings, settings, embeddings=vectors
    )
