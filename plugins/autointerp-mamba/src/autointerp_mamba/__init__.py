"""autointerp model adapter for Mamba and Mamba-2 (transformers' model classes)."""
