"""Registers the explainers and holds their configs. Light: nothing heavy is imported here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from autointerp import Register, hookimpl
from autointerp.config import ComponentConfig

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


#: output-token limit of an explainer that reasons first (chain of thought), unless set
COT_MAX_TOKENS = 512


class ExplainerConfig(ComponentConfig):
    """Options shared by the prompt-based explainers. Defaults: parity with the peer tools (all
    of 40 train examples of 32 tokens in one prompt); the economy mode changes nothing here, as
    one prompt per latent is already the least."""

    prompt: str = Field("default.v1", description="prompt template file (prompts/<id>.toml)")
    max_examples: int = Field(40, ge=1, description="activating examples shown, strongest first")
    example_width: int = Field(32, ge=4, description="tokens per example, centred on the peak")
    highlight_threshold: float = Field(
        0.3, ge=0, le=1, description="mark tokens above this fraction of the strongest activation"
    )
    max_marked_tokens: int = Field(12, ge=1, description="marked tokens listed after the examples")
    show_activations: bool = Field(
        False, description="list marked tokens with activation values scaled 0-10"
    )
    temperature: float = Field(0.0, ge=0, description="sampling temperature")
    max_tokens: int = Field(
        48,
        ge=8,
        description=f"output-token limit of an answer ({COT_MAX_TOKENS} when chain_of_thought "
        "is on and this is not set)",
    )
    max_reasks: int = Field(2, ge=0, description="re-asks quoting the parse error")
    chain_of_thought: bool = Field(
        False,
        description="the LLM reasons first, then answers on a final 'Explanation:' line (only "
        "that line is kept; without it, the last non-empty line); uses the prompt's <name>_cot "
        "variant",
    )

    @model_validator(mode="before")
    @classmethod
    def _room_to_reason(cls, data: Any) -> Any:
        """Reasoning needs more output tokens than a one-line answer: unless set, raise them."""
        if isinstance(data, dict) and data.get("chain_of_thought") and "max_tokens" not in data:
            return {**data, "max_tokens": COT_MAX_TOKENS}
        return data


class ContrastiveConfig(ExplainerConfig):
    """Also shows non-activating examples (which scorers must then leave out)."""

    prompt: str = Field("contrastive.v1", description="prompt template file (prompts/<id>.toml)")
    max_examples: int = Field(6, ge=1, description="activating examples shown, strongest first")
    max_negatives: int = Field(5, ge=1, description="non-activating examples shown")


class OutputSideConfig(ExplainerConfig):
    """Explains from the tokens a latent promotes through the unembedding."""

    prompt: str = Field("output_side.v1", description="prompt template file (prompts/<id>.toml)")
    top_k_tokens: int = Field(15, ge=1, description="promoted tokens shown, strongest first")
    context_examples: int = Field(
        3, ge=0, description="activating examples shown as well (0: output side only)"
    )


class BestOfKConfig(ComponentConfig):
    """k candidate explanations from a base explainer; the best is kept."""

    base: str = Field("default", description="the explainer generating candidates")
    base_options: dict[str, Any] = Field(default_factory=dict, description="its options")
    k: int = Field(4, ge=1, le=64, description="candidates per latent")
    temperature: float = Field(0.7, ge=0, description="sampling temperature of the candidates")
    scorer: str | None = Field(
        None,
        description="scorer that judges the candidates (wired by the run); none: majority vote",
    )


class ImportedConfig(ComponentConfig):
    """Explanations read from a file other tools (or another run) wrote: no LLM call. ``sha256``
    pins the file's content, so a changed file is a new run, never one treated as done."""

    path: str = Field(description="file or directory of explanations (see `autointerp import`)")
    format: Literal["auto", "delphi", "neuronpedia", "autointerp"] = Field(
        "auto", description="delphi, neuronpedia or autointerp (our export); auto: detected"
    )
    sha256: str | None = Field(
        None,
        validate_default=True,
        description="content hash of path (required; `autointerp import` writes it)",
    )
    source: str | None = Field(
        None, description="the file's module/layer id to use, e.g. 6-res-jb or layers.6.mlp"
    )
    layer: int | None = Field(
        None, ge=0, description="use the file's explanations of this layer (default: the run's)"
    )
    pick: str | None = Field(
        None, description="where a latent has several: the explainer, typeName or model to keep"
    )

    @field_validator("path")
    @classmethod
    def _exists(cls, value: str) -> str:
        from pathlib import Path

        if not Path(value).expanduser().exists():
            raise ValueError(f"{value!r}: no such file or directory of explanations")
        return value

    @field_validator("sha256")
    @classmethod
    def _pinned(cls, value: str | None, info: ValidationInfo) -> str | None:
        from pathlib import Path

        from autointerp_explainers.import_formats import content_sha256

        if "path" not in info.data:
            return value
        path = Path(info.data["path"]).expanduser()
        actual = content_sha256(path)
        if value is None:
            raise ValueError(
                f'required: pin the content of {path} with sha256 = "{actual}" (a changed file '
                "then makes a new run; `autointerp import` writes it for you)"
            )
        if value != actual:
            raise ValueError(
                f"{path} changed since it was pinned (its sha256 is now {actual}): set "
                f'sha256 = "{actual}" to score the new content as a new run, or restore the file'
            )
        return value


@hookimpl
def autointerp_register_commands(cli: Any) -> None:
    from autointerp_explainers.import_command import import_command

    cli.command("import")(import_command)


@hookimpl
def autointerp_register_explainers(register: Register) -> None:
    register(
        "default",
        "autointerp_explainers.default:DefaultExplainer",
        config=ExplainerConfig,
        description="top activating examples with firing tokens marked",
    )
    register(
        "contrastive",
        "autointerp_explainers.contrastive:ContrastiveExplainer",
        config=ContrastiveConfig,
        description="activating vs non-activating examples (shown ones excluded from scoring)",
    )
    register(
        "output_side",
        "autointerp_explainers.output_side:OutputSideExplainer",
        config=OutputSideConfig,
        description="the tokens a latent promotes through the unembedding",
    )
    register(
        "best_of_k",
        "autointerp_explainers.best_of_k:BestOfKExplainer",
        config=BestOfKConfig,
        description="k candidates from a base explainer, the best kept by a scorer",
    )
    register(
        "imported",
        "autointerp_explainers.imported:ImportedExplainer",
        config=ImportedConfig,
        description="explanations imported from delphi, Neuronpedia or autointerp files",
    )
