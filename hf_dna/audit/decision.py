"""The audit's decision points: fitted on the reference itself (no threshold is set by hand).

P(related) comes from the reference's relation model (fitted on all labelled pairs, so its base rate is that of
a random pair: a few percent). The two decision points are fitted on the reference itself, scoring each
labelled model against all the others (`DecisionPoints`):

- relative: how sure the audit may be that the top-scored candidate is of the model's family, from three things
  about the candidate list (`top_candidate_features`): the top's P(related), its margin over the best candidate
  of another family, and how many of the best few candidates share its family (logistic fit on the reference's
  labelled models; the flag fires at the store's own measured operating point when its calibration has one,
  else at `RELATIVE_POSTERIOR`, both chosen by measurement in bench/audit_eval.py). With
  families held out this tells a right top candidate from a wrong one with AUC 0.83 on paper600:100 and 0.87 on
  chat-rand-zh100, where the top's P(related) alone gives 0.70 / 0.78 (bench/RESULTS.md);
- support: where a true parent and a base of another family are equally likely (class-balanced logistic fit
  on the log-odds of (child, parent) pairs vs (model, other-family base) pairs): a card's claim is taken as
  equally likely true or false before looking at the DNA.
"""
from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evidence.relation import fit_logistic
from ..reference.layout import EARLY_STOP, OPERATING_POINT
from .candidates import ReferenceLineage

RELATED = 0.5  # decision point of a calibrated probability
#: how often the reference's top-scored candidates must be of the right family at the relative decision point.
#: Chosen by bench/audit_eval.py on the embedded references: the lowest target (of 0.5..0.97) with no false
#: undeclared-base on honest cards of high-confidence models in either (paper600:100 at 0.8: 4/173 false, 0.9:
#: 1/173, 0.95: 0/173; recall of planted omissions 0.25 / 0.16 / 0.13, chat-rand-zh100 0.49 / 0.39 / 0.29 with
#: 0/40 false throughout; see bench/RESULTS.md). `--relative-posterior` trades back. A store measured this way
#: carries its own point in its calibration (`OPERATING_POINT`), which the audit takes instead.
RELATIVE_POSTERIOR = 0.95
#: the best candidates whose families the agreement feature counts
AGREEMENT_TOP = 5


def operating_point(store: Any) -> tuple[float, str]:
    """The relative posterior the audit flags at with `store` and where it comes from: the store's own operating
    point, measured on it with held-out planted cards, when its calibration carries one; else `RELATIVE_POSTERIOR`."""
    calibration = getattr(store, "calibration", None)
    point = calibration.get(OPERATING_POINT) if isinstance(calibration, dict) else None
    value = point.get("relative_posterior") if isinstance(point, dict) else None
    if isinstance(value, (int, float)) and 0.0 < value < 1.0:
        return float(value), f"the reference's operating point ({point.get('rule') or 'measured on it'})"
    return RELATIVE_POSTERIOR, "the default"


def stop_point(store: Any) -> dict[str, Any] | None:
    """Where an adaptive audit with `store` may stop early, when its calibration carries a well-formed entry
    (`EARLY_STOP`, measured by bench/adaptive_eval.py): ``{"n_probes", "probe_hash", "family_confidence_below"}``
    of the smaller store nested in it; else None."""
    calibration = getattr(store, "calibration", None)
    stop = calibration.get(EARLY_STOP) if isinstance(calibration, dict) else None
    if not isinstance(stop, dict):
        return None
    n, below = stop.get("n_probes"), stop.get("family_confidence_below")
    if not (isinstance(n, int) and n > 0 and isinstance(below, (int, float)) and 0 < below < 1):
        return None
    return {"n_probes": n, "probe_hash": stop.get("probe_hash"), "family_confidence_below": float(below)}


@dataclass
class TopCandidate:
    """The top-scored candidate, how sure the decision point is that it is of the audited model's family, and the
    candidates of its family among the `AGREEMENT_TOP` best (itself first)."""

    index: int
    confidence: float
    agreeing: list[int]


