"""Activation caching: a model's site activations, encoded by a feature source, streamed to disk.

Layout of ``RUN/cache/<key>/``::

    manifest.json              model, site, source, dataset, fingerprint, shard list (complete
                               ones, each with its first token's global index)
    shard-00000.safetensors    tokens [contexts, ctx_len] (uint16 when the vocabulary fits, else
                               int32), and the shard's activations sorted latent-major:
                               offsets [n_latents + 1] (int64), token [n] (token index within the
                               shard: uint16 when the shard holds at most 65,536 tokens, else
                               uint32), value [n] (float16) -> 4 (or 6) bytes per stored activation
                               and per latent of the shard: max [n_latents], sum [n_latents]
                               (float32)

Memory is bounded by one shard: activations are encoded batch by batch, kept sparse, and sorted
once when the shard closes. Reading one latent reads only its ranges (``offsets``) of each shard.
A shard is written under a temporary name and renamed, and only then listed in the manifest, so an
interrupted cache resumes from its last complete shard. A cache with another fingerprint is refused,
never reused, with the settings that differ named; the one exception is a difference in ``device``
options alone (where activations were computed, not what they are): a cache made on a GPU is read
on a laptop.

Devices: the feature source is placed on the model adapter's device (:meth:`FeatureSource.place`);
each batch's sparse activations come back to the CPU in one transfer (a source that reads the
token ids themselves, ``reads_tokens``, is given each batch's ids and no forward pass runs). A
batch that runs out of memory (``torch.cuda.OutOfMemoryError``, or the CPU allocator's "not enough
memory") is split in halves and retried, down to one context, and later batches run at the size
that fit; the cache's content does not depend on the split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autointerp.errors import AutointerpError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from autointerp.adapter import ModelAdapter
    from autointerp.features import FeatureSource

log = logging.getLogger("autointerp.cache")

MANIFEST = "manifest.json"
#: 2: token indices relative to their shard (``first_token`` in the manifest), uint16 when they fit
FORMAT_VERSION = 2


class CacheError(AutointerpError):
    """The activation cache cannot be written or read (one-line message)."""


def fingerprint(info: Mapping[str, Any]) -> str:
    """A content hash of everything that determines the cached activations."""
    canonical = json.dumps(dict(info), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class _Shard:
    """What one open shard accumulates before it is sorted and written."""

    tokens: list[np.ndarray]
    token: list[np.ndarray]
    latent: list[np.ndarray]
    value: list[np.ndarray]
    n_contexts: int = 0
    first_context: int = 0


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


#: the largest magnitude a float16 cache value holds
FLOAT16_MAX = 65504.0


def _storable(
    token: np.ndarray, latent: np.ndarray, value: np.ndarray, site: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activations as the cache stores them (float16): those too small to be told from 0 are
    dropped (they would count as firing with value 0); one beyond float16's range is an error,
    never an inf."""
    import numpy as np

    big = np.abs(value) > FLOAT16_MAX
    if big.any():
        i = int(np.argmax(np.abs(value)))
        raise CacheError(
            f"{site}: latent {int(latent[i])} has activation {float(value[i]):.4g}, beyond the "
            f"{FLOAT16_MAX:g} a cache value can hold; scale the feature source's input or output"
        )
    keep = value.astype(np.float16) != 0
    if keep.all():
        return token, latent, value
    return token[keep], latent[keep], value[keep]


_SHARD_KEYS = {"tokens", "offsets", "token", "value"}


def damaged(cache_dir: Path, entry: Mapping[str, Any]) -> str | None:
    """What is wrong with a shard of the manifest (missing, truncated, unreadable), or None."""
    from safetensors import safe_open

    path = cache_dir / entry["file"]
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if "bytes" in entry and size != entry["bytes"]:
        return f"{size} bytes, {entry['bytes']} written"
    try:
        with safe_open(str(path), framework="numpy") as f:
            missing = _SHARD_KEYS - set(f.keys())
    except Exception as exc:  # safetensors raises several kinds on a garbled header
        return f"unreadable ({type(exc).__name__})"
    return f"no {', '.join(sorted(missing))}" if missing else None


