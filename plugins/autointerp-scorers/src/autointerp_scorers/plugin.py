"""Registers the scorers and holds their configs. Light: nothing heavy is imported here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.config import ComponentConfig

#: the autointerp plugin API versions this plugin was written for
PLUGIN_API = ">=1,<2"


class LLMScorerConfig(ComponentConfig):
    """Options shared by the scorers that ask an LLM."""

    prompt: str = Field("", description="prompt template file (prompts/<id>.toml); '': default")
    example_width: int = Field(32, ge=4, description="tokens per example, centred on the peak")
    temperature: float = Field(0.0, ge=0, description="sampling temperature")
    max_reasks: int = Field(1, ge=0, description="re-asks quoting the parse error")
    logprobs: bool = Field(
        True, description="token logprobs (AUROC, expected values) where the client has them"
    )
    top_logprobs: int = Field(5, ge=1, le=20, description="alternatives per token with logprobs")


#: economy mode: every example of a latent in one prompt, answered as one JSON object (no
#: re-ask, so explain + detection + fuzzing stay within 5 calls per latent)
ECONOMY = {"batch_size": 0, "structured": True, "max_reasks": 0}
#: small-llm mode (the quickstart's): one example per prompt, the value the AUROC of P(1); small
#: models answer lists with fixed patterns and lean to one class, but their logprobs still rank
SMALL_LLM = {"batch_size": 1, "headline": "auroc"}


class DetectionConfig(LLMScorerConfig):
    """Does the whole example activate the latent? Activating and non-activating examples mixed.

    Defaults: parity with the peer tools (5 examples per prompt, 32-token examples)."""

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "economy": ECONOMY,
        "small-llm": SMALL_LLM,
    }

    batch_size: int = Field(5, ge=0, description="examples per prompt (0: all in one prompt)")
    headline: Literal["balanced_accuracy", "auroc"] = Field(
        "balanced_accuracy",
        description="the score's value: balanced accuracy of the 0/1 answers, or AUROC of their "
        "P(1) from logprobs (small models' answers lean to one class; falls back to balanced "
        "accuracy without logprobs)",
    )
    structured: bool = Field(
        False,
        description="answer as a JSON object keyed by example number (a JSON schema where the "
        "client supports one, parsed from text otherwise)",
    )


class FuzzingConfig(DetectionConfig):
    """Are the marked tokens the activating ones? Correctly and incorrectly marked examples."""

    highlight_threshold: float = Field(
        0.3, ge=0, le=1, description="mark tokens above this fraction of the example's peak"
    )
    incorrect_fraction: float = Field(
        0.5, ge=0, le=1, description="share of activating examples shown with wrong marks"
    )
    include_negatives: bool = Field(
        True, description="also show non-activating examples with random marks (all wrong)"
    )


class SimulationConfig(LLMScorerConfig):
    """Predict each token's activation (0-10) from the explanation; correlation with the truth."""

    max_tokens_per_answer: int = Field(
        8, ge=2, description="output-token budget per example token (answer length limit)"
    )


class SurprisalConfig(ComponentConfig):
    """Loss of a language model (the run's model adapter) on each example, with the explanation as
    a prompt prefix versus a neutral prefix; activating examples should gain more."""

    prefix: str = Field(
        "The following text is about {explanation}:\n", description="prefix with {explanation}"
    )
    baseline_prefix: str = Field("The following text:\n", description="the neutral prefix")
    example_width: int = Field(32, ge=4, description="subject tokens per example (peak-centred)")
    batch_size: int = Field(8, ge=1, description="sequences per forward call")
    max_length: int = Field(256, ge=8, description="scorer-model tokens per sequence, at most")


class EmbeddingConfig(ComponentConfig):
    """Explanation as query, examples as documents: AUROC of activating vs non-activating."""

    model: str = Field(
        "", description="sentence-embedding model folder ('': packaged all-MiniLM-L6-v2)"
    )
    query_prefix: str = Field("", description="text put before the explanation (query)")
    example_width: int = Field(32, ge=4, description="tokens per example, centred on the peak")
    batch_size: int = Field(32, ge=1, description="texts per embedding call")
    max_length: int = Field(256, ge=8, description="embedding-model tokens per text")
    threads: int | None = Field(None, ge=1, description="torch threads (none: leave as is)")


class InterventionConfig(ComponentConfig):
    """Steer the subject model along the latent's decoder direction; can the LLM tell which
    continuation was steered, given the explanation?"""

    prompt: str = Field("", description="prompt template file (prompts/<id>.toml); '': default")
    site: str = Field("", description="site to steer ('': from the latent's source key)")
    strength: float = Field(
        8.0, description="added vector norm, in units of the site's mean activation norm"
    )
    relative: bool = Field(
        True, description="scale strength by the site's mean norm (else: absolute norm)"
    )
    prompts: tuple[str, ...] = Field(
        ("The", "I think that", "Once upon a time", "In the news today,"),
        min_length=1,
        description="neutral prompts to continue",
    )
    new_tokens: int = Field(16, ge=1, le=256, description="tokens generated per continuation")
    temperature: float = Field(0.0, ge=0, description="LLM sampling temperature")
    max_reasks: int = Field(1, ge=0, description="re-asks quoting the parse error")
    logprobs: bool = Field(True, description="use the answer's logprobs for AUROC when available")
    top_logprobs: int = Field(5, ge=1, le=20, description="alternatives per token with logprobs")


@hookimpl
def autointerp_register_scorers(register: Register) -> None:
    register(
        "detection",
        "autointerp_scorers.detection:DetectionScorer",
        config=DetectionConfig,
        description="does a whole example activate the latent? (balanced accuracy)",
    )
    register(
        "fuzzing",
        "autointerp_scorers.fuzzing:FuzzingScorer",
        config=FuzzingConfig,
        description="are the marked tokens the activating ones? (balanced accuracy)",
    )
    register(
        "simulation",
        "autointerp_scorers.simulation:SimulationScorer",
        config=SimulationConfig,
        description="per-token activations predicted from the explanation (correlation)",
    )
    register(
        "surprisal",
        "autointerp_scorers.surprisal:SurprisalScorer",
        config=SurprisalConfig,
        description="loss drop from the explanation as a prompt prefix (AUROC; model adapter)",
    )
    register(
        "embedding",
        "autointerp_scorers.embedding:EmbeddingScorer",
        config=EmbeddingConfig,
        description="explanation-to-example embedding similarity (AUROC; all-MiniLM-L6-v2)",
    )
    register(
        "intervention",
        "autointerp_scorers.intervention:InterventionScorer",
        config=InterventionConfig,
        description="steered vs unsteered continuations told apart by the explanation (AUROC)",
    )
