"""Audit a model card's declared lineage against the model's behaviour (its DNA).

`audit` gets (or reuses) the model's DNA, reads what its card declares, scores every reference model with the
reference's calibrated relation model (P(related), fitted on labelled pairs; `hf_dna.evidence.relation`) and turns the
disagreements into flags, each with its evidence:

- ``undeclared-base``: a close relative (the weights say so, or behaviour: the top-scored candidate, and those
  of its family among the best few, when the reference's *relative* decision point is sure enough that the top
  is of the model's family) that the card does not name, that is not a relative of a named base (same family)
  and not a descendant of the audited model (its reference lineage does not name the audited model as parent). When the card names a base
  that the reference cannot place (absent, family unknown) the relative may be of that family: a note, no flag; so
  too when the card declares a distillation and only behaviour points elsewhere (a student answers like its
  teacher and the teacher's other students: on paper600 the honest cards of DeepSeek-R1-Distill-Llama-8B and
  OpenReasoning-Nemotron-1.5B were flagged towards R1's other students);
- ``unsupported-base``: a declared base present in the reference whose P(related) is below the *support*
  decision point, no member of its family reaching it either (a declared base absent from the reference gives
  a note, not a flag);
- ``no-base-declared``: the card declares a derived relation (finetune, adapter, merge, quantized, ...) but no
  base model;
- ``wrong-relation``: a card that explicitly declares ``quantized`` while the DNA distance to the declared base
  fits the reference's fine-tune parent-child pairs better than its quantized ones. The reverse claim is not
  checked: a fine-tune can be arbitrarily light, so a small distance does not refute it (on the real
  reference that direction fired on honest cards).

The decision points are fitted on the reference (`hf_dna.audit.decision`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..evidence.lineage import GOOD_CONFIDENCE
from ..pipeline.record import DNARecord
from .candidates import Candidates, ReferenceLineage, cosine_distances, score_candidates
from .decision import RELATED, RELATIVE_POSTERIOR, DecisionPoints, TopCandidate, decision_points
from .verdict import DERIVED_RELATIONS, TRAINED_RELATIONS, Declared, Flag, Neighbour, Verdict

#: how the weights name a relation, strongest first
WEIGHT_RELATIONS = {"near-identical": "a quantized or re-uploaded copy", "close": "a fine-tune or merge"}


def judge(model: str, record: DNARecord, declared: Declared, store: Any, *, k: int = 5,
          notes: list[str] | None = None, relative_posterior: float | None = None) -> Verdict:
    """Compare the declared lineage with the model's relatives in `store`; the decision part of `audit`.

    Weight evidence, where both sides carry comparable weight sketches, outranks behaviour: a weight match is a
    relative whatever the DNA says, and weights that differ veto a behavioural match. Behaviour decides where
    there are no comparable weights (API models, other shapes). `relative_posterior`: where a behavioural
    undeclared-base fires; default: the reference's own operating point, else `RELATIVE_POSTERIOR`."""
    notes = list(notes or [])
    cands = score_candidates(record, store, exclude=model)
    lineage = ReferenceLineage(store)
    notes += cands.notes
    if cands.calibrated and cands.scores.fallback:
        notes.append(f"{cands.scores.note}")
    points = decision_points(cands.calibration_store, cands.relation_model) if cands.calibrated else None
    order = _order(cands)
    nearest = [_neighbour(cands, lineage, i) for i in order[:k]]
    sure = points.top_candidate(cands.probability, [lineage.labelled_family(r.model_id) for r in cands.records]
                                ) if points else None
    posterior_source = "set by the caller"
    if relative_posterior is None:
        relative_posterior = points.relative_posterior if points else RELATIVE_POSTERIOR
        posterior_source = points.posterior_source if points else "the default"
    behaviour = set(sure.agreeing) if sure is not None and sure.confidence >= relative_posterior else set()
    flags = []
    flags += _undeclared_base(model, declared, cands, lineage, order, behaviour, sure,
                              (relative_posterior, posterior_source), points, notes)
    flags += _unsupported_bases(declared, cands, lineage, notes, points, order)
    flags += _no_base_declared(declared)
    flags += _wrong_relation(declared, cands, lineage, store, notes)
    same_vocab = [cands.records[i].model_id for i in order if cands.static_match(i).get("same_tokenizer_vocab")]
    notes += _static_notes(same_vocab)
    return Verdict(model, declared, nearest, flags, record, notes,
                   _evidence_summary(record, cands, order, sure, relative_posterior, same_vocab),
                   family_confidence=round(sure.confidence, 4) if sure is not None else None,
                   relative_posterior=relative_posterior)


