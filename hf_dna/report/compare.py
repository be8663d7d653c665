"""Distance matrices between DNA records (refusing incompatible ones)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..pipeline.dna import cosine_distance_matrix, euclidean_distance_matrix
from ..pipeline.record import DNARecord, check_compatible


@dataclass
class Comparison:
    """Pairwise cosine and Euclidean distances between records, in input order."""

    labels: list[str]
    cosine: np.ndarray
    euclidean: np.ndarray

    def to_dict(self) -> dict:
        return {"models": self.labels, "cosine": self.cosine.round(6).tolist(), "euclidean": self.euclidean.round(6).tolist()}


def compare(records: list[DNARecord]) -> Comparison:
    """Compare records; raises `IncompatibleRecordsError` with the reason when they cannot be compared."""
    if len(records) < 2:
        raise InvalidInputError("compare needs at least two DNA records")
    check_compatible(records)
    vectors = np.stack([r.vector for r in records])
    labels = [r.model_id if r.revision in ("local", "", None) else f"{r.model_id}@{r.revision[:7]}" for r in records]
    return Comparison(labels, cosine_distance_matrix(vectors), euclidean_distance_matrix(vectors))
