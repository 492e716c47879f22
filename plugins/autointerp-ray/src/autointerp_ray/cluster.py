"""Connecting the driver to a Ray cluster: start one here, join this machine's, or attach to a head
node; an address that does not answer is one line, said before Ray waits on it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from autointerp.executors import ExecutorError

log = logging.getLogger("autointerp.ray")


def probe(address: str, timeout_s: float) -> None:
    """Raise :class:`ExecutorError` unless something accepts TCP connections at ``address``
    (``HOST:PORT`` or ``ray://HOST:PORT``): Ray itself would retry for a minute or more."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise ExecutorError(
        f"executor.address = {address!r}: no Ray cluster answers there ({reason}); start one "
        'with `ray start --head` on that machine, or set executor.address = "local"'
    )


def connect(config: Any) -> bool:
    """Connect this process to the cluster ``config.address`` names; True when the cluster was
    started here (and is to be shut down with the run). A process already connected (e.g. a test
    that started a cluster) keeps its connection when the address is ``local`` or ``auto``."""
    import ray

    address = config.address
    if address not in ("local", "auto"):
        probe(address, config.connect_timeout_s)
    if ray.is_initialized():
        if address not in ("local", "auto"):
            raise ExecutorError(
                f"executor.address = {address!r}: this process is already connected to another "
                'Ray cluster; set executor.address = "auto" to use that one'
            )
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
    with _keeping_sigterm():
        return _init(address, config, quiet)


@contextlib.contextmanager
def _keeping_sigterm() -> Iterator[None]:
    """Keep this process's SIGTERM handler: ``ray.init`` installs one that exits at once, where
    ``autointerp run`` turns SIGTERM into a clean stop that keeps finished work."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _init(address: str, config: Any, quiet: dict[str, Any]) -> bool:
    import ray

    try:
        if address == "local":
            ray.init(
                address="local", num_cpus=config.num_cpus or os.cpu_count() or 1,
                include_dashboard=False, object_store_memory=config.object_store_mb << 20,
                **quiet,
            )  # fmt: skip
            return True
        ray.init(address=address, **quiet)
    except ExecutorError:
        raise
    except Exception as exc:  # ConnectionError, RuntimeError, gRPC errors: all one line
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ExecutorError(
            f"executor.address = {address!r}: cannot connect to Ray ({type(exc).__name__}: "
            f"{first}); check the address, or that `ray start` ran on this machine"
        ) from None
    log.info("connected to the Ray cluster at %s", address)
    return False


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))
