"""The ``ray`` executor: the pipeline's work units as Ray tasks, results back to the driver in
order (the driver alone writes the run's store), a bounded number of units in flight.

A unit whose worker process or node dies is run again by Ray (``retries`` times, elsewhere when
the node is gone); a unit still unanswered after ``unit_timeout_s`` fails the stage with one line.
Caching, when the run caches, goes to actors that each hold the model and feature source
(:mod:`autointerp_ray.caching`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from autointerp.executors import ExecutorError
from autointerp_ray.cluster import cluster_cpus, connect
from autointerp_ray.plugin import RayConfig
from autointerp_ray.workers import WorkerWatch

T = TypeVar("T")
R = TypeVar("R")


class RayExecutor:
    """Runs work units on a Ray cluster (connected when the first unit is handed over)."""

    name = "ray"
    in_process = False
    #: seconds between two looks at the cluster for :meth:`status`
    status_interval_s = 1.0

    def __init__(self, config: RayConfig | None = None) -> None:
        self.config = config or RayConfig()
        self._connected = False
        self._started_here = False
        self._remotes: dict[Callable[..., Any], Any] = {}
        self._actors: tuple[str, list[Any]] | None = None
        self._lock = threading.Lock()
        self._watch: WorkerWatch | None = None

    def ensure_connected(self) -> None:
        """Connect to the cluster once (stages may first hand over work from two threads), and
        start watching its workers for :meth:`status`."""
        with self._lock:
            if not self._connected:
                self._started_here = connect(self.config)
                self._connected = True
                self._watch = WorkerWatch(self._current_actors, self.status_interval_s).start()

    def status(self) -> str:
        """Workers alive, for the run's progress display: caching actors alive (while caching),
        nodes, their CPUs (GPUs) and how many are busy, nodes lost since the run connected.
        The latest reading of a background thread (never waits on the cluster); "" until a
        unit is handed over (no cluster is contacted before)."""
        return self._watch.line if self._watch is not None else ""

    def _current_actors(self) -> list[Any]:
        held = self._actors
        return list(held[1]) if held is not None else []

    def _remote(self, fn: Callable[[T], R]) -> Any:
        import ray

        if fn not in self._remotes:
            self._remotes[fn] = ray.remote(fn).options(
                max_retries=self.config.retries, retry_exceptions=False
            )
        return self._remotes[fn]

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn`` over ``items`` as Ray tasks; results in input order, read lazily, with at most
        ``ahead`` units in flight before their results are taken."""
        it = iter(items)
        first = list(itertools.islice(it, 1))
        if not first:  # nothing to run: no cluster is needed (e.g. a resumed, finished stage)
            return
        self.ensure_connected()
        remote = self._remote(fn)
        ahead = self.config.ahead or 2 * cluster_cpus()
        it = itertools.chain(first, it)
        pending: deque[Any] = deque(remote.remote(item) for item in itertools.islice(it, ahead))
        try:
            while pending:
                result = self.result(pending[0])
                pending.popleft()
                for item in itertools.islice(it, 1):
                    pending.append(remote.remote(item))
                yield result
        finally:
            cancel(pending)

    def result(self, ref: Any, what: str = "a work unit") -> Any:
        """The value of task ``ref``; a unit's own exception is raised as itself, Ray's failures
        (timeout, dead worker after its retries, lost cluster) as one-line ExecutorErrors."""
        import ray
        from ray import exceptions as rx

        try:
            return ray.get(ref, timeout=self.config.unit_timeout_s)
        except rx.GetTimeoutError:
            raise ExecutorError(
                f"ray: {what} ran past unit_timeout_s = {self.config.unit_timeout_s:g}"
            ) from None
        except rx.RayTaskError as exc:  # the unit's own exception: as the in-process run has it
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise ExecutorError(f"ray: {what} failed ({_line(exc)})") from None
        except rx.RayActorError as exc:
            if exc.actor_init_failed:  # the worker's own error (e.g. a model it cannot load)
                raise ExecutorError(
                    f"ray: {what}: its worker could not start ({_last_line(exc.error_msg)})"
                ) from None
            raise ExecutorError(
                f"ray: {what} lost its worker {self.config.retries + 1} times "
                f"({type(exc).__name__}); finished work is saved: rerun to resume"
            ) from None
        except (rx.WorkerCrashedError, rx.NodeDiedError) as exc:
            raise ExecutorError(
                f"ray: {what} lost its worker {self.config.retries + 1} times "
                f"({type(exc).__name__}); finished work is saved: rerun to resume"
            ) from None
        except rx.RayError as exc:
            raise ExecutorError(
                f"ray: {what} failed ({type(exc).__name__}: {_line(exc)}); finished work is "
                "saved: rerun to resume"
            ) from None

    def cache_chunks(
        self,
        adapter: Any,
        source: Any,
        batches: Iterable[Any],
        cache_dir: Path,
        info: Mapping[str, Any],
        *,
        progress: bool = True,
        total_batches: int | None = None,
    ) -> Path:
        """Cache ``batches`` in chunks on caching actors (the same shards and manifest as
        :func:`autointerp.cache.build_cache`); see :mod:`autointerp_ray.caching`."""
        from autointerp_ray.caching import cache_on_actors

        return cache_on_actors(
            self, adapter, source, batches, cache_dir, info,
            progress=progress, total_batches=total_batches,
        )  # fmt: skip

    def actors(self, info: Mapping[str, Any], start: Callable[[], list[Any]]) -> list[Any]:
        """The caching actors for the components ``info`` names: started on first use, kept
        until :meth:`release_actors` or :meth:`close` (a rerun after a stopped call reuses them
        and their loaded models)."""
        key = json.dumps(dict(info), sort_keys=True, default=str)
        if self._actors is None or self._actors[0] != key:
            self.release_actors()
            self._actors = (key, start())
        return self._actors[1]

    def release_actors(self) -> None:
        """Stop the caching actors (their models go with them)."""
        if self._actors is not None:
            import ray

            for actor in self._actors[1]:
                with contextlib.suppress(Exception):  # the cluster may be gone
                    ray.kill(actor)
            self._actors = None

    def close(self) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        self.release_actors()
        if self._started_here:
            import ray

            ray.shutdown()
        self._connected = self._started_here = False
        self._remotes.clear()


def cancel(refs: Iterable[Any]) -> None:
    """Cancel tasks whose results are no longer wanted (the run stopped early)."""
    import ray

    for ref in refs:
        with contextlib.suppress(Exception):  # already finished, or the cluster is gone
            ray.cancel(ref)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _last_line(text: str) -> str:
    """The last line of a remote traceback: the exception and its message."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"
