"""The fitted decision of the weight evidence: P(related) of two weight sketches, from the comparison statistics.

`compare_sketches` (hf_dna.evidence.weights) reduces a pair of sketches to per-tensor Pearson correlations. This
module maps two statistics of them, the median ``r`` and the lower-quartile ``r`` over the tensors compared
(`FEATURES`), to P(related) with an L2-regularised logistic regression fitted on labelled pairs built here
(`scripts/fit_weight_calibration.py`: tiny Llama families from different random inits, with their dtype casts,
re-shards, GGUF and bitsandbytes quantizations, dequantized re-exports, fine-tunes and merged LoRA; derived = two
models of one family, unrelated = models of two inits). The decision point is chosen on those pairs: the midpoint,
in log-odds, of the margin between the highest-scoring unrelated pair and the lowest-scoring derived pair (zero false
positives and zero misses on the fit pairs while they separate).

The fitted coefficients, the decision point, the score ranges and the provenance (pairs, AUC, margin, the command)
ship as ``weight_calibration.json`` beside this module, with the pairs' features so a refit reproduces it.
Pure numpy (Newton's method), no scikit-learn.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SCHEME = "hf-dna.weight-calibration"
VERSION = 1
FEATURES = ("median_r", "lower_quartile_r")
L2 = 1.0          #: ridge penalty on the coefficients (not the intercept): keeps the fit finite on separable pairs
PATH = Path(__file__).with_name("weight_calibration.json")


def features(similarities) -> np.ndarray:
    """The statistics the model reads, from the per-tensor correlations of one pair: (median r, lower-quartile r)."""
    r = np.asarray(list(similarities), dtype=np.float64)
    return np.array([float(np.median(r)), float(np.percentile(r, 25))])


def _sigmoid(z: np.ndarray | float) -> np.ndarray | float:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 100) -> tuple[np.ndarray, float]:
    """Weights and intercept of an L2-penalised logistic regression (class-balanced), by Newton's method."""
    n, d = x.shape
    pos = y.sum()
    sample = np.where(y == 1, n / (2 * pos), n / (2 * (n - pos)))  # each class weighs half
    design = np.c_[x, np.ones(n)]
    theta = np.zeros(d + 1)
    penalty = np.r_[np.full(d, l2), 0.0]
    for _ in range(iterations):
        p = _sigmoid(design @ theta)
        grad = design.T @ (sample * (p - y)) + penalty * theta
        hess = (design * (sample * p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-12 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta[:d], float(theta[d])


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(np.r_[pos, neg])
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fit(related: np.ndarray, unrelated: np.ndarray, l2: float = L2) -> dict[str, Any]:
    """Fit the model on feature rows of derived (`related`) and unrelated pairs; the decision point is the midpoint
    (in log-odds) of the gap between the two score ranges, or, where they overlap, the threshold with no false
    positive on the fit pairs (the highest unrelated score, nudged up)."""
    related, unrelated = np.atleast_2d(related).astype(float), np.atleast_2d(unrelated).astype(float)
    x = np.r_[related, unrelated]
    y = np.r_[np.ones(len(related)), np.zeros(len(unrelated))]
    weights, intercept = _logistic(x, y, l2)
    pos, neg = related @ weights + intercept, unrelated @ weights + intercept
    margin = float(pos.min() - neg.max())
    decision = float((pos.min() + neg.max()) / 2) if margin > 0 else float(neg.max()) + 1e-6
    missed = int((pos < decision).sum())
    return {"scheme": SCHEME, "version": VERSION, "features": list(FEATURES), "l2": l2,
            "coefficients": [float(w) for w in weights], "intercept": intercept,
            "decision": {"logit": decision, "p": float(_sigmoid(decision))},
            "logit_range": {"unrelated": [float(neg.min()), float(neg.max())],
                            "related": [float(pos.min()), float(pos.max())]},
            "fit": {"pairs": len(y), "related": len(related), "unrelated": len(unrelated),
                    "auc": _auc(pos, neg), "logit_margin": margin,
                    "median_r_margin": float(related[:, 0].min() - unrelated[:, 0].max()),
                    "false_positives": int((neg >= decision).sum()), "misses": missed}}


def logit(calibration: dict, x: np.ndarray) -> float:
    return float(np.dot(calibration["coefficients"], x) + calibration["intercept"])


def probability(calibration: dict, x: np.ndarray) -> float:
    """P(related) of one pair's feature row."""
    return float(_sigmoid(logit(calibration, x)))


@lru_cache(maxsize=1)
def _load_text() -> str:
    return PATH.read_text(encoding="utf-8")


def load() -> dict[str, Any]:
    """The packaged calibration (a fresh copy); raises if it is missing or not this scheme."""
    data = json.loads(_load_text())
    if data.get("scheme") != SCHEME or data.get("version") != VERSION or data.get("features") != list(FEATURES):
        raise ValueError(f"{PATH.name} is not a {SCHEME} v{VERSION} calibration over {FEATURES}")
    if not all(math.isfinite(v) for v in [*data["coefficients"], data["intercept"], data["decision"]["logit"]]):
        raise ValueError(f"{PATH.name} holds non-finite coefficients")
    return data


@lru_cache(maxsize=1)
def packaged() -> dict[str, Any]:
    """The packaged calibration, loaded once (do not mutate)."""
    return load()
