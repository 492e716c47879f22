"""autointerp model adapter for transformer language models (GPT-2, Llama-style, GPT-NeoX ...)."""
