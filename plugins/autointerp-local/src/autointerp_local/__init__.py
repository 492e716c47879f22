"""autointerp offline LLM client: a packaged GGUF model served by llama.cpp (xllamacpp)."""