def _repair(cache_dir: Path, manifest: dict[str, Any], manifest_path: Path) -> None:
    """Drop the first damaged shard and every later one (a resumed cache recomputes them)."""
    for i, entry in enumerate(manifest["shards"]):
        problem = damaged(cache_dir, entry)
        if problem is None:
            continue
        log.warning(
            "%s: %s is damaged (%s): recomputing the cache from there",
            cache_dir, entry["file"], problem,
        )  # fmt: skip
        for later in manifest["shards"][i:]:
            (cache_dir / later["file"]).unlink(missing_ok=True)
        manifest["shards"] = manifest["shards"][:i]
        manifest["complete"] = False
        _atomic_write_json(manifest_path, manifest)
        return


def open_manifest(
    cache_dir: Path, info: Mapping[str, Any], source: Any
) -> tuple[dict[str, Any], Path]:
    """The manifest of the cache in ``cache_dir`` for ``source`` and ``info`` (a new one, or the
    existing one checked against them and repaired: shards after a damaged one dropped), and its
    path. Raises :class:`CacheError` for a cache of other settings or format."""
    fp = fingerprint({**info, "site": source.site, "n_latents": source.n_latents})
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = cache_dir / MANIFEST
    manifest: dict[str, Any]
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("fingerprint") != fp:
            _check_same_settings(cache_dir, manifest, info, source, fp)
        if manifest.get("format") != FORMAT_VERSION:
            raise CacheError(
                f"{cache_dir}: written in cache format {manifest.get('format')}, this version "
                f"writes format {FORMAT_VERSION}; delete the directory to cache again"
            )
        _repair(cache_dir, manifest, manifest_path)
    else:
        manifest = {
            "format": FORMAT_VERSION,
            "fingerprint": fp,
            "info": dict(info),
            "site": source.site,
            "n_latents": source.n_latents,
            "shards": [],
            "complete": False,
        }
    return manifest, manifest_path


