"""autointerp LLM client for the Anthropic messages API."""
