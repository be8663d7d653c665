"""What an audit returns: the declared lineage, the nearest reference models, flags with their evidence."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..pipeline.record import DNARecord

FLAG_CODES = ("undeclared-base", "unsupported-base", "no-base-declared", "wrong-relation")
RELATIONS = ("finetune", "adapter", "merge", "quantized", "distill", "upscale", "base")
DERIVED_RELATIONS = ("finetune", "adapter", "merge", "quantized", "distill", "upscale")
TRAINED_RELATIONS = ("finetune", "adapter", "merge", "distill")


@dataclass
class Declared:
    """What the card (or the command line) says the model derives from."""

    base_models: list[str] = field(default_factory=list)
    relation: str | None = None
    source: str = "none"  # card | cli | none
    relation_explicit: bool = False  # False when the relation was inferred (e.g. GGUF -> quantized)

    def to_dict(self) -> dict[str, Any]:
        return {"base_models": list(self.base_models), "relation": self.relation, "source": self.source}


@dataclass
class Neighbour:
    model_id: str
    distance: float  # raw DNA cosine distance
    probability: float | None  # behavioural P(related); None when no calibration applies
    family: str
    weights: str | None = None  # near-identical / close / unrelated when both carry comparable weight sketches
    weight_similarity: float | None = None  # median Pearson r of the sketched tensors


@dataclass
class Flag:
    code: str
    message: str
    evidence: dict[str, Any]


@dataclass
class Verdict:
    """The outcome of an audit; `to_dict` is the JSON contract."""

    model: str
    declared: Declared
    nearest: list[Neighbour]
    flags: list[Flag]
    record: DNARecord
    notes: list[str] = field(default_factory=list)
    evidence: dict[str, str] = field(default_factory=dict)  # what each kind of evidence said (weights, behaviour, ...)
    #: how sure the reference's decision point is that the top behavioural candidate is of the model's family
    #: (None without a calibrated reference), and the value at which behaviour alone flags an undeclared base
    family_confidence: float | None = None
    relative_posterior: float | None = None

    @property
    def verdict(self) -> str:
        return "flagged" if self.flags else "clean"

    @property
    def flag_codes(self) -> list[str]:
        return [f.code for f in self.flags]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "declared": self.declared.to_dict(),
            "nearest": [asdict(n) for n in self.nearest],
            "flags": [asdict(f) for f in self.flags],
            "record": self.record.to_dict(),
            "verdict": self.verdict,
            "notes": list(self.notes),
            "evidence": dict(self.evidence),
            "family_confidence": self.family_confidence,
            "relative_posterior": self.relative_posterior,
        }

