"""Registers the ``ray`` executor. Light: ray is imported only when a run hands the executor work,
never when plugins are listed."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from autointerp import Register, hookimpl
from autointerp.config import ComponentConfig

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"

#: ``HOST:PORT`` (a head node's GCS) or ``ray://HOST:PORT`` (Ray Client)
_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


class RayConfig(ComponentConfig):
    """Where the cluster is, and how much work is in flight on it."""

    address: str = Field(
        "local", description="'local' (start a cluster inside this run), 'auto' (the cluster "
        "this machine joined with `ray start`), or a head node 'HOST:6379' / 'ray://HOST:10001'",
    )  # fmt: skip
    num_cpus: int = Field(0, ge=0, description="local: CPUs of the cluster started (0: all cores)")
    object_store_mb: int = Field(
        256, ge=80, description="local: the started cluster's object store, in MiB"
    )
    ahead: int = Field(0, ge=0, description="units in flight (0: two per CPU of the cluster)")
    retries: int = Field(
        3, ge=0, description="times a unit whose worker or node died is run again elsewhere"
    )
    unit_timeout_s: float = Field(
        3600.0, gt=0, description="a unit still running after this long fails the stage"
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, description="how long to wait for a cluster address to answer"
    )
    cache_actors: int = Field(
        0, ge=0, description="caching actors, each holding the model and feature source "
        "(0: one per GPU of the cluster, else one per CPU)",
    )  # fmt: skip
    cache_chunk_contexts: int = Field(
        1024, ge=1, description="contexts per cached chunk (one cache shard each)"
    )

    @field_validator("address")
    @classmethod
    def _known_address(cls, value: str) -> str:
        if value in ("local", "auto") or _ADDRESS.match(value):
            return value
        raise ValueError("expected 'local', 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")


@hookimpl
def autointerp_register_executors(register: Register) -> None:
    register(
        "ray",
        "autointerp_ray.executor:RayExecutor",
        config=RayConfig,
        description="run work units (caching, example building, scoring) on a Ray cluster",
    )
