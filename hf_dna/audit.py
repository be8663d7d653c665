"""Audit a model card's declared lineage against the model's behaviour (its DNA).

`audit` gets (or reuses) the model's DNA, reads what its card declares, scores every reference model with the
reference's calibrated relation model (P(related), fitted on labelled pairs; `hf_dna.calibrate`) and turns the
disagreements into flags, each with its evidence:

- ``undeclared-base``: a close relative (P(related) at or above the reference's *relative* decision point) that
  the card does not name, that is not a relative of a named base (same family) and not a descendant of the
  audited model (its reference lineage does not name the audited model as parent). When the card names a base
  that the reference cannot place (absent, family unknown) the relative may be of that family: a note, no flag;
- ``unsupported-base``: a declared base present in the reference whose P(related) is below the *support*
  decision point, no member of its family reaching it either (a declared base absent from the reference gives
  a note, not a flag);
- ``no-base-declared``: the card declares a derived relation (finetune, adapter, merge, quantized, ...) but no
  base model;
- ``wrong-relation``: a card that explicitly declares ``quantized`` while the DNA distance to the declared base
  fits the reference's fine-tune parent-child pairs better than its quantized ones. The reverse claim is not
  checked: a fine-tune can be arbitrarily light, so a small distance does not refute it (on the real
  reference that direction fired on honest cards).

No threshold is set by hand. P(related) comes from the reference's relation model (fitted on all labelled
pairs, so its base rate is that of a random pair: a few percent). The two decision points are fitted on the
reference itself, scoring each labelled model against all the others (`DecisionPoints`):

- relative: where P(the top-scored candidate is of the same family) reaches `RELATIVE_POSTERIOR` (logistic fit
  on the top candidate's log-odds; the target posterior is chosen by measurement in bench/audit_eval.py);
- support: where a true parent and a base of another family are equally likely (class-balanced logistic fit
  on the log-odds of (child, parent) pairs vs (model, other-family base) pairs): a card's claim is taken as
  equally likely true or false before looking at the DNA.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import HubOfflineError, InvalidInputError, RecordFileError, RepoNotFoundError
from .probes import load_probe_set
from .record import DNARecord, check_compatible, read_records

#: probe set used when neither --probes, --record nor a reference says otherwise (chosen in bench/audit_eval.py)
DEFAULT_PROBES = "paper600:100"
FLAG_CODES = ("undeclared-base", "unsupported-base", "no-base-declared", "wrong-relation")
RELATIONS = ("finetune", "adapter", "merge", "quantized", "distill", "upscale", "base")
DERIVED_RELATIONS = ("finetune", "adapter", "merge", "quantized", "distill", "upscale")
TRAINED_RELATIONS = ("finetune", "adapter", "merge", "distill")
RELATED = 0.5  # decision point of a calibrated probability
#: how often the reference's top-scored candidates must be of the right family at the relative decision point.
#: Chosen by bench/audit_eval.py on the embedded references: the lowest target (of 0.5..0.9) with no false
#: undeclared-base on honest cards of high-confidence models in either (paper600:100 0.5: 21/172 false, 0.7: 4/172,
#: 0.8: 0/172; recall of planted omissions 0.39 / 0.21 / 0.08, precision 0.84 / 0.92 / 0.96; chat-rand-zh100 0/40
#: from 0.7 -- see bench/RESULTS.md). `--relative-posterior` trades back.
RELATIVE_POSTERIOR = 0.8
GOOD_CONFIDENCE = ("high", "medium")


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
    distance: float
    probability: float
    family: str


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
        }


# ------------------------------------------------------------------------------------------- the audit
def audit(model: str, *, reference: Any = None, probes: str | None = None, responses: str | None = None,
          record: DNARecord | str | None = None, base_models: list[str] | tuple[str, ...] | None = None,
          relation: str | None = None, settings: Any = None, token: str | None = None, k: int = 5,
          progress: bool = False, revision: str | None = None, gguf_file: str | None = None,
          relative_posterior: float = RELATIVE_POSTERIOR) -> Verdict:
    """Audit `model` (Hub id, local dir/file, or any name when `responses`/`record` are given).

    `reference`: a `ReferenceStore`, a local store dir or a Hub dataset id; default: the embedded store made
    with the record's probes. `base_models`/`relation` override the card (source ``cli``).
    """
    from .reference import ReferenceStore

    if relation is not None and relation not in RELATIONS:
        raise InvalidInputError(f"relation must be one of {', '.join(RELATIONS)}, not {relation!r}")
    notes: list[str] = []
    store = reference if isinstance(reference, ReferenceStore) else (
        ReferenceStore.load(reference) if reference is not None else None)
    probes = probes or (_store_probe_set(store) if store is not None else None) or DEFAULT_PROBES
    if store is None and record is None:  # find the store before generating anything: a missing one fails fast
        store = ReferenceStore.default(probe_hash=load_probe_set(probes).hash)
    dna = _get_record(model, record, responses, probes, settings, token, progress, revision, gguf_file)
    if store is None:
        store = ReferenceStore.default(probe_hash=dna.probe_hash)
    declared = declared_lineage(model, base_models, relation, token, notes, revision)
    return judge(model, dna, declared, store, k=k, notes=notes, relative_posterior=relative_posterior)


def _store_probe_set(store: Any) -> str | None:
    config = getattr(store, "config", None)
    if isinstance(config, dict):
        return config.get("probe_set")
    return getattr(config, "probe_set", None)


def _get_record(model: str, record: DNARecord | str | None, responses: str | None, probes: str,
                settings: Any, token: str | None, progress: bool, revision: str | None = None,
                gguf_file: str | None = None) -> DNARecord:
    """The model's DNA: a given record (object or file), else extracted from responses or by generation."""
    if isinstance(record, DNARecord):
        return record
    if record is not None:
        records = read_records(record)
        if len(records) == 1:
            return records[0]
        matching = [r for r in records if r.model_id == model]
        if len(matching) != 1:
            raise RecordFileError(f"{record} holds {len(records)} records and {len(matching)} for {model}: "
                                  "pass a file with one record")
        return matching[0]
    from .extract import extract
    from .generate import GenerationSettings

    return extract(model, probes, responses=responses, settings=settings or GenerationSettings.paper(), token=token,
                   revision=revision, gguf_file=gguf_file, progress=progress)


