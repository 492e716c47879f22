"""autointerp LLM clients: OpenAI and any OpenAI-compatible server."""
