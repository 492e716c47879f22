"""Caching on a Ray cluster: the corpus's token batches cut into chunks, each cached by an actor
that holds the model and the feature source (one per GPU, else one per CPU).

The driver tokenizes (a cheap, deterministic stream), hands each chunk's token ids to an idle
actor, and alone writes the manifest. An actor caches its chunk with
:func:`autointerp.cache.build_cache` into a scratch folder of the run directory (shared storage
on a cluster) and renames the one shard it wrote to the chunk's place: shard ``k`` is always
chunk ``k``, so a chunk redone after its actor died replaces the same file with the same bytes,
and the manifest lists it once, when every earlier chunk is listed. Shard contents do not depend
on where they were computed, and with ``cache_chunk_contexts`` at build_cache's 1024 contexts per
shard the cache is the in-process one, file for file. A rerun resumes after the last listed shard.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autointerp.executors import ExecutorError
from autointerp_ray.cluster import cluster_cpus, cluster_gpus
from autointerp_ray.executor import cancel
from autointerp_ray.workers import status_column

#: what an actor needs from ``info`` to build the run's components itself
_SPEC = ("adapter", "model", "source", "source_options")


@dataclass(frozen=True)
class Chunk:
    """Consecutive token batches that become one cache shard."""

    index: int
    first_context: int
    batches: tuple[Any, ...]  # numpy [batch, ctx_len] token ids


class CacheWorker:
    """A Ray actor holding the model adapter and the feature source, built from the run's
    component options (the same plugins are installed on every machine)."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        from autointerp.plugins import PluginManager

        plugins = PluginManager()
        self.info = dict(info)
        self.adapter = plugins.build("model_adapter", info["adapter"], info["model"])
        self.source = plugins.build("feature_source", info["source"], info["source_options"])

    def cache(self, cache_dir: str, chunk: Chunk) -> dict[str, Any]:
        """Cache ``chunk`` as shard ``chunk.index`` of ``cache_dir``; its manifest entry."""
        import numpy as np
        import torch

        from autointerp.cache import MANIFEST, build_cache

        final = Path(cache_dir)
        # one scratch folder per attempt: a dead or cancelled attempt still running elsewhere
        # never writes into this one (its leftovers go when the cache completes)
        scratch = final / f".chunk-{chunk.index:05d}-{uuid.uuid4().hex[:12]}"
        batches = (torch.from_numpy(np.array(b)) for b in chunk.batches)
        build_cache(
            self.adapter, self.source, batches, scratch, self.info,
            contexts_per_shard=1 << 62, progress=False,
        )  # fmt: skip
        manifest = json.loads((scratch / MANIFEST).read_text(encoding="utf-8"))
        (entry,) = manifest["shards"]
        name = f"shard-{chunk.index:05d}.safetensors"
        os.replace(scratch / entry["file"], final / name)
        shutil.rmtree(scratch, ignore_errors=True)
        first_token = chunk.first_context * int(manifest["ctx_len"])
        return {**entry, "file": name, "first_token": first_token}


def cache_on_actors(
    executor: Any,
    adapter: Any,
    source: Any,
    batches: Iterable[Any],
    cache_dir: Path,
    info: Mapping[str, Any],
    *,
    progress: bool = True,
    total_batches: int | None = None,
) -> Path:
    """Cache ``batches`` on caching actors into ``cache_dir``: the manifest and shards of
    :func:`autointerp.cache.build_cache`, resumed after the last listed shard."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from autointerp.cache import open_manifest

    missing = [key for key in _SPEC if key not in info]
    if missing:
        raise ExecutorError(
            f"ray: caching needs the run's {', '.join(missing)} to build the components on "
            "its workers; cache through `autointerp run` (or use another executor)"
        )
    source.check_site(adapter.site(source.site))
    manifest, manifest_path = open_manifest(cache_dir, info, source)
    config = executor.config
    chunks = _chunks(batches, manifest, config.cache_chunk_contexts)
    first = next(chunks, None)
    if first is not None:  # a complete cache needs no cluster
        executor.ensure_connected()
        actors = executor.actors(info, lambda: _actors(config, info))
        window = 2 * len(actors)
        per_batch = len(first.batches[0])
        columns = [
            TextColumn("caching {task.description} on Ray"), BarColumn(), MofNCompleteColumn(),
            TextColumn("contexts"), status_column(executor.status),
        ]  # fmt: skip
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task(
                source.site, total=total_batches and total_batches * per_batch,
                completed=first.first_context,
            )  # fmt: skip

            def listed(entry: dict[str, Any]) -> None:
                manifest["shards"].append(entry)
                _write_json(manifest_path, manifest)
                bar.advance(task, entry["contexts"])

            chunks = _prepend(first, chunks)
            _dispatch(executor, actors, chunks, str(cache_dir), window, listed)
        # each actor holds a CPU (or GPU) while it lives: the stages after caching need them.
        # After a failure they stay, for a rerun in this process; close() stops them.
        executor.release_actors()
    manifest["ctx_len"] = manifest.get("ctx_len") or (first.batches[0].shape[1] if first else 0)
    manifest["complete"] = True
    manifest["n_tokens"] = sum(s["contexts"] for s in manifest["shards"]) * manifest["ctx_len"]
    _write_json(manifest_path, manifest)
    _remove_strays(cache_dir, manifest)
    return cache_dir


def _remove_strays(cache_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Delete what a stopped run's actors left that the manifest does not list: scratch folders,
    shards of chunks that were never listed (a rerun with other chunk sizes does not redo them)."""
    listed = {s["file"] for s in manifest["shards"]}
    for path in cache_dir.iterdir():
        if path.name.startswith(".chunk-") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith("shard-") and path.name not in listed:
            path.unlink(missing_ok=True)