def declared_lineage(model: str, base_models: list[str] | tuple[str, ...] | None, relation: str | None,
                     token: str | None, notes: list[str], revision: str | None = None) -> Declared:
    """Declared bases from the command line when given, else from the model's card (Hub or local dir)."""
    from . import hub

    if base_models or relation:
        notes.append("declared base from --base-model/--relation (the model card was not read)")
        return Declared(list(dict.fromkeys(base_models or [])), relation, "cli", relation is not None)
    if os.path.exists(model):
        meta = hub.local_metadata(model)
        where = "local model files"
    elif hub.is_offline():
        notes.append("Hub offline (HF_HUB_OFFLINE=1): model card not read; no base declared (use --base-model)")
        return Declared()
    else:
        try:
            meta = hub.model_metadata(model, revision=revision, token=token)
        except (RepoNotFoundError, HubOfflineError) as err:
            where = "model not on the Hub" if isinstance(err, RepoNotFoundError) else "model card not read"
            notes.append(f"{where} ({err}): no base declared (use --base-model)")
            return Declared()
        where = "model card"
    notes.extend(f"{where}: {warning}" for warning in meta.warnings)
    bases = list(dict.fromkeys(meta.base_models))
    if not bases and "README.md" not in meta.files:
        notes.append(f"no model card in the {where}: no base declared (use --base-model)")
        return Declared()
    if bases:
        sources = ", ".join(f"{b} ({'/'.join(meta.base_model_sources.get(b, [])) or 'card'})" for b in bases)
        notes.append(f"declared base read from the {where}: {sources}")
    if meta.base_model_relation and not meta.relation_declared:
        notes.append(f"relation {meta.base_model_relation!r} inferred (no base_model_relation in the card)")
    return Declared(bases, meta.base_model_relation, "card", bool(meta.relation_declared))