def _order(cands: Candidates) -> np.ndarray:
    """Candidates by weight relation (near-identical, close, the rest), then P(related), then DNA distance."""
    rank = {"near-identical": 0, "close": 1}
    weight_rank = np.array([rank.get(cands.weight_relation(i), 2) for i in range(len(cands.records))])
    similarity = np.array([-m["similarity"] if m else 0.0 for m in cands.weights], dtype=float)
    probability = np.nan_to_num(cands.probability, nan=-1.0)
    return np.lexsort((cands.distance, -probability, similarity, weight_rank))


def _probability(cands: Candidates, i: int) -> float | None:
    p = float(cands.probability[i])
    return None if np.isnan(p) else round(p, 4)


def _neighbour(cands: Candidates, lineage: ReferenceLineage, i: int) -> Neighbour:
    match = cands.weights[i] if cands.weights else None
    return Neighbour(cands.records[i].model_id, round(float(cands.distance[i]), 6), _probability(cands, i),
                     lineage.family(cands.records[i].model_id), match.get("relation") if match else None,
                     round(float(match["similarity"]), 6) if match else None)


def _weights_text(match: dict[str, Any]) -> str:
    r = match["similarity"]
    return (f"median r={r:.6f}" if r > 0.999 else f"median r={r:.3f}") + (
        f" over {match['tensors_compared']} tensors"
        + (f", {match['within_noise']:.0%} within storage/quantization noise"
           if match.get("within_noise") is not None else ""))


def _evidence_summary(record: DNARecord, cands: Candidates, order: np.ndarray, sure: TopCandidate | None,
                      posterior: float, same_vocab: list[str]) -> dict[str, str]:
    """One line per kind of evidence: what it said about the closest candidates."""
    out = {}
    own = (record.evidence or {}).get("weights")
    if own and own.get("unavailable"):
        out["weights"] = f"not read: {own['unavailable']}"
    elif not own:
        out["weights"] = "not read: the record carries no weight sketch (responses only, or no safetensors/GGUF)"
    elif not any(cands.weights):
        out["weights"] = "no reference model with weights of the same shapes"
    else:
        best = int(order[0])
        match = cands.weights[best]
        out["weights"] = (f"{match['relation']} to {cands.records[best].model_id} ({_weights_text(match)})"
                          if match else "no reference model with weights of the same shapes")
    if not cands.calibrated:
        out["behaviour"] = "uncalibrated: nearest by DNA distance only"
    elif sure is not None:
        top = sure.index
        where = "at or above" if sure.confidence >= posterior else "below"
        out["behaviour"] = (f"closest {cands.records[top].model_id} P(related)={cands.probability[top]:.2f}; "
                            f"of the same family with P {sure.confidence:.2f}, {where} the decision point "
                            f"{posterior:.2f}")
    if same_vocab:
        out["static"] = (f"same tokenizer vocabulary as {', '.join(same_vocab[:3])}"
                         + (" and more" if len(same_vocab) > 3 else ""))
    return out


def _static_notes(same: list[str], most: int = 5) -> list[str]:
    """Reference models whose files show the same tokenizer vocabulary (static evidence, reported beside the
    verdict: the reference's calibration has no static evidence to weigh it), in candidate order."""
    if not same:
        return []
    more = f" and {len(same) - most} more" if len(same) > most else ""
    return [f"static evidence: same tokenizer vocabulary as {', '.join(same[:most])}{more}"]