def _prepend(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield first
    yield from rest


def _chunks(batches: Iterable[Any], manifest: dict[str, Any], per_chunk: int) -> Iterator[Chunk]:
    """The batches not yet cached, as chunks of at least ``per_chunk`` contexts (whole batches),
    numbered after the shards the manifest lists; sets the manifest's ``ctx_len``."""
    done = sum(s["contexts"] for s in manifest["shards"])
    index, seen = len(manifest["shards"]), 0
    held: list[Any] = []
    first_context = done
    for ids in batches:
        b, t = ids.shape
        if manifest.get("ctx_len") is None:
            manifest["ctx_len"] = t
        elif t != manifest["ctx_len"]:
            raise ExecutorError(
                f"ray: token batches have length {t}, the cache has contexts of "
                f"{manifest['ctx_len']}"
            )
        if seen + b <= done:  # cached by an earlier, interrupted run
            seen += b
            continue
        held.append(ids.numpy() if hasattr(ids, "numpy") else ids)
        seen += b
        if sum(len(h) for h in held) >= per_chunk:
            yield Chunk(index, first_context, tuple(held))
            index, first_context, held = index + 1, seen, []
    if held:
        yield Chunk(index, first_context, tuple(held))


def _actors(config: Any, info: Mapping[str, Any]) -> list[Any]:
    """The caching actors: ``cache_actors`` of them, else one per GPU, else one per CPU; each
    restarted (and its chunk redone) up to ``retries`` times when its process or node dies."""
    import ray

    gpus = cluster_gpus()
    count = config.cache_actors or gpus or cluster_cpus()
    resources = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
    actor_class = ray.remote(CacheWorker).options(
        max_restarts=config.retries, max_task_retries=config.retries, **resources
    )
    return [actor_class.remote(dict(info)) for _ in range(count)]


def _dispatch(
    executor: Any,
    actors: list[Any],
    chunks: Iterator[Chunk],
    cache_dir: str,
    window: int,
    listed: Any,
) -> None:
    """Give each chunk to an idle actor (at most ``window`` chunks past the last listed one) and
    list finished chunks in order."""
    import ray

    idle: deque[Any] = deque(actors)
    busy: dict[Any, tuple[Any, Chunk]] = {}
    ready: dict[int, dict[str, Any]] = {}
    next_index: int | None = None

    def settle(block: bool) -> None:
        nonlocal next_index
        if busy:
            finished, _ = ray.wait(
                list(busy), num_returns=1, timeout=executor.config.unit_timeout_s if block else 0
            )
            if block and not finished:
                raise ExecutorError(
                    f"ray: a caching chunk ran past unit_timeout_s = "
                    f"{executor.config.unit_timeout_s:g}"
                )
            for ref in finished:
                actor, chunk = busy.pop(ref)
                idle.append(actor)
                entry = executor.result(ref, f"caching chunk {chunk.index}")
                ready[chunk.index] = entry
        while next_index is not None and next_index in ready:
            listed(ready.pop(next_index))
            next_index += 1

    try:
        for chunk in chunks:
            if next_index is None:
                next_index = chunk.index
            while not idle or chunk.index - next_index >= window:
                settle(block=True)
            actor = idle.popleft()
            busy[actor.cache.remote(cache_dir, chunk)] = (actor, chunk)
            settle(block=False)
        while busy:
            settle(block=True)
    finally:
        cancel(busy)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)
