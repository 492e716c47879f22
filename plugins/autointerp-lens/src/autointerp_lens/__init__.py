"""autointerp-lens: see README.md."""
