"""Fixtures: tiny models built in the tests, and the real shipped GGUF models (owner: generation work)."""
