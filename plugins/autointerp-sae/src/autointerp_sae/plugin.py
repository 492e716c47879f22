"""Registers the `sae` feature source and `autointerp sae train`. Light: torch is imported only when
a run builds the source or the command runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.features import SourceOptions


class SAEConfig(SourceOptions):
    """Where the SAE's files are and how to read them (``device``: auto follows the model;
    ``dtype``: auto keeps the files' own)."""

    path: str = Field(description="sparsify or SAELens directory, or a .safetensors file")
    site: str = Field(
        "", description="site the SAE reads, e.g. resid_post.6 (default: from the files' config)"
    )
    format: Literal["auto", "plain", "sparsify", "saelens"] = Field(
        "auto", description="file layout; auto: detected from the files present"
    )
    activation: Literal["relu", "topk", "jumprelu"] | None = Field(
        None, description="plain files only (others say it): relu, topk or jumprelu"
    )
    k: int | None = Field(None, ge=1, description="active latents per token, for topk")
    subtract_decoder_bias: bool | None = Field(
        None, description="encode x - b_dec (plain default: no; the formats say it)"
    )
    chunk_tokens: int = Field(
        1024, ge=1, description="tokens encoded at once: bounds the dense pre-activation block"
    )


@hookimpl
def autointerp_register_feature_sources(register: Register) -> None:
    register(
        "sae",
        "autointerp_sae.sae:load_sae",
        config=SAEConfig,
        description="sparse autoencoder (ReLU, TopK, JumpReLU): sparsify, SAELens, safetensors",
    )


@hookimpl
def autointerp_register_commands(cli: Any) -> None:
    from autointerp_sae.commands import app

    cli.add_typer(app, name="sae")