def _relative_evidence(cands: Candidates, lineage: ReferenceLineage, i: int) -> dict[str, Any]:
    rec = cands.records[i]
    info = lineage.info(rec.model_id)
    match = cands.weights[i] if cands.weights else None
    return {"model_id": rec.model_id, "probability": _probability(cands, i),
            "distance": round(float(cands.distance[i]), 6), "family": info.get("family", ""),
            "parent": info.get("parent", ""), "relation": info.get("relation", ""),
            "confidence": info.get("confidence", ""), "decided_by": cands.why(i),
            **({"weights": {k: match[k] for k in ("relation", "similarity", "tensors_compared", "within_noise",
                                                  "distance", "note") if k in match}} if match else {}),
            **({"static": match} if (match := cands.static_match(i)) else {})}


def _relatives(cands: Candidates, order: np.ndarray, behaviour: set[int]) -> list[int]:
    """Candidates that are close relatives, in candidate order: a weight match, or (weights not vetoing) one of
    the `behaviour` relatives (the top candidate's agreeing family members when the decision point is sure)."""
    out = []
    for i in order:
        weights = cands.weight_relation(int(i))
        if weights in WEIGHT_RELATIONS or (weights != "unrelated" and int(i) in behaviour):
            out.append(int(i))
    return out


def _undeclared_base(model: str, declared: Declared, cands: Candidates, lineage: ReferenceLineage,
                     order: np.ndarray, behaviour: set[int], sure: TopCandidate | None,
                     posterior: tuple[float, str], points: DecisionPoints | None, notes: list[str]) -> list[Flag]:
    """The undeclared-base flag, if any; `posterior` is the relative decision point and where it came from."""
    named = set(declared.base_models)
    named_families = {lineage.family_of_declared(b, cands.records) for b in named} - {""}
    relatives, descendants, explained = [], [], []
    for i in _relatives(cands, order, behaviour):
        rec = cands.records[i]
        parents = lineage.parents(rec.model_id, rec)
        if model in parents:
            descendants.append(rec.model_id)
        elif rec.model_id in named or parents & named or (lineage.family(rec.model_id) in named_families):
            explained.append(rec.model_id)
        else:
            relatives.append(i)
    if not relatives:
        return []
    top_i = relatives[0]
    by_weights = cands.weight_relation(top_i) in WEIGHT_RELATIONS
    unplaced = [b for b in named if cands.index(b) is None and not lineage.family_of_declared(b, cands.records)]
    if unplaced and not by_weights:  # the relative may be of the declared base's family: nothing contradicts the card
        rel = cands.records[top_i]
        notes.append(f"closest relative {rel.model_id} (P(related)={cands.probability[top_i]:.2f}) is not "
                     f"named by the card, but the declared base {', '.join(unplaced)} cannot be placed in the "
                     "reference, so it is not flagged")
        return []
    if declared.relation == "distill" and named and not by_weights:  # answers like its teacher's other students
        rel = cands.records[top_i]
        notes.append(f"closest relative {rel.model_id} (P(related)={cands.probability[top_i]:.2f}) is outside the "
                     f"declared base's family, but the card declares a distillation: a distilled model answers like "
                     "its teacher and the teacher's other students, so behaviour alone does not flag it")
        return []
    top = cands.records[top_i]
    suggested = [top.model_id, *sorted(lineage.parents(top.model_id, top))]
    what = "declares no base model" if not named else f"names {', '.join(sorted(named))}"
    origin = f"; {top.model_id} derives from {', '.join(suggested[1:])}" if len(suggested) > 1 else ""
    family = f"family {lineage.family(top.model_id) or 'unknown'}{origin}"
    if by_weights:
        match = cands.weights[top_i]
        message = (f"its weights are {match['relation']} to {top.model_id}'s ({_weights_text(match)}: "
                   f"{WEIGHT_RELATIONS[match['relation']]}; {family}), but its card {what}")
    else:
        message = (f"behaves like a close relative of {top.model_id} (P(related)={cands.probability[top_i]:.2f}, "
                   f"of its family with P {sure.confidence:.2f}; {family}), but its card {what}")
    evidence = {"decided_by": "weights" if by_weights else "behaviour",
                "relatives": [_relative_evidence(cands, lineage, i) for i in relatives[:5]],
                "n_relatives": len(relatives), "suggested_base_models": list(dict.fromkeys(suggested)),
                "suggested_relation": ({"near-identical": "quantized", "close": "finetune"}
                                       [cands.weight_relation(top_i)] if by_weights else None),
                "excluded_descendants": descendants, "explained_by_declared_base": explained,
                "family_confidence": round(sure.confidence, 4) if sure is not None else None,
                "relative_posterior": posterior[0], "relative_posterior_source": posterior[1],
                "decision_source": points.source if points else "uncalibrated: weights only",
                "evidence_kinds": (list(cands.scores.kinds) if cands.calibrated else []) + (
                    ["weights"] if by_weights else [])}
    return [Flag("undeclared-base", message, evidence)]


