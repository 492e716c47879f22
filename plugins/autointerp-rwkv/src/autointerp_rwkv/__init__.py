"""autointerp model adapter for RWKV: RWKV-4 (transformers) and RWKV-5/6/7 (BlinkDL checkpoints)."""