def build_cache(
    adapter: ModelAdapter,
    source: FeatureSource,
    batches: Iterable[torch.Tensor],
    cache_dir: Path,
    info: Mapping[str, Any],
    *,
    contexts_per_shard: int = 1024,
    progress: bool = True,
    total_batches: int | None = None,
) -> Path:
    """Cache ``source``'s activations on every ``[batch, ctx_len]`` token batch.

    ``info`` (model, site, source, dataset and their settings) is fingerprinted: an existing cache
    with another fingerprint raises; one with the same fingerprint resumes after its last complete
    shard (``batches`` must then be the same deterministic stream).
    """
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from safetensors.numpy import save_file

    site = adapter.site(source.site)
    source.check_site(site)
    manifest, manifest_path = open_manifest(cache_dir, info, source)
    done_contexts = sum(s["contexts"] for s in manifest["shards"])
    n = source.n_latents
    vocab = getattr(adapter, "vocab_size", 1 << 31)
    token_dtype = np.uint16 if vocab <= 1 << 16 else np.int32

    shard = _Shard([], [], [], [], first_context=done_contexts)
    seen_contexts = 0
    ctx_len = manifest.get("ctx_len")
    device = getattr(adapter, "device", None)
    if device is not None and callable(place := getattr(source, "place", None)):
        place(device)  # a source left at device "auto" computes where the model does
    if getattr(source, "reads_tokens", False):
        source.bind_model(adapter)  # e.g. the tokenizer, to evaluate rules over token strings
    splitter = _Splitter(adapter, source, device)

    def write_shard(closed: _Shard) -> None:
        """Sort ``closed`` latent-major, write it, then list it in the manifest."""
        assert ctx_len is not None
        n_tokens = closed.n_contexts * ctx_len
        token = np.concatenate(closed.token).astype(np.uint16 if n_tokens <= 1 << 16 else np.uint32)
        latent = np.concatenate(closed.latent).astype(np.int64)
        value = np.concatenate(closed.value).astype(np.float16)
        order = np.lexsort((token, latent))  # latent-major, tokens ascending within a latent
        token, latent, value = token[order], latent[order], value[order]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(latent, minlength=n), out=offsets[1:])
        shard_max = np.zeros(n, dtype=np.float32)
        np.maximum.at(shard_max, latent, value.astype(np.float32))
        index = len(manifest["shards"])
        name = f"shard-{index:05d}.safetensors"
        tensors = {
            "tokens": np.concatenate(closed.tokens).astype(token_dtype),
            "offsets": offsets,
            "token": token,
            "value": value,
            "max": shard_max,
            "sum": np.bincount(latent, weights=value, minlength=n).astype(np.float32),
        }
        save_file(tensors, str(cache_dir / (name + ".tmp")))
        os.replace(cache_dir / (name + ".tmp"), cache_dir / name)
        manifest["shards"].append(
            {
                "file": name,
                "bytes": (cache_dir / name).stat().st_size,
                "contexts": closed.n_contexts,
                "activations": len(token),
                "first_token": closed.first_context * ctx_len,
            }
        )
        _atomic_write_json(manifest_path, manifest)

    # A closed shard is sorted and written on one background thread while the next batches run
    # through the model (numpy, safetensors and torch release the GIL); at most one shard waits,
    # so memory stays bounded by two shards, and shards are listed in order.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autointerp-shard")
    pending: Future[None] | None = None

    def close_shard() -> None:
        nonlocal shard, pending
        if shard.n_contexts == 0:
            return
        if pending is not None:
            pending.result()  # the previous shard is written (or its error raised) first
        pending = writer.submit(write_shard, shard)
        shard = _Shard([], [], [], [], first_context=shard.first_context + shard.n_contexts)

    def finish_writes() -> None:
        nonlocal pending
        try:
            if pending is not None:
                pending.result()  # even when interrupted: a closed shard is kept
        finally:
            pending = None
            writer.shutdown(wait=True)

    columns = [
        TextColumn("caching {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
    ]
    started = time.perf_counter()
    computed_tokens = 0  # this session's forward passes, for the tokens/s figure
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(source.site, total=total_batches, rate="")
        try:
            for ids in batches:
                b, t = ids.shape
                if ctx_len is None:
                    ctx_len = manifest["ctx_len"] = t
                elif t != ctx_len:
                    raise CacheError(
                        f"batches have length {t}, the cache has contexts of {ctx_len}"
                    )
                if seen_contexts + b <= done_contexts:  # cached by an earlier, interrupted run
                    seen_contexts += b
                    bar.advance(task)
                    continue
                rows, latent, value = splitter.encode(ids)
                token = rows.astype(np.int64) + (seen_contexts - shard.first_context) * t
                token, latent, value = _storable(token, latent.astype(np.int64), value, source.site)
                shard.tokens.append(ids.numpy())
                shard.token.append(token)
                shard.latent.append(latent)
                shard.value.append(value)
                shard.n_contexts += b
                seen_contexts += b
                computed_tokens += b * t
                rate = computed_tokens / max(time.perf_counter() - started, 1e-9)
                bar.update(task, advance=1, rate=f"{rate:,.0f} tokens/s")
                if shard.n_contexts >= contexts_per_shard:
                    close_shard()
            close_shard()
        finally:
            finish_writes()
    manifest["complete"] = True
    manifest["n_tokens"] = seen_contexts * (ctx_len or 0)
    _atomic_write_json(manifest_path, manifest)
    return cache_dir


def _check_same_settings(
    cache_dir: Path, manifest: Mapping[str, Any], info: Mapping[str, Any], source: Any, fp: str
) -> None:
    """Refuse a cache of other settings, naming what differs; a difference in ``device`` options
    alone is no difference (the device computes the same activations)."""
    stored = {**manifest.get("info", {}), "site": manifest.get("site"),
              "n_latents": manifest.get("n_latents")}  # fmt: skip
    now = json.loads(
        json.dumps({**info, "site": source.site, "n_latents": source.n_latents}, default=str)
    )
    changed = _differences(stored, now)
    if changed and all(path.rsplit(".", 1)[-1] == "device" for path, _, _ in changed):
        log.info(
            "%s: reusing a cache computed on another device (%s)",
            cache_dir, "; ".join(f"{p}: {_brief(a)} -> {_brief(b)}" for p, a, b in changed),
        )  # fmt: skip
        return
    what = "; ".join(
        f"{path} was {_brief(old)}, now {_brief(new)}" for path, old, new in changed[:3]
    ) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
    raise CacheError(
        f"{cache_dir}: holds a cache of other settings ("
        f"{what or 'fingerprint ' + str(manifest.get('fingerprint')) + ' != ' + fp}); "
        "use another run directory or delete it"
    )


_MISSING = object()


def _differences(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, old value, new value) of every leaf where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in dict.fromkeys([*old, *new]):
            sub = f"{path}.{key}" if path else str(key)
            out += _differences(old.get(key, _MISSING), new.get(key, _MISSING), sub)
        return out
    return [] if old == new else [(path, old, new)]


def _brief(value: Any) -> str:
    if value is _MISSING:
        return "unset"
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


#: what the CPU allocator (and MPS) say when an allocation fails; CUDA raises its own type
_OOM_MESSAGES = ("not enough memory", "can't allocate memory", "out of memory")


def _out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MESSAGES)


