"""Registers the `planted` feature source and the `autointerp bench planted` command. Light: numpy
and torch are imported only when a run builds the source."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.features import SourceOptions

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


class PlantedConfig(SourceOptions):
    """Which planted set, seeded how, and the model site it names (its cache directory)."""

    set: str = Field(
        "default", description="'default' (the set shipped with the plugin) or a JSON file "
        "holding a list of planted latents (see the plugin's README)",
    )  # fmt: skip
    seed: int = Field(0, description="seeds the default set's variants and the random firings")
    site: str = Field(
        "resid_post.0", description="a site of the model the source names (no activations are "
        "read: the latents are rules over the token ids)",
    )  # fmt: skip


class HashedConfig(SourceOptions):
    """How wide, how many latents per token, over which n-grams."""

    width: int = Field(1_048_576, ge=1, description="number of latents")
    k: int = Field(16, ge=1, le=256, description="latents each token fires")
    n: int = Field(4, ge=1, le=16, description="n-gram length hashed (the token and those before)")
    seed: int = Field(0, description="seeds the hash salts")
    site: str = Field(
        "resid_post.0", description="a site of the model the source names (no activations are "
        "read: the latents are hashes of the token ids)",
    )  # fmt: skip


@hookimpl
def autointerp_register_feature_sources(register: Register) -> None:
    register(
        "planted",
        "autointerp_planted.source:PlantedSource",
        config=PlantedConfig,
        description="planted latents with known meanings: rules over token ids (benchmarks)",
    )
    register(
        "hashed",
        "autointerp_planted.hashed:HashedSource",
        config=HashedConfig,
        description="any number of latents, each firing on hashed n-grams of token ids (scale "
        "tests: no forward pass)",
    )


@hookimpl
def autointerp_register_commands(cli: Any) -> None:
    from autointerp_planted.bench import app

    cli.add_typer(app, name="bench")
