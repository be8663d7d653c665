"""Fixtures: the local Hub-compatible server (owner: Hub work).

The server starts when this plugin is imported (before the test modules import `huggingface_hub`), listens on
127.0.0.1 and a free port, and `HF_ENDPOINT` / `HF_TOKEN` point at it for the whole session. If `huggingface_hub`
or `datasets` were imported earlier (by another plugin), their import-time constants are patched too.

Tokens: `OWNER_TOKEN` belongs to user `tester` (member of org `test-org`); `OTHER_TOKEN` to user `other`.
Tests that need "no token" remove `HF_TOKEN` with `monkeypatch.delenv` or pass `token=False`.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
from dataclasses import dataclass

import pytest

from tests.hub_server import HubServer, make_server

OWNER_TOKEN = "hf_test_owner_token"
OTHER_TOKEN = "hf_test_other_token"
TOKENS = {OWNER_TOKEN: {"name": "tester", "orgs": ["test-org"]}, OTHER_TOKEN: {"name": "other", "orgs": []}}

SERVER: HubServer = make_server(TOKENS)


def _point_clients_at(url: str) -> None:
    """Set the env for this process and its subprocesses, and patch already-imported client constants."""
    os.environ["HF_ENDPOINT"] = url
    os.environ["HF_TOKEN"] = OWNER_TOKEN
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        constants.ENDPOINT = url
        constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
        constants.HF_HUB_OFFLINE = False
    if "datasets" in sys.modules:
        import datasets.config

        datasets.config.HF_ENDPOINT = url
        datasets.config.HUB_DATASETS_URL = url + "/datasets/{repo_id}/resolve/{revision}/{path}"
        datasets.config.HF_HUB_OFFLINE = False


_point_clients_at(SERVER.url)


def pytest_configure(config) -> None:  # again, in case a plugin loaded after us imported the clients
    _point_clients_at(SERVER.url)


def pytest_unconfigure(config) -> None:
    SERVER.stop()


_names = itertools.count(1)


@dataclass
class LocalHub:
    """Handle on the running server for tests: URL, tokens, and helpers to create repos with given files."""

    server: HubServer
    url: str
    token: str = OWNER_TOKEN
    other_token: str = OTHER_TOKEN
    org: str = "test-org"

    def unique_id(self, stem: str = "repo") -> str:
        """A repo id in the test org that no other test uses."""
        return f"{self.org}/{stem}-{os.getpid()}-{next(_names)}"

    def make_model(self, repo_id: str | None = None, *, card: dict | str | None = None, body: str = "# Model\n",
                   config: dict | None = None, files: dict[str, bytes | str] | None = None, private: bool = False,
                   gated: bool | str = False, repo_type: str = "model") -> str:
        """Create a repo directly in the server's storage (like a git push: no YAML validation) and return its id.

        `card` is a dict (rendered as YAML front matter) or raw README text (e.g. malformed YAML).
        """
        import yaml

        repo_id = repo_id or self.unique_id("model")
        content: dict[str, bytes | str] = dict(files or {})
        if isinstance(card, dict):
            content["README.md"] = f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n{body}"
        elif isinstance(card, str):
            content["README.md"] = card
        if config is not None:
            content["config.json"] = json.dumps(config)
        self.server.seed_repo(repo_id, content, repo_type=repo_type, private=private,
                              gated=gated if gated is not True else "auto")
        return repo_id

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a CLI subprocess that talks to this server."""
        return {**os.environ, "HF_ENDPOINT": self.url, "HF_TOKEN": self.token, **extra}


@pytest.fixture(scope="session")
def local_hub() -> LocalHub:
    """The session's local Hub server (already running; HF_ENDPOINT and HF_TOKEN point at it)."""
    _point_clients_at(SERVER.url)
    return LocalHub(server=SERVER, url=SERVER.url)


@pytest.fixture()
def no_token(monkeypatch) -> None:
    """Run the test without any Hub token in the environment."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", "/nonexistent/hf-token")  # no saved login either