class _Splitter:
    """Runs batches through adapter and source, splitting one that runs out of memory.

    ``limit`` remembers the largest number of contexts that fit after a failure: later batches
    run in pieces of that size (it never grows back within a cache build)."""

    def __init__(self, adapter: Any, source: Any, device: Any) -> None:
        self.adapter, self.source, self.device = adapter, source, device
        self.limit: int | None = None

    def _once(self, ids: torch.Tensor) -> np.ndarray:
        """``[3, n]`` int32: token row, latent, and the float32 value's bits, in one transfer."""
        import torch

        b, t = ids.shape
        with torch.no_grad():
            if getattr(self.source, "reads_tokens", False):  # rules over the ids: no forward
                acts = self.source.encode_tokens(ids)
            else:
                h = self.adapter.forward(ids, capture=[self.source.site], return_logits=False)
                acts = self.source.encode(h.captures[self.source.site].reshape(b * t, -1))
            packed = torch.stack(
                (
                    acts.rows.to(torch.int32),
                    acts.latents.to(device=acts.rows.device, dtype=torch.int32),
                    acts.values.to(device=acts.rows.device, dtype=torch.float32).view(torch.int32),
                )
            )
        return packed.cpu().numpy()  # the batch's one device -> host copy

    def encode(self, ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token rows (within ``ids``), latents and float32 values of a ``[batch, ctx]`` batch."""
        import numpy as np

        b, t = ids.shape
        step = min(b, self.limit or b)
        parts: list[np.ndarray] = []
        start = 0
        while start < b:
            piece = ids[start : start + step]
            reason = None
            try:
                packed = self._once(piece)
            except Exception as exc:
                if not _out_of_memory(exc):
                    raise
                reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:120]}"
            if reason is None:
                packed[0] += start * t
                parts.append(packed)
                start += len(piece)
                continue
            # outside the except block: the failed attempt's tensors are already unreachable
            self._release()
            if len(piece) == 1:
                raise CacheError(
                    f"out of memory caching a single context of {t} tokens on "
                    f"{self.device or 'this device'} ({reason}); lower corpus.ctx_len, choose "
                    "dtype bfloat16 or another device, or free the device's memory"
                )
            step = (len(piece) + 1) // 2
            log.warning(
                "out of memory on %d contexts of %d tokens (%s); caching %d at a time from now on",
                len(piece), t, reason, step,
            )  # fmt: skip
            self.limit = step
        if len(parts) == 1:
            packed = parts[0]
        else:
            packed = np.concatenate(parts, axis=1) if parts else np.zeros((3, 0), np.int32)
        return packed[0], packed[1], packed[2].view(np.float32)

    def _release(self) -> None:
        import torch

        if self.device is not None and getattr(self.device, "type", "") == "cuda":
            torch.cuda.empty_cache()


@contextmanager
def _reading(shard: Path) -> Iterator[None]:
    """Turn any failure to read ``shard`` (garbled data, offsets out of range) into one line."""
    try:
        yield
    except CacheError:
        raise
    except Exception as exc:  # safetensors, numpy and our checks each raise their own kinds
        raise CacheError(
            f"{shard}: damaged ({type(exc).__name__}: {exc}); delete it and rerun the same "
            "command: the cache stage recomputes it and everything after it"
        ) from None


class ActivationCache:
    """Read side of a cache directory: tokens, one latent's activations, per-latent statistics."""

    def __init__(self, cache_dir: Path) -> None:
        path = cache_dir / MANIFEST
        if not path.exists():
            raise CacheError(f"{cache_dir}: no {MANIFEST}; run the caching stage first")
        self.dir = cache_dir
        try:
            self.manifest = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise CacheError(
                f"{path}: not a readable manifest; delete {cache_dir} and rerun to cache again"
            ) from None
        for entry in self.manifest["shards"]:
            if (problem := damaged(cache_dir, entry)) is not None:
                raise CacheError(
                    f"{cache_dir / entry['file']}: damaged ({problem}); rerun the same command: "
                    "the cache stage recomputes it and everything after it"
                )
        self.n_latents: int = self.manifest["n_latents"]
        self.ctx_len: int = self.manifest.get("ctx_len") or 0

    @property
    def shards(self) -> list[Path]:
        return [self.dir / s["file"] for s in self.manifest["shards"]]

    def tokens(self) -> np.ndarray:
        """All cached contexts ``[contexts, ctx_len]`` (int64)."""
        import numpy as np
        from safetensors import safe_open

        parts = []
        for shard in self.shards:
            with safe_open(str(shard), framework="numpy") as f:
                parts.append(f.get_tensor("tokens").astype(np.int64))
        return np.concatenate(parts) if parts else np.zeros((0, self.ctx_len), dtype=np.int64)

    def latent(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Global token indices (ascending, int64) and float32 values where latent ``index`` is
        nonzero; reads only that latent's ranges of each shard."""
        import numpy as np
        from safetensors import safe_open

        if not 0 <= index < self.n_latents:
            raise CacheError(f"latent {index} out of range: the cache has {self.n_latents}")
        tokens, values = [], []
        for entry in self.manifest["shards"]:
            path = self.dir / entry["file"]
            with _reading(path), safe_open(str(path), framework="numpy") as f:
                lo, hi = (int(v) for v in f.get_slice("offsets")[index : index + 2])
                if not 0 <= lo <= hi <= entry.get("activations", hi):
                    raise ValueError(f"offsets {lo}..{hi} of latent {index} out of range")
                if hi > lo:
                    local = f.get_slice("token")[lo:hi].astype(np.int64)
                    if local[0] < 0 or local[-1] >= entry["contexts"] * self.ctx_len:
                        raise ValueError(f"token indices of latent {index} out of range")
                    tokens.append(local + entry.get("first_token", 0))  # format 1: global
                    values.append(f.get_slice("value")[lo:hi].astype(np.float32))
        if not tokens:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(tokens), np.concatenate(values)

    def stats(self) -> dict[str, np.ndarray]:
        """Per latent: ``frequency`` (share of tokens it fires on), ``max``, ``mean`` (when firing),
        summed over the shards' own per-latent figures (no activation is read)."""
        import numpy as np
        from safetensors import safe_open

        n = self.n_latents
        count, total = np.zeros(n), np.zeros(n)
        top = np.zeros(n, dtype=np.float32)
        for entry, shard in zip(self.manifest["shards"], self.shards, strict=True):
            with _reading(shard), safe_open(str(shard), framework="numpy") as f:
                offsets = f.get_tensor("offsets")
                steps = np.diff(offsets)
                if offsets[0] != 0 or (steps < 0).any() or offsets[-1] != entry["activations"]:
                    raise ValueError("its latent offsets are inconsistent")
                count += steps
                total += f.get_tensor("sum")
                np.maximum(top, f.get_tensor("max"), out=top)
        n_tokens = max(1, sum(s["contexts"] for s in self.manifest["shards"]) * self.ctx_len)
        mean = np.divide(total, count, out=np.zeros_like(count), where=count > 0)
        return {"frequency": count / n_tokens, "max": top, "mean": mean, "count": count}

    def iter_latents(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for index in range(self.n_latents):
            yield (index, *self.latent(index))
