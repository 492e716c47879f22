"""autointerp-steering: see README.md."""
