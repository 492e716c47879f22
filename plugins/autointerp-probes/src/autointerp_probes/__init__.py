"""autointerp-probes: see README.md."""
