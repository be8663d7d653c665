"""On-disk cache of generated responses, so an interrupted run resumes where it stopped.

One directory per (model, revision, probe hash, generation settings) key; every finished generation batch is
written there as its own small JSON file (atomically), so a crash or Ctrl-C loses at most the batch in flight.
Default location: ``$HF_DNA_CACHE`` or ``$HF_HOME/hf-dna/responses`` (``~/.cache/huggingface/hf-dna/responses``).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..hub import hf_dna_home


def default_cache_dir() -> Path:
    """``$HF_DNA_CACHE`` if set, else ``<HF_HOME>/hf-dna/responses``."""
    if os.environ.get("HF_DNA_CACHE"):
        return Path(os.environ["HF_DNA_CACHE"]).expanduser()

    return hf_dna_home() / "responses"


def cache_key(model_id: str, revision: str, probe_hash: str, generation: dict[str, Any]) -> str:
    """sha256 over everything that determines the responses."""
    material = {"model": model_id, "revision": revision, "probe_hash": probe_hash, "generation": generation}
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


class ResponseCache:
    """Responses of one key: ``{probe index: text}``, stored as one file per generated batch."""

    def __init__(self, root: str | os.PathLike | None, key: str, description: dict[str, Any] | None = None):
        self.dir = Path(root).expanduser() / key[:2] / key if root is not None else None
        self.description = description or {}

    @property
    def enabled(self) -> bool:
        return self.dir is not None

    def payloads(self) -> Iterator[dict[str, Any]]:
        """The content of each readable batch file, in file order (unreadable ones, e.g. from a full disk, are
        skipped)."""
        if not self.enabled or not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("batch-*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                yield data

    def load(self) -> dict[int, str]:
        """Every response cached so far (batch files that cannot be read are ignored)."""
        found: dict[int, str] = {}
        for data in self.payloads():
            try:
                found.update(zip((int(i) for i in data["indices"]), data["texts"]))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def save_batch(self, batch_no: int, indices: list[int], texts: list[str]) -> None:
        """Persist one finished batch (atomic: a half-written batch is never read back)."""
        self.write_payload(batch_no, {"indices": [int(i) for i in indices], "texts": list(texts)})

    def write_payload(self, batch_no: int, payload: dict[str, Any]) -> None:
        """Write batch file `batch_no` (and the key description, once), atomically."""
        if not self.enabled:
            return
        meta = self.dir / "key.json"
        if not meta.exists():
            atomic_write_text(meta, json.dumps(self.description, indent=1, sort_keys=True, ensure_ascii=False))
        atomic_write_text(self.dir / f"batch-{batch_no:06d}.json", json.dumps(payload, ensure_ascii=False))