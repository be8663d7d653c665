"""The reference records an audited model is compared with, scored by the reference's relation model, and the
reference's known lineage."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..evidence.lineage import GOOD_CONFIDENCE, same_model
from ..evidence.relation import RelationModel
from ..evidence.static import static_match
from ..evidence.weights import MIN_TENSORS, compare_sketches
from ..pipeline.record import DNARecord, check_compatible
from ..reference.layout import CALIBRATION_NAME, CONFIG_NAME
from ..reference.store import ReferenceStore, default_store_dirs


class ReferenceLineage:
    """The reference's declared lineage (lineage.csv rows or records' declared bases) in one place."""

    def __init__(self, store: Any):
        self.store = store

    def info(self, model_id: str) -> dict[str, str]:
        getter = getattr(self.store, "lineage", None)
        row = getter(model_id) if callable(getter) else None
        return dict(row or {})

    def family(self, model_id: str) -> str:
        info = self.info(model_id)
        fam = info.get("family") or ""
        return "" if fam == "unknown" else fam

    def labelled_family(self, model_id: str) -> str:
        """The family where the lineage is of high or medium confidence, else '': what calibration reads."""
        return self.family(model_id) if self.info(model_id).get("confidence") in GOOD_CONFIDENCE else ""

    def parents(self, model_id: str, record: DNARecord | None = None) -> set[str]:
        parents = {p.strip() for p in (self.info(model_id).get("parent") or "").split(";") if p.strip()}
        if record is not None:
            parents |= set(record.declared_base_models or [])
        return parents

    def family_of_declared(self, base: str, records: list[DNARecord]) -> str:
        """The family of a declared base: its own row, or that of reference models naming it as parent."""
        fam = self.family(base)
        if fam:
            return fam
        for rec in records:
            if base in self.parents(rec.model_id, rec) and self.family(rec.model_id):
                return self.family(rec.model_id)
        return ""



@dataclass
class Candidates:
    """Reference records other than the audited model, with their scores: P(related) from behaviour (NaN when no
    calibration applies), raw DNA distance, and the weight comparison where both sides carry a weight sketch."""

    records: list[DNARecord]
    probability: np.ndarray
    distance: np.ndarray
    scores: Any
    relation_model: Any
    notes: list[str] = field(default_factory=list)
    query_static: dict[str, Any] = field(default_factory=dict)
    weights: list[dict[str, Any] | None] = field(default_factory=list)
    calibration_store: Any = None  # the store whose lineage the decision points are fitted on (None: uncalibrated)

    @property
    def calibrated(self) -> bool:
        return self.relation_model is not None

    def static_match(self, i: int) -> dict[str, bool]:
        """Static evidence both sides carry: same tokenizer vocabulary, same architecture."""
        return static_match(self.query_static, (self.records[i].evidence or {}).get("static") or {})

    def weight_relation(self, i: int) -> str | None:
        """near-identical / close / unrelated from the weights, or None without comparable weights."""
        match = self.weights[i] if self.weights else None
        return match.get("relation") if match else None

    def index(self, model_id: str) -> int | None:
        for i, rec in enumerate(self.records):
            if rec.model_id == model_id:
                return i
        lowered = model_id.lower()
        return next((i for i, rec in enumerate(self.records) if rec.model_id.lower() == lowered), None)

    def why(self, i: int) -> dict[str, float]:
        """Which evidence moved P(related) for candidate i: log-odds contribution per evidence kind."""
        if not self.calibrated:
            return {}
        return {k: round(v, 3) for k, v in self.relation_model.explain(self.scores, i).items()}


def cosine_distances(query: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """1 - cos between `query` and each row of `refs` (raw DNA, as `hf-dna compare` prints)."""
    q = query / (np.linalg.norm(query) or 1.0)
    norms = np.linalg.norm(refs, axis=1)
    return 1.0 - (refs @ q) / np.where(norms == 0, 1.0, norms)


def calibration_for(store: Any) -> tuple[dict[str, Any] | None, Any, str | None]:
    """The relation model to score `store` with: its own calibration, else that of an embedded store built the
    same way (probes, encoder, dim, seed, projection), else none. (calibration, the store it belongs to, note)."""
    if getattr(store, "calibration", None):
        return store.calibration, store, None
    config = getattr(store, "config", None) or {}
    for directory in default_store_dirs():
        other = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        if all(other.get(k) == config.get(k) for k in COMPAT_CONFIG) and (directory / CALIBRATION_NAME).is_file():
            embedded = ReferenceStore.load(directory)
            return embedded.calibration, embedded, (
                f"the reference has no calibration: P(related) and decision points from the embedded store "
                f"{directory.name}, built with the same probes, encoder and projection")
    return None, None, ("the reference has no calibration and no embedded store was built the same way: nearest "
                        "models by DNA distance, P(related) uncalibrated (not given), no behavioural flags")


#: what two stores must share for one's calibration to score the other's records
COMPAT_CONFIG = ("probe_hash", "encoder", "dim", "projection_seed", "projection")


def weight_matches(record: DNARecord, records: list[DNARecord], notes: list[str]) -> list[dict[str, Any] | None]:
    """`compare_sketches` of the record's weight sketch with each reference record's (None where either lacks one)."""
    mine = (record.evidence or {}).get("weights")
    if not mine:
        return [None] * len(records)
    out: list[dict[str, Any] | None] = []
    for rec in records:
        theirs = (rec.evidence or {}).get("weights")
        match = compare_sketches(mine, theirs) if theirs else None
        # a tensor or two of equal shape (an embedding of the same size in another architecture) decide nothing
        usable = match and match.get("similarity") is not None and match["tensors_compared"] >= MIN_TENSORS
        out.append(match if usable else None)
    if not any(out):
        with_weights = sum(1 for rec in records if (rec.evidence or {}).get("weights"))
        notes.append(f"weights: {with_weights} reference model(s) carry a weight sketch, none of the same shapes"
                     if with_weights else "weights: no reference model carries a weight sketch "
                     "(`hf-dna reference enrich` adds them)")
    return out


def score_candidates(record: DNARecord, store: Any, exclude: str) -> Candidates:
    """Score every reference record except `exclude` (the audited model itself, under any of its API routing
    variants: `same_model`)."""
    records = [r for r in store.records if not same_model(r.model_id, exclude)]
    notes = []
    if records:
        check_compatible([record, records[0]])
        record, notes = _comparable_evidence(record, records[0])
    calibration, calibration_store, note = calibration_for(store)
    if note:
        notes.append(note)
    vectors = np.stack([r.vector for r in records]) if records else np.zeros((0, record.dim), dtype=np.float32)
    distance = cosine_distances(record.vector.astype(np.float64), vectors.astype(np.float64))
    relation_model = scores = None
    probability = np.full(len(records), np.nan)
    if calibration is not None and records:
        relation_model = RelationModel.from_dict(calibration)
        scores = relation_model.score(record, records)
        probability = np.asarray(scores.probability, dtype=float)
    return Candidates(records, probability, distance, scores, relation_model, notes,
                      dict((record.evidence or {}).get("static") or {}), weight_matches(record, records, notes),
                      calibration_store)


def _comparable_evidence(record: DNARecord, reference_record: DNARecord) -> tuple[DNARecord, list[str]]:
    """The record without evidence vectors whose size differs from the reference's (made by another version)."""
    ref = reference_record.evidence or {}
    odd = [k for k, v in (record.evidence or {}).items() if k in ref and _evidence_size(v) != _evidence_size(ref[k])]
    if not odd:
        return record, []
    kept = {k: v for k, v in record.evidence.items() if k not in odd}
    return replace(record, evidence=kept), [f"evidence {', '.join(odd)} of the record differs in size from the "
                                            "reference's (another hf-dna version): not used"]


def _evidence_size(value: Any) -> Any:
    """Length of an evidence vector, or the shape of a packed per-probe sketch."""
    if isinstance(value, list):
        return len(value)
    return tuple(value.get("shape") or ()) if isinstance(value, dict) else None

