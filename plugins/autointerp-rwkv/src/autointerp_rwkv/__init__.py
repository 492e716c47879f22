"""autointerp model adapter for RWKV (transformers' RWKV-4 model class)."""
