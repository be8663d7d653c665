"""How well a pairwise score separates relatives: ROC AUC, parent-child AUC, nearest-neighbour family accuracy."""
from __future__ import annotations

import numpy as np


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (ties count half); nan when a class is missing."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def neighbour_accuracy(score: np.ndarray, families: np.ndarray, k: int) -> tuple[float, int]:
    """Leave-one-out: share of queries whose family is among the k highest-scoring others (n_q x n_all matrix,
    self already masked to -inf); queries are rows whose family has another member."""
    hits, n = 0, 0
    for i in range(len(score)):
        if (families == families[i]).sum() < 2:
            continue
        top = np.argsort(-score[i])[:k]
        hits += bool((families[top] == families[i]).any())
        n += 1
    return hits / max(n, 1), n


def pair_metrics(score: np.ndarray, families: np.ndarray, parents: np.ndarray, model_ids: list[str]) -> dict[str, float]:
    """AUC (same family vs different), parent-child vs different-family AUC, top-1/top-5 family accuracy."""
    n = len(score)
    iu = np.triu_indices(n, 1)
    same = families[iu[0]] == families[iu[1]]
    sym = (score + score.T) / 2
    index = {m: i for i, m in enumerate(model_ids)}
    pc = np.zeros((n, n), dtype=bool)
    for i, p in enumerate(parents):
        for base in str(p or "").split(";"):
            j = index.get(base.strip())
            if j is not None and j != i:
                pc[i, j] = pc[j, i] = True
    pcu = pc[iu]
    masked = score.copy()
    np.fill_diagonal(masked, -np.inf)
    top1, n_q = neighbour_accuracy(masked, families, 1)
    top5, _ = neighbour_accuracy(masked, families, 5)
    pair_scores = sym[iu]
    sel = pcu | ~same
    return {
        "auc": auc(pair_scores, same),
        "pc_auc": auc(pair_scores[sel], pcu[sel]),
        "top1": top1,
        "top5": top5,
        "n_models": n,
        "n_queries": n_q,
        "n_pc_pairs": int(pcu.sum()),
    }