def _unsupported_bases(declared: Declared, cands: Candidates, lineage: ReferenceLineage, notes: list[str],
                       points: DecisionPoints | None, order: np.ndarray) -> list[Flag]:
    flags = []
    for base in declared.base_models:
        i = cands.index(base)
        if i is None:
            notes.append(f"declared base {base} is not in the reference: its DNA cannot be checked")
            continue
        weights = cands.weight_relation(i)
        if weights in WEIGHT_RELATIONS:
            continue
        best = int(order[0]) if len(cands.records) else i
        if weights == "unrelated":
            match = cands.weights[i]
            message = (f"declared base {base} is not supported by the weights: same shapes but unrelated values "
                       f"({_weights_text(match)}); closest is {cands.records[best].model_id}")
            flags.append(Flag("unsupported-base", message, {
                "decided_by": "weights", "declared_base": _relative_evidence(cands, lineage, i),
                "closest": _relative_evidence(cands, lineage, best), "evidence_kinds": ["weights"]}))
            continue
        if points is None:
            notes.append(f"declared base {base}: not checked (no comparable weights, and the reference is uncalibrated)")
            continue
        family = lineage.family(cands.records[i].model_id)
        members = [j for j, rec in enumerate(cands.records) if family and lineage.family(rec.model_id) == family]
        best_member = max(members, key=lambda j: cands.probability[j], default=i)
        if max(cands.probability[i], cands.probability[best_member]) >= points.support:
            continue
        best = int(np.nanargmax(cands.probability)) if len(cands.records) else i
        rank = int((cands.probability > cands.probability[i]).sum()) + 1
        message = (f"declared base {base} is not supported by the DNA: P(related)={cands.probability[i]:.2f} "
                   f"(rank {rank} of {len(cands.records)}); closest is {cands.records[best].model_id} "
                   f"(P={cands.probability[best]:.2f})")
        flags.append(Flag("unsupported-base", message, {
            "decided_by": "behaviour", "declared_base": _relative_evidence(cands, lineage, i), "rank": rank,
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
def relation_distances(store: Any, lineage: ReferenceLineage | None = None) -> dict[str, list[float]]:
    """Cosine distances of the reference's labelled (child, parent) pairs, by group: ``quantized`` / ``trained``."""
    lineage = lineage or ReferenceLineage(store)
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


def _wrong_relation(declared: Declared, cands: Candidates, lineage: ReferenceLineage, store: Any,
                    notes: list[str]) -> list[Flag]:
    if not declared.relation_explicit or declared.relation != "quantized":
        return []
    present = [(b, cands.index(b)) for b in declared.base_models]
    present = [(b, i) for b, i in present if i is not None]
    if not present:
        return []
    base, i = present[0]
    weights = cands.weight_relation(i)
    if weights in WEIGHT_RELATIONS:
        if weights == "near-identical":
            return []
        match = cands.weights[i]
        return [Flag("wrong-relation", f"declared relation 'quantized' to {base}, but the weights differ beyond "
                     f"quantization noise ({_weights_text(match)}): a trained derivative (fine-tune or merge)",
                     {"decided_by": "weights", "declared_relation": declared.relation, "base": base,
                      "weights": {k: match[k] for k in ("relation", "similarity", "tensors_compared", "within_noise")
                                  if k in match}})]
    groups = relation_distances(store, lineage)
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
        "decided_by": "behaviour", "declared_relation": declared.relation, "base": base, "distance": round(float(cands.distance[i]), 6),
        "p_quantized": round(p_quant, 4),
        "reference_pairs": {g: {"n": len(v), "median_distance": round(float(np.median(v)), 6)}
                            for g, v in groups.items()}}), ]
