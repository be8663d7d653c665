"""Typed errors. Every error hf-dna raises on bad input is an `HfDnaError` whose message is one line.

The CLI prints `Error: <message>` and exits with `exit_code` (1); nothing else is printed.
"""
from __future__ import annotations


def first_line(err: BaseException) -> str:
    """``Type: first line of the message``: how a foreign exception is quoted in a one-line error."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


class HfDnaError(Exception):
    """Base class: a clear, one-line, user-facing failure."""

    exit_code = 1

    def __str__(self) -> str:  # keep messages on one line whatever the cause
        return " ".join(super().__str__().split())


class InvalidInputError(HfDnaError, ValueError):
    """A path, option or file the user gave is missing or malformed."""


class ProbeSetNotFoundError(InvalidInputError):
    """No built-in probe set, generator or file matches the given name."""


class ResponsesFileError(InvalidInputError):
    """A bring-your-own responses file is unreadable, empty, or does not match the probes."""


class ModelLoadError(HfDnaError):
    """The model could not be loaded for generation."""


class ModelNotFoundError(ModelLoadError):
    """Neither a local path nor a reachable Hub repo."""


class GatedRepoError(ModelLoadError):
    """The repo is gated or private and no (valid) token was given."""


class RemoteCodeNotAllowedError(ModelLoadError):
    """The model needs custom code and `--trust-remote-code` was not given."""


class NotACausalLMError(ModelLoadError):
    """The model is not a text-generation (causal LM) model."""


class CorruptModelFileError(ModelLoadError):
    """A weights file (GGUF, safetensors) is truncated or malformed."""


class OutOfMemoryError(HfDnaError):
    """Generation ran out of (GPU or CPU) memory."""


class IncompatibleRecordsError(HfDnaError):
    """DNA records made with different probes, encoder, dim, seed or projection cannot be compared."""


class RecordFileError(InvalidInputError):
    """A DNA record file is missing or malformed."""


class HubError(HfDnaError):
    """A Hub call failed (network, permissions, conflict)."""


class RepoNotFoundError(HubError):
    """The repo does not exist on the Hub (or is invisible with this token)."""


class ReferenceStoreError(HfDnaError):
    """A reference store (local dir or Hub dataset) is missing, malformed or incompatible."""


class PushConflictError(HubError):
    """A push would overwrite another model's record, or lost a race and gave up."""


class HubOfflineError(HubError):
    """The Hub is not reachable on purpose (HF_HUB_OFFLINE=1): callers may continue without Hub data."""


class HubUnreachableError(HubOfflineError):
    """The Hub could not be reached (no network, DNS, refused connection): like offline for read-only callers."""


class StaleParentError(PushConflictError):
    """A commit was refused because the branch moved since `parent_commit` (someone else pushed): re-read, retry."""


class ApiError(HfDnaError):
    """A chat-completions API (HF inference providers or an OpenAI-compatible endpoint) refused or failed a run:
    unreachable, bad key, unknown model, or no answer after the retries. Never carries the key."""
