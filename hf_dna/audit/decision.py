"""The audit's decision points: P(related) cut-offs fitted on the reference itself (no threshold is set by hand).

P(related) comes from the reference's relation model (fitted on all labelled pairs, so its base rate is that of
a random pair: a few percent). The two decision points are fitted on the
reference itself, scoring each labelled model against all the others (`DecisionPoints`):

- relative: where P(the top-scored candidate is of the same family) reaches `RELATIVE_POSTERIOR` (logistic fit
  on the top candidate's log-odds; the target posterior is chosen by measurement in bench/audit_eval.py);
- support: where a true parent and a base of another family are equally likely (class-balanced logistic fit
  on the log-odds of (child, parent) pairs vs (model, other-family base) pairs): a card's claim is taken as
  equally likely true or false before looking at the DNA.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evidence.lineage import GOOD_CONFIDENCE
from ..evidence.relation import fit_logistic
from .candidates import ReferenceLineage

RELATED = 0.5  # decision point of a calibrated probability
#: how often the reference's top-scored candidates must be of the right family at the relative decision point.
#: Chosen by bench/audit_eval.py on the embedded references: the lowest target (of 0.5..0.9) with no false
#: undeclared-base on honest cards of high-confidence models in either (paper600:100 0.5: 21/172 false, 0.7: 4/172,
#: 0.8: 0/172; recall of planted omissions 0.39 / 0.21 / 0.08, precision 0.84 / 0.92 / 0.96; chat-rand-zh100 0/40
#: from 0.7 -- see bench/RESULTS.md). `--relative-posterior` trades back.
RELATIVE_POSTERIOR = 0.8


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

