"""Fixtures: the local Hub-compatible server (owner: Hub work)."""
