"""Workers alive across nodes: on a real two-node Ray cluster on this machine (a head and a worker
node, each its own raylet), the executor's status line, which the run's display shows, follows a
node that dies and one that joins."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from autointerp_ray.executor import RayExecutor
from autointerp_ray.plugin import RayConfig

pytestmark = pytest.mark.ray  # real local clusters (conftest.py)

NODE = {"num_cpus": 1, "object_store_memory": 80 << 20}


@pytest.fixture
def cluster() -> Iterator[Any]:
    """A head node with one CPU (more nodes are added by the test); not connected to."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init replaces it: later tests get it back
    nodes = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()
        signal.signal(signal.SIGTERM, sigterm)


def wait_for(read: Callable[[], str], wanted: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while (value := read()) != wanted:
        if time.monotonic() > deadline:
            pytest.fail(f"never saw {wanted!r}; last: {value!r}")
        time.sleep(0.05)


def square(x: int) -> int:
    return x * x


def test_a_node_that_dies_and_one_that_joins_are_shown(cluster: Any) -> None:
    worker = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    executor = RayExecutor(RayConfig(address=cluster.address))  # a head node's HOST:PORT
    executor.status_interval_s = 0.1
    try:
        assert list(executor.map(square, range(6))) == [x * x for x in range(6)]
        wait_for(executor.status, "ray: 2 nodes · 2 CPUs, 0 busy")
        cluster.remove_node(worker)  # the machine goes away
        wait_for(executor.status, "ray: 1 node · 1 CPU, 0 busy · 1 node lost")
        cluster.add_node(**{**NODE, "num_cpus": 2})  # another one joins
        wait_for(executor.status, "ray: 2 nodes · 3 CPUs, 0 busy · 1 node lost")
        assert list(executor.map(square, range(6))) == [x * x for x in range(6)]
    finally:
        executor.close()
    assert executor.status() == ""
