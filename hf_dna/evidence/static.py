"""Static evidence: facts read from a model's files (architecture, tokenizer vocabulary), compared pairwise."""
from __future__ import annotations

from typing import Any


def static_match(a: dict[str, Any], b: dict[str, Any]) -> dict[str, bool]:
    """Compare two records' static evidence (`hf_dna.hub.ModelMetadata.static_evidence`) where both know it."""
    out = {}
    if a.get("tokenizer_vocab_hash") and b.get("tokenizer_vocab_hash"):
        out["same_tokenizer_vocab"] = a["tokenizer_vocab_hash"] == b["tokenizer_vocab_hash"]
    if a.get("architectures") and b.get("architectures"):
        out["same_architecture"] = sorted(a["architectures"]) == sorted(b["architectures"])
    return out
