"""examples/sae-vs-neurons: both run configs are valid and differ only in the feature source."""

from __future__ import annotations

from pathlib import Path

from autointerp.config import load_config

EXAMPLE = Path(__file__).parents[3] / "examples" / "sae-vs-neurons"


def test_sae_and_neuron_runs_match_but_for_the_source() -> None:
    sae = load_config(EXAMPLE / "sae.toml")
    neurons = load_config(EXAMPLE / "neurons.toml")
    assert sae.feature_source.name == "sae" and neurons.feature_source.name == "neurons"
    assert sae.feature_source.options["path"].endswith("sae-resid_post.6.safetensors")
    for field in ("model", "explainer", "llm", "scorers", "corpus", "latents", "seed"):
        assert getattr(sae, field) == getattr(neurons, field), field
    assert sae.latents.negatives == "mixed"
