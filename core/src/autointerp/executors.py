"""The built-in executors, registered through the ``autointerp`` entry point like any plugin.

An executor runs the pipeline's CPU-bound work units and hands results back in order to the
driver, which alone writes the run's store: example building (a latent range per unit) and
scoring with scorers that need neither an LLM nor the model (explanations per unit).
``in-process`` (the default) runs them here, lazily; ``process-pool`` runs them in local worker
processes, a bounded number of units ahead, so memory stays flat whatever the number of latents.
A unit's function and inputs must be picklable (module-level functions, plain data).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from pydantic import Field

from autointerp.config import ComponentConfig, EmptyConfig
from autointerp.errors import AutointerpError
from autointerp.hookspecs import hookimpl

T = TypeVar("T")
R = TypeVar("R")


class ExecutorError(AutointerpError):
    """A work unit could not be run (a worker died, a unit ran past its deadline)."""


class InProcessExecutor:
    """Runs each unit in this process when its result is wanted."""

    name = "in-process"
    #: units run in the driver: no need to ship self-contained scorers elsewhere
    in_process = True

    def __init__(self, config: Any = None) -> None:
        pass

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return map(fn, items)

    def close(self) -> None:
        pass


class ProcessPoolConfig(ComponentConfig):
    workers: int = Field(0, ge=0, description="worker processes (0: one per CPU core)")
    ahead: int = Field(0, ge=0, description="units submitted ahead of the driver (0: 2/worker)")
    unit_timeout_s: float = Field(
        3600.0, gt=0, description="a unit still running after this long fails the stage"
    )


class ProcessPoolExecutor:
    """Runs units in local worker processes (spawned: no state shared with the driver)."""

    name = "process-pool"
    in_process = False

    def __init__(self, config: ProcessPoolConfig) -> None:
        self.config = config
        self.workers = config.workers or os.cpu_count() or 1
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _get_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn`` over ``items`` in the workers; results in input order, read lazily, with at most
        ``ahead`` units submitted before their results are taken."""
        pool = self._get_pool()
        ahead = self.config.ahead or 2 * self.workers
        it = iter(items)
        pending: deque[concurrent.futures.Future[R]] = deque(
            pool.submit(fn, item) for item in itertools.islice(it, ahead)
        )
        while pending:
            future = pending.popleft()
            try:
                result = future.result(timeout=self.config.unit_timeout_s)
            except concurrent.futures.TimeoutError:
                raise ExecutorError(
                    f"process-pool: a work unit ran past unit_timeout_s = "
                    f"{self.config.unit_timeout_s:g}"
                ) from None
            except concurrent.futures.process.BrokenProcessPool as exc:
                raise ExecutorError(f"process-pool: a worker process died ({exc})") from None
            for item in itertools.islice(it, 1):
                pending.append(pool.submit(fn, item))
            yield result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@hookimpl
def autointerp_register_executors(register: Any) -> None:
    register(
        "in-process",
        "autointerp.executors:InProcessExecutor",
        config=EmptyConfig,
        description="run work units in this process (the default)",
    )
    register(
        "process-pool",
        "autointerp.executors:ProcessPoolExecutor",
        config=ProcessPoolConfig,
        description="run CPU-bound work units (example building) in local worker processes",
    )
