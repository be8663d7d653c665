"""Synthetic DNA records in known families, and small reference stores built from them (for tree/report tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hf_dna.pipeline.record import DNARecord


def family_records(n_families: int = 3, per_family: int = 4, dim: int = 32, noise: float = 0.3, seed: int = 0,
                   projection_seed: int = 42) -> tuple[list[DNARecord], dict[str, str]]:
    """`per_family` noisy copies around each of `n_families` random centres; returns records and model->family."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_families, dim))
    records, families = [], {}
    for f in range(n_families):
        for k in range(per_family):
            model_id = f"org{f}/fam{f}-model-{k}"
            records.append(DNARecord(model_id=model_id, dna=centres[f] + noise * rng.normal(size=dim),
                                     probe_set="synthetic", probe_hash="0" * 64, n_probes=8, encoder="synthetic-enc",
                                     projection_seed=projection_seed, projection="synthetic"))
            families[model_id] = f"fam{f}"
    return records, families


def make_store(directory: Path, records: list[DNARecord], families: dict[str, str], calibrate: bool = False) -> Path:
    """A reference store dir (hf-dna.json, data/**.parquet, lineage.csv[, calibration.json]) holding `records`."""
    from hf_dna.reference.store import ReferenceStore

    lineage = {m: {"model_id": m, "family": fam, "parent": "", "relation": "base", "confidence": "high", "note": ""}
               for m, fam in families.items() if any(r.model_id == m for r in records)}
    calibration = None
    if calibrate:
        from hf_dna.evidence.relation import RelationModel

        calibration = RelationModel.fit(records, lineage).to_dict()
    ReferenceStore.create(directory, records, lineage=lineage, calibration=calibration)
    return directory


def verdict_for(record: DNARecord, family: str, flags: list[dict] | None = None) -> dict:
    """A verdict dict (the `hf-dna audit --format json` contract) around `record`."""
    return {"model": record.model_id, "declared": {"base_models": [], "relation": None, "source": "card"},
            "nearest": [{"model_id": "ref/base", "distance": 0.1, "probability": 0.9, "family": family}],
            "flags": flags or [], "record": record.to_dict(), "verdict": "flagged" if flags else "clean", "notes": []}
