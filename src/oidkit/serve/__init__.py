"""Serving: the OpenAI-compatible HTTP API and the terminal chat."""
