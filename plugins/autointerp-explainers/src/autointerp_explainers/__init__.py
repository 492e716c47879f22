"""autointerp explainers: turn a latent's examples into a short explanation through an LLM."""