# ------------------------------------------------------------------------------------------- decision points
@dataclass
class DecisionPoints:
    """P(related) cut-offs fitted on the reference (see module doc); `source` says how."""

    support: float
    source: str
    top_fit: tuple[float, float, float, float] | None = None  # logistic (coef, intercept, mean, scale) on logit P
    n_top: int = 0
    n_support_pairs: int = 0

    def relative_at(self, posterior: float = RELATIVE_POSTERIOR) -> float:
        """P(related) at which a top candidate is of the right family with probability `posterior`."""
        if self.top_fit is None:
            return max(posterior, RELATED)
        coef, intercept, mean, scale = self.top_fit
        crossing = mean + scale * (np.log(posterior / (1 - posterior)) - intercept) / coef
        return float(1.0 / (1.0 + np.exp(-crossing)))

    @property
    def relative(self) -> float:
        return self.relative_at(RELATIVE_POSTERIOR)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def _logistic_1d(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float] | None:
    """(coef, intercept, mean, scale) of a logistic fit of y on x; None with one class or no positive slope."""
    from .calibrate import fit_logistic

    if int(y.sum()) < 2 or int((1 - y).sum()) < 2:
        return None
    coef, intercept, mean, scale = fit_logistic(x[:, None], y.astype(float))
    return None if coef[0] <= 0 else (float(coef[0]), float(intercept), float(mean[0]), float(scale[0]))


def _crossing(x: np.ndarray, y: np.ndarray, balanced: bool) -> float | None:
    """P(related) where a 1-D logistic fit of y on logit(P) crosses 0.5 (class-balanced: prior shift removed)."""
    fit = _logistic_1d(x, y)
    if fit is None:
        return None
    coef, intercept, mean, scale = fit
    intercept -= np.log(y.sum() / (1 - y).sum()) if balanced else 0.0
    return float(1.0 / (1.0 + np.exp(-(mean - scale * intercept / coef))))


_POINTS: Any = None


def decision_points(store: Any, relation_model: Any) -> DecisionPoints:
    """The relative and support decision points of `store` (computed once per store object)."""
    import weakref

    global _POINTS
    if _POINTS is None:
        _POINTS = weakref.WeakKeyDictionary()
    try:
        return _POINTS[store]
    except (KeyError, TypeError):
        pass
    points = _fit_decision_points(store, relation_model)
    try:
        _POINTS[store] = points
    except TypeError:
        pass
    return points


def _fit_decision_points(store: Any, relation_model: Any) -> DecisionPoints:
    records = store.records
    lineage = _Lineage(store)
    if len(records) < 4:
        return DecisionPoints(RELATED, "too few reference records: 0.5")
    fam = np.array([lineage.family(r.model_id) if lineage.info(r.model_id).get("confidence") in GOOD_CONFIDENCE
                    else "" for r in records], dtype=object)
    scores = relation_model.all_pairs(records)
    labelled = np.flatnonzero(fam != "")
    top = np.nanargmax(scores[labelled], axis=1)
    top_x, top_y = _logit(scores[labelled, top]), (fam[top] == fam[labelled]).astype(float)
    index = {r.model_id: i for i, r in enumerate(records)}
    roots = np.array([lineage.info(r.model_id).get("relation") == "base" for r in records]) & (fam != "")
    pos, neg = [], []
    for i in labelled:
        pos += [scores[i, index[p]] for p in lineage.parents(records[i].model_id) if p in index]
        neg += list(scores[i, roots & (fam != fam[i])])
    pair_x = _logit(np.array(pos + neg))
    pair_y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    top_fit, support = _logistic_1d(top_x, top_y), _crossing(pair_x, pair_y, balanced=True)
    source = (f"fitted on the reference: top candidate of {len(labelled)} labelled models "
              f"({int(top_y.sum())} of the same family); {len(pos)} (child, parent) vs {len(neg)} "
              "(model, other-family base) pairs")
    if top_fit is None or support is None:
        source += "; a fit failed (one class or no separation): 0.5 used for it"
    return DecisionPoints(support if support is not None else RELATED, source, top_fit, len(labelled),
                          len(pos) + len(neg))


