"""autointerp-planted: a feature source of planted latents with known meanings, and a benchmark
of explanations and scores against them (``autointerp bench planted RUN``)."""
