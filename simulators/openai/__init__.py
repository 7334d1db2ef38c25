"""OpenAI simulator: Chat Completions driven by a deterministic collector policy."""