# ------------------------------------------------------------------------------------------- judging
@dataclass
class _Candidates:
    """Reference records other than the audited model, with their scores."""

    records: list[DNARecord]
    probability: np.ndarray
    distance: np.ndarray
    scores: Any
    relation_model: Any
    notes: list[str] = field(default_factory=list)
    query_static: dict[str, Any] = field(default_factory=dict)

    def static_match(self, i: int) -> dict[str, bool]:
        """Static evidence both sides carry: same tokenizer vocabulary, same architecture."""
        return static_match(self.query_static, (self.records[i].evidence or {}).get("static") or {})

    def index(self, model_id: str) -> int | None:
        for i, rec in enumerate(self.records):
            if rec.model_id == model_id:
                return i
        lowered = model_id.lower()
        return next((i for i, rec in enumerate(self.records) if rec.model_id.lower() == lowered), None)

    def why(self, i: int) -> dict[str, float]:
        """Which evidence moved P(related) for candidate i: log-odds contribution per evidence kind."""
        return {k: round(v, 3) for k, v in self.relation_model.explain(self.scores, i).items()}


def cosine_distances(query: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """1 - cos between `query` and each row of `refs` (raw DNA, as `hf-dna compare` prints)."""
    q = query / (np.linalg.norm(query) or 1.0)
    norms = np.linalg.norm(refs, axis=1)
    return 1.0 - (refs @ q) / np.where(norms == 0, 1.0, norms)


def score_candidates(record: DNARecord, store: Any, exclude: str) -> _Candidates:
    """Score every reference record except `exclude` (the audited model itself)."""
    from .calibrate import RelationModel

    if not getattr(store, "calibration", None):
        from .errors import ReferenceStoreError

        raise ReferenceStoreError("the reference has no calibration: rebuild it with `hf-dna reference build`")
    records = [r for r in store.records if r.model_id != exclude]
    notes = []
    if records:
        check_compatible([record, records[0]])
        record, notes = _comparable_evidence(record, records[0])
    relation_model = RelationModel.from_dict(store.calibration)
    scores = relation_model.score(record, records)
    vectors = np.stack([r.vector for r in records]) if records else np.zeros((0, record.dim), dtype=np.float32)
    distance = cosine_distances(record.vector.astype(np.float64), vectors.astype(np.float64))
    return _Candidates(records, np.asarray(scores.probability, dtype=float), distance, scores, relation_model, notes,
                       dict((record.evidence or {}).get("static") or {}))


def static_match(a: dict[str, Any], b: dict[str, Any]) -> dict[str, bool]:
    """Compare two records' static evidence (`hf_dna.hub.ModelMetadata.static_evidence`) where both know it."""
    out = {}
    if a.get("tokenizer_vocab_hash") and b.get("tokenizer_vocab_hash"):
        out["same_tokenizer_vocab"] = a["tokenizer_vocab_hash"] == b["tokenizer_vocab_hash"]
    if a.get("architectures") and b.get("architectures"):
        out["same_architecture"] = sorted(a["architectures"]) == sorted(b["architectures"])
    return out


def _comparable_evidence(record: DNARecord, reference_record: DNARecord) -> tuple[DNARecord, list[str]]:
    """The record without evidence vectors whose size differs from the reference's (made by another version)."""
    from dataclasses import replace

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


class _Lineage:
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


def judge(model: str, record: DNARecord, declared: Declared, store: Any, *, k: int = 5,
          notes: list[str] | None = None, relative_posterior: float = RELATIVE_POSTERIOR) -> Verdict:
    """Compare the declared lineage with the DNA's relatives in `store`; the decision part of `audit`."""
    notes = list(notes or [])
    cands = score_candidates(record, store, exclude=model)
    lineage = _Lineage(store)
    notes += cands.notes
    if cands.scores.fallback:
        notes.append(f"{cands.scores.note}")
    points = decision_points(store, cands.relation_model)
    order = np.lexsort((cands.distance, -cands.probability))
    nearest = [Neighbour(cands.records[i].model_id, round(float(cands.distance[i]), 6),
                         round(float(cands.probability[i]), 4), lineage.family(cands.records[i].model_id))
               for i in order[:k]]
    flags = []
    flags += _undeclared_base(model, declared, cands, lineage, order, points.relative_at(relative_posterior),
                              points.source, notes)
    flags += _unsupported_bases(declared, cands, lineage, notes, points)
    flags += _no_base_declared(declared)
    flags += _wrong_relation(declared, cands, lineage, store, notes)
    notes += _static_notes(cands, order)
    return Verdict(model, declared, nearest, flags, record, notes)


def _static_notes(cands: _Candidates, order: np.ndarray, most: int = 5) -> list[str]:
    """Reference models whose files show the same tokenizer vocabulary (static evidence, reported beside the
    behavioural verdict: the reference's calibration has no static evidence to weigh it)."""
    same = [cands.records[i].model_id for i in order if cands.static_match(i).get("same_tokenizer_vocab")]
    if not same:
        return []
    more = f" and {len(same) - most} more" if len(same) > most else ""
    return [f"static evidence: same tokenizer vocabulary as {', '.join(same[:most])}{more}"]


def _relative_evidence(cands: _Candidates, lineage: _Lineage, i: int) -> dict[str, Any]:
    rec = cands.records[i]
    info = lineage.info(rec.model_id)
    return {"model_id": rec.model_id, "probability": round(float(cands.probability[i]), 4),
            "distance": round(float(cands.distance[i]), 6), "family": info.get("family", ""),
            "parent": info.get("parent", ""), "relation": info.get("relation", ""),
            "confidence": info.get("confidence", ""), "decided_by": cands.why(i),
            **({"static": match} if (match := cands.static_match(i)) else {})}


def _undeclared_base(model: str, declared: Declared, cands: _Candidates, lineage: _Lineage,
                     order: np.ndarray, threshold: float, threshold_source: str, notes: list[str]) -> list[Flag]:
    named = set(declared.base_models)
    named_families = {lineage.family_of_declared(b, cands.records) for b in named} - {""}
    relatives, descendants, explained = [], [], []
    for i in order:
        if cands.probability[i] < threshold:
            break
        rec = cands.records[i]
        parents = lineage.parents(rec.model_id, rec)
        if model in parents:
            descendants.append(rec.model_id)
        elif rec.model_id in named or parents & named or (lineage.family(rec.model_id) in named_families):
            explained.append(rec.model_id)
        else:
            relatives.append(int(i))
    if not relatives:
        return []
    unplaced = [b for b in named if cands.index(b) is None and not lineage.family_of_declared(b, cands.records)]
    if unplaced:  # the relative may be of the declared base's family: nothing contradicts the card
        rel = cands.records[relatives[0]]
        notes.append(f"closest relative {rel.model_id} (P(related)={cands.probability[relatives[0]]:.2f}) is not "
                     f"named by the card, but the declared base {', '.join(unplaced)} cannot be placed in the "
                     "reference, so it is not flagged")
        return []
    top = cands.records[relatives[0]]
    suggested = [top.model_id, *sorted(lineage.parents(top.model_id, top))]
    what = "declares no base model" if not named else f"names {', '.join(sorted(named))}"
    origin = f"; {top.model_id} derives from {', '.join(suggested[1:])}" if len(suggested) > 1 else ""
    message = (f"behaves like a close relative of {top.model_id} (P(related)={cands.probability[relatives[0]]:.2f}, "
               f"family {lineage.family(top.model_id) or 'unknown'}{origin}), but its card {what}")
    evidence = {"relatives": [_relative_evidence(cands, lineage, i) for i in relatives[:5]],
                "n_relatives": len(relatives), "suggested_base_models": list(dict.fromkeys(suggested)),
                "excluded_descendants": descendants, "explained_by_declared_base": explained,
                "threshold": round(threshold, 4), "threshold_source": threshold_source,
                "evidence_kinds": list(cands.scores.kinds)}
    return [Flag("undeclared-base", message, evidence)]


def _unsupported_bases(declared: Declared, cands: _Candidates, lineage: _Lineage, notes: list[str],
                       points: DecisionPoints) -> list[Flag]:
    flags = []
    for base in declared.base_models:
        i = cands.index(base)
        if i is None:
            notes.append(f"declared base {base} is not in the reference: its DNA cannot be checked")
            continue
        family = lineage.family(cands.records[i].model_id)
        members = [j for j, rec in enumerate(cands.records) if family and lineage.family(rec.model_id) == family]
        best_member = max(members, key=lambda j: cands.probability[j], default=i)
        if max(cands.probability[i], cands.probability[best_member]) >= points.support:
            continue
        best = int(np.argmax(cands.probability)) if len(cands.records) else i
        rank = int((cands.probability > cands.probability[i]).sum()) + 1
        message = (f"declared base {base} is not supported by the DNA: P(related)={cands.probability[i]:.2f} "
                   f"(rank {rank} of {len(cands.records)}); closest is {cands.records[best].model_id} "
                   f"(P={cands.probability[best]:.2f})")
        flags.append(Flag("unsupported-base", message, {
            "declared_base": _relative_evidence(cands, lineage, i), "rank": rank,
            "best_family_member": _relative_evidence(cands, lineage, best_member),
            "closest": _relative_evidence(cands, lineage, best), "threshold": round(points.support, 4),
            "threshold_source": points.source, "evidence_kinds": list(cands.scores.kinds)}))
    return flags


def _no_base_declared(declared: Declared) -> list[Flag]:
    if declared.base_models or declared.relation not in DERIVED_RELATIONS:
        return []
    return [Flag("no-base-declared", f"the card declares relation {declared.relation!r} but no base model",
                 {"declared_relation": declared.relation, "source": declared.source})]


# ------------------------------------------------------------------------------------------- relation
def relation_distances(store: Any, lineage: _Lineage | None = None) -> dict[str, list[float]]:
    """Cosine distances of the reference's labelled (child, parent) pairs, by group: ``quantized`` / ``trained``."""
    lineage = lineage or _Lineage(store)
    by_id = {r.model_id: r for r in store.records}
    groups: dict[str, list[float]] = {"quantized": [], "trained": []}
    for rec in store.records:
        info = lineage.info(rec.model_id)
        group = "quantized" if info.get("relation") == "quantized" else (
            "trained" if info.get("relation") in TRAINED_RELATIONS else None)
        if group is None or info.get("confidence") not in GOOD_CONFIDENCE:
            continue
        for parent in lineage.parents(rec.model_id):
            if parent in by_id:
                d = cosine_distances(rec.vector.astype(np.float64), by_id[parent].vector[None].astype(np.float64))
                groups[group].append(float(d[0]))
    return groups


def relation_posterior(distance: float, groups: dict[str, list[float]]) -> float | None:
    """P(quantized | distance) from Gaussians on log-distance with a pooled variance (equal priors);
    None when the reference has fewer than two pairs of either kind."""
    if min(len(groups["quantized"]), len(groups["trained"])) < 2:
        return None
    logs = {g: np.log(np.maximum(v, 1e-9)) for g, v in groups.items()}
    pooled = np.concatenate([v - v.mean() for v in logs.values()])
    var = max(float(pooled.var(ddof=2)), 1e-6)
    x = np.log(max(distance, 1e-9))
    ll = {g: -0.5 * (x - v.mean()) ** 2 / var for g, v in logs.items()}
    return float(1.0 / (1.0 + np.exp(np.clip(ll["trained"] - ll["quantized"], -50, 50))))


def _wrong_relation(declared: Declared, cands: _Candidates, lineage: _Lineage, store: Any,
                    notes: list[str]) -> list[Flag]:
    if not declared.relation_explicit or declared.relation != "quantized":
        return []
    present = [(b, cands.index(b)) for b in declared.base_models]
    present = [(b, i) for b, i in present if i is not None]
    if not present:
        return []
    groups = relation_distances(store, lineage)
    base, i = present[0]
    p_quant = relation_posterior(float(cands.distance[i]), groups)
    if p_quant is None:
        notes.append(f"wrong-relation not checked: the reference has {len(groups['quantized'])} quantized and "
                     f"{len(groups['trained'])} fine-tune parent-child pairs (needs 2 of each)")
        return []
    says_quantized = declared.relation == "quantized"
    if (p_quant >= RELATED) == says_quantized:
        return []
    fits = "quantized copy" if p_quant >= RELATED else "trained derivative (fine-tune)"
    message = (f"declared relation {declared.relation!r} to {base}, but the DNA distance {cands.distance[i]:.4f} "
               f"fits the reference's {fits} pairs better (P(quantized)={p_quant:.2f})")
    return [Flag("wrong-relation", message, {
        "declared_relation": declared.relation, "base": base, "distance": round(float(cands.distance[i]), 6),
        "p_quantized": round(p_quant, 4),
        "reference_pairs": {g: {"n": len(v), "median_distance": round(float(np.median(v)), 6)}
                            for g, v in groups.items()}}), ]
