"""The one place hf-dna talks to the Hugging Face Hub (a leaf: imports nothing else from hf_dna but errors).

Every Hub call goes through here so that endpoint, token, offline mode and error translation are handled once.
"""
from __future__ import annotations

import os

from .errors import GatedRepoError, HubError, RepoNotFoundError


def is_offline() -> bool:
    """True when the user asked huggingface_hub not to touch the network."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def translate_error(err: Exception, repo_id: str, repo_type: str = "model") -> Exception:
    """Map a huggingface_hub / network exception to a one-line hf-dna error."""
    from huggingface_hub import errors as hf_errors

    if isinstance(err, hf_errors.GatedRepoError):
        return GatedRepoError(f"{repo_type} repo {repo_id} is gated or private: pass a token with access (--token or HF_TOKEN)")
    if isinstance(err, (hf_errors.RepositoryNotFoundError,)):
        return RepoNotFoundError(f"{repo_type} repo {repo_id} not found on {endpoint()} (or private: pass a token)")
    if isinstance(err, hf_errors.RevisionNotFoundError):
        return RepoNotFoundError(f"revision not found in {repo_type} repo {repo_id}")
    if isinstance(err, hf_errors.EntryNotFoundError):
        return RepoNotFoundError(f"file not found in {repo_type} repo {repo_id}: {err}")
    if isinstance(err, hf_errors.LocalEntryNotFoundError):
        return HubError(f"{repo_type} repo {repo_id} is not cached and the Hub is unreachable (offline)")
    if isinstance(err, hf_errors.HfHubHTTPError):
        return HubError(f"Hub request for {repo_id} failed: {str(err).splitlines()[0]}")
    return HubError(f"Hub request for {repo_id} failed: {type(err).__name__}: {err}")


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def try_snapshot_download(repo_id: str, revision: str | None = None, allow_patterns: list[str] | None = None) -> str | None:
    """Snapshot-download a repo, or return None when offline, unreachable or missing (the caller falls back)."""
    if is_offline() or os.path.isdir(repo_id):
        return None
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns)
    except Exception:  # any failure here means "not available from the Hub": the caller has a fallback
        return None


def snapshot(repo_id: str, revision: str | None = None, token: str | bool | None = None,
             allow_patterns: list[str] | None = None) -> tuple[str, str]:
    """Download (or reuse from cache) the files of a model repo; returns (local_dir, commit_sha).

    Raises `RepoNotFoundError`, `GatedRepoError` or `HubError` with a one-line message.
    """
    from huggingface_hub import HfApi, snapshot_download

    try:
        if is_offline():
            path = snapshot_download(repo_id, revision=revision, token=token, allow_patterns=allow_patterns)
            return path, os.path.basename(path)
        sha = HfApi(token=token).model_info(repo_id, revision=revision).sha or (revision or "main")
        path = snapshot_download(repo_id, revision=sha, token=token, allow_patterns=allow_patterns)
        return path, sha
    except Exception as err:
        raise translate_error(err, repo_id) from None