def top_candidate_features(probability: np.ndarray, families: Sequence[str]) -> tuple[list[int], np.ndarray] | None:
    """The scored candidates best first, and three features of that list: the top's logit P(related), its margin in
    logits over the best candidate of another family, the share of the `AGREEMENT_TOP` best in its family. None
    with fewer than two scored candidates. Candidates of no known family ('') count as families of their own."""
    prob = np.asarray(probability, dtype=float)
    scored = np.flatnonzero(~np.isnan(prob))
    if len(scored) < 2:
        return None
    order = scored[np.argsort(-prob[scored], kind="stable")]
    keys = [families[i] or f"#{i}" for i in order]
    top = int(order[0])
    other = next((int(i) for i, key in zip(order[1:], keys[1:]) if key != keys[0]), None)
    top_logit = float(_logit(prob[top]))
    margin = top_logit - float(_logit(prob[other] if other is not None else 0.0))
    agreement = float(np.mean([key == keys[0] for key in keys[:AGREEMENT_TOP]]))
    return [int(i) for i in order], np.array([top_logit, margin, agreement])


@dataclass
class DecisionPoints:
    """Decision points fitted on the reference (see module doc); `source` says how."""

    support: float
    source: str
    #: logistic (coef, intercept, mean, scale) of "the top candidate is of the right family" on the features of `top_candidate_features`
    family_fit: tuple[np.ndarray, float, np.ndarray, np.ndarray] | None = None
    n_top: int = 0
    n_support_pairs: int = 0
    #: where the undeclared-base flag fires (`operating_point`) unless the caller sets it
    relative_posterior: float = RELATIVE_POSTERIOR
    posterior_source: str = "the default"

    def top_candidate(self, probability: np.ndarray, families: Sequence[str]) -> TopCandidate | None:
        """The top candidate and how sure this decision point is of its family; None without two scored
        candidates. Without a fit (too few labelled models) the confidence is the top's own P(related)."""
        found = top_candidate_features(probability, families)
        if found is None:
            return None
        order, features = found
        top = order[0]
        agreeing = [i for i in order[:AGREEMENT_TOP] if i == top or (families[i] and families[i] == families[top])]
        if self.family_fit is None:
            return TopCandidate(top, float(probability[top]), agreeing)
        coef, intercept, mean, scale = self.family_fit
        z = float(((features - mean) / scale) @ coef + intercept)
        return TopCandidate(top, float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))), agreeing)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def _logistic_1d(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float] | None:
    """(coef, intercept, mean, scale) of a logistic fit of y on x; None with one class or no positive slope."""
    fit = _fit(x[:, None], y)
    if fit is None or fit[0][0] <= 0:
        return None
    coef, intercept, mean, scale = fit
    return float(coef[0]), intercept, float(mean[0]), float(scale[0])


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray] | None:
    """Logistic fit of y on the columns of x; None with fewer than two of either class."""
    if int(y.sum()) < 2 or int((1 - y).sum()) < 2:
        return None
    return fit_logistic(x, y.astype(float))


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
    lineage = ReferenceLineage(store)
    if len(records) < 4:
        return DecisionPoints(RELATED, "too few reference records: 0.5")
    fam = np.array([lineage.labelled_family(r.model_id) for r in records], dtype=object)
    scores = relation_model.all_pairs(records)
    labelled = np.flatnonzero(fam != "")
    features, right = [], []
    for i in labelled:
        found = top_candidate_features(scores[i], fam)
        if found is not None:
            features.append(found[1])
            right.append(fam[found[0][0]] == fam[i])
    family_fit = _fit(np.array(features), np.array(right, dtype=float)) if features else None
    index = {r.model_id: i for i, r in enumerate(records)}
    roots = np.array([lineage.info(r.model_id).get("relation") == "base" for r in records]) & (fam != "")
    pos, neg = [], []
    for i in labelled:
        pos += [scores[i, index[p]] for p in lineage.parents(records[i].model_id) if p in index]
        neg += list(scores[i, roots & (fam != fam[i])])
    pair_x = _logit(np.array(pos + neg))
    pair_y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    support = _crossing(pair_x, pair_y, balanced=True)
    source = (f"fitted on the reference: top candidate of {len(features)} labelled models "
              f"({int(sum(right))} of the same family); {len(pos)} (child, parent) vs {len(neg)} "
              "(model, other-family base) pairs")
    if family_fit is None or support is None:
        source += "; a fit failed (one class or no separation): P(related) and 0.5 used instead"
    posterior, posterior_source = operating_point(store)
    return DecisionPoints(support if support is not None else RELATED, source, family_fit, len(features),
                          len(pos) + len(neg), posterior, posterior_source)
