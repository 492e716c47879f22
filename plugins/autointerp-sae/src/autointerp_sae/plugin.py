"""Registers the `sae` feature source and `autointerp sae train`. Light: torch is imported only when
a run builds the source or the command runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from autointerp import Register, hookimpl
from autointerp.features import SourceOptions

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


class SAEConfig(SourceOptions):
    """Where the SAE's files are and how to read them (``device``: auto follows the model;
    ``dtype``: auto keeps the files' own)."""

    path: str = Field(
        "", description="sparsify or SAELens directory, or a .safetensors file (or release)"
    )
    release: str = Field(
        "", description="an SAELens release (e.g. gpt2-small-res-jb), with sae_id, instead of path"
    )
    sae_id: str = Field(
        "", description="the SAE's id within the SAELens release (e.g. blocks.8.hook_resid_pre)"
    )
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

    omit_defaults = ("release", "sae_id")

    @model_validator(mode="after")
    def _one_location(self) -> SAEConfig:
        if bool(self.release) != bool(self.sae_id):
            given, missing = ("release", "sae_id") if self.release else ("sae_id", "release")
            raise ValueError(f"{given} needs {missing} too (SAELens names an SAE by both)")
        if self.release and self.path:
            raise ValueError("give path or release/sae_id, not both")
        if not self.release and not self.path:
            raise ValueError("give path (SAE files) or release and sae_id (an SAELens release)")
        return self


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
