"""Registers the explainers and holds their configs. Light: nothing heavy is imported here."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.config import ComponentConfig


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
    max_tokens: int = Field(48, ge=8, description="output-token limit of an answer")
    max_reasks: int = Field(2, ge=0, description="re-asks quoting the parse error")


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
