"""Behaviour-only relationship methods on an embedded reference store, with the paper's own DNAs as the anchor row.

Usage: python bench/method_store_eval.py [--store paper600-100] [--folds 5] [--json OUT]

Works on a fresh clone: it reads the vectors the embedded store's records already carry (DNA, lex, emb1024,
probe64, lexprobe64) instead of the per-response embedding cache `bench/method_eval.py` needs. The anchor is the LLM
DNA authors' own DNAs (Qwen3-Embedding-8B, 600 probes; `../shared/data/paper-dnas/`, github.com/JerryLife/dna-web,
MIT), scored on exactly the same models, labels and metrics in the same run. Only models that have a paper DNA
are scored, so every row is on the same pairs.

Metrics (hf_dna.evidence.metrics.pair_metrics): family AUC (same family vs different, all labelled pairs),
parent-child vs different-family AUC, nearest-neighbour family top-1/top-5 (leave one model out), plus
"family LOMO top-2 / top-3": the family whose best 2 (3) members score highest on average for the held-out model
(top-1 is the same with one member).
Learned rows (the relation model) are fitted with whole families held out (grouped k-fold); one more row holds out
models instead (random k-fold over models: the fit sees the rest of each model's family).

A second table asks the audit's question "which known family is this?" with a learned family ranker on top of
each pairwise score: per (query, candidate family) features (the query's z-scored best, best-2 and best-3 member
scores, all-member mean, log family size, log best rank, members among its 10 nearest), a conditional logit
(softmax over the candidate families) fitted on the queries of the other folds' families. Only family top-1 is
reported for it: a pair score built from the record's family label is not comparable in the pair AUCs (the
label-only score "log size of the record's family" alone reaches family AUC 0.85 on paper600-100, because
same-family pairs crowd into the big families).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hf_dna.evidence.lineage import GOOD_CONFIDENCE
from hf_dna.evidence.metrics import pair_metrics
from hf_dna.evidence.relation import (DEFAULT_KINDS, SET_KINDS, cosine_block, cv_score_matrix, family_folds, pairwise_similarity,
                                      record_vectors)
from hf_dna.reference.store import ReferenceStore

ROOT = Path(__file__).resolve().parents[1]
PAPER_DNAS = Path(os.environ.get("HF_DNA_PAPER_DNAS", ROOT.parent / "shared" / "data" / "paper-dnas"
                                 / "paper600-dnas.parquet"))
BEHAVIOUR_KINDS = ("probe64", "lexprobe64", "emb1024")


def load_labels(store_dir: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Family ('' unless high/medium confidence) and parent per model, from the store's lineage.csv."""
    lin = pd.read_csv(store_dir / "lineage.csv").fillna("").drop_duplicates("model_id").set_index("model_id")
    fam, par = [], []
    for m in ids:
        row = lin.loc[m] if m in lin.index else None
        good = row is not None and row.confidence in GOOD_CONFIDENCE and row.family not in ("", "unknown")
        fam.append(row.family if good else "")
        par.append(row.parent if row is not None else "")
    return np.array(fam, dtype=object), np.array(par, dtype=object)


def paper_dnas(ids: list[str], encoder: str = "Qwen3-Embedding-8B", dim: int = 128) -> np.ndarray | None:
    """(n, dim) paper DNAs in `ids` order, NaN rows where the authors have none; None without the data."""
    if not PAPER_DNAS.exists():
        return None
    df = pd.read_parquet(PAPER_DNAS)
    df = df[df.encoder.str.contains(encoder) & (df.dim == dim)].drop_duplicates("model_id").set_index("model_id")
    return np.stack([np.asarray(df.loc[m].dna, dtype=np.float64) if m in df.index else np.full(dim, np.nan)
                     for m in ids])


def centred_cosine(x: np.ndarray, centre: bool = True) -> np.ndarray:
    x = x - np.nanmean(x, axis=0) if centre else x
    return cosine_block(x, x)


def rank_fused(sims: list[np.ndarray]) -> np.ndarray:
    """Mean over evidence kinds of each pair's symmetrised within-row rank (0 = farthest, 1 = nearest)."""
    total = 0.0
    for s in sims:
        s = np.nan_to_num(s, nan=-np.inf)
        r = s.argsort(axis=1).argsort(axis=1) / (s.shape[1] - 1)
        total = total + (r + r.T) / 2
    return total / len(sims)


def z_fused(sims: list[np.ndarray]) -> np.ndarray:
    """Sum over evidence kinds of globally z-scored similarities."""
    return sum((np.nan_to_num(s, nan=np.nanmean(s)) - np.nanmean(s)) / np.nanstd(s) for s in sims)


def family_lomo(score: np.ndarray, fam: np.ndarray, rows: np.ndarray, top: int = 1) -> tuple[float, int]:
    """Each labelled model with a same-family peer, held out: is its family the one whose best `top` members
    (mean) score highest? Returns (accuracy, queries)."""
    right = n = 0
    for i in rows:
        others = rows[rows != i]
        if not (fam[others] == fam[i]).any():
            continue
        n += 1
        best, best_family = -np.inf, None
        for f in set(fam[others]):
            v = np.sort(score[i, others[fam[others] == f]])[-top:].mean()
            if v > best:
                best, best_family = v, f
        right += best_family == fam[i]
    return right / max(n, 1), n


RANKER_FEATURES = ("best z", "best-2 z", "best-3 z", "mean z", "log size", "log best rank", "in nearest 10 / sqrt size")


def family_features(score: np.ndarray, fam: np.ndarray, rows: np.ndarray, i: int,
                    families: list[str]) -> np.ndarray:
    """(len(families), 7) features of query i against each candidate family's members among `rows` (not i);
    NaN rows for a family with no member left."""
    others = rows[rows != i]
    s = np.nan_to_num(score[i, others], nan=-np.inf)
    finite = np.isfinite(s)
    z = np.where(finite, (s - s[finite].mean()) / (s[finite].std() + 1e-12), -10.0)
    rank = (-s).argsort(kind="stable").argsort()
    out = np.full((len(families), len(RANKER_FEATURES)), np.nan)
    for f, name in enumerate(families):
        member = fam[others] == name
        if not member.any():
            continue
        zs = np.sort(z[member])[::-1]
        out[f] = [zs[0], zs[:2].mean(), zs[:3].mean(), zs.mean(), np.log(member.sum()),
                  np.log1p(rank[member].min()), (rank[member] < 10).sum() / np.sqrt(member.sum())]
    return out


def fit_family_ranker(features: list[np.ndarray], targets: list[int], l2: float = 1e-2) -> np.ndarray:
    """Conditional logit: weights w maximising sum over queries of log softmax(features @ w)[target]."""
    from scipy.optimize import minimize

    cases = []
    for x, t in zip(features, targets):
        ok = ~np.isnan(x[:, 0])
        cases.append((x[ok], int(np.flatnonzero(ok).searchsorted(t))))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for x, t in cases:
            z = x @ w
            z = z - z.max()
            p = np.exp(z) / np.exp(z).sum()
            total -= np.log(p[t])
            grad += x.T @ p - x[t]
        return total / len(cases) + 0.5 * l2 * w @ w, grad / len(cases) + l2 * w

    return minimize(loss, np.zeros(features[0].shape[1]), jac=True, method="L-BFGS-B").x


def family_ranker_top1(score: np.ndarray, fam: np.ndarray, rows: np.ndarray, folds: int) -> tuple[float, int]:
    """Family top-1 of the learned ranker over `score`, each query's ranker fitted without its family (grouped
    k-fold); queries are the models of `rows` with a same-family peer."""
    families = sorted(set(fam[rows]))
    index = {name: f for f, name in enumerate(families)}
    queries = [i for i in rows if (fam[rows] == fam[i]).sum() > 1]
    feats = {i: family_features(score, fam, rows, i, families) for i in queries}
    fold = family_folds(np.where(np.isin(np.arange(len(fam)), rows), fam, ""), folds)
    right = 0
    for k in range(folds):
        train = [i for i in queries if fold[i] != k]
        test = [i for i in queries if fold[i] == k]
        if not test or not train:
            continue
        w = fit_family_ranker([feats[i] for i in train], [index[fam[i]] for i in train])
        for i in test:
            right += int(np.nanargmax(np.where(np.isnan(feats[i][:, 0]), -np.inf, feats[i] @ w)) == index[fam[i]])
    return right / max(len(queries), 1), len(queries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="paper600-100", help="embedded store name or a store directory")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    store_dir = Path(args.store) if Path(args.store).is_dir() else ROOT / "hf_dna" / "data" / "reference" / args.store
    if not (store_dir / "lineage.csv").exists():
        sys.exit(f"error: {store_dir} is not a store with a lineage.csv")
    t0 = time.time()
    records = ReferenceStore.load(store_dir).records
    ids = [r.model_id for r in records]
    fam, par = load_labels(store_dir, ids)
    rows = [record_vectors(r) for r in records]
    kinds = [k for k in rows[0] if all(k in r for r in rows)]
    vectors = {k: [r[k] for r in rows] if k in SET_KINDS else np.stack([r[k] for r in rows]) for k in kinds}
    anchor = paper_dnas(ids)
    scored = fam != ""
    covered = scored & ~np.isnan(anchor).any(axis=1) if anchor is not None else scored
    if anchor is not None and covered.sum() < scored.sum() / 2:
        print(f"# anchor rows skipped: the paper's DNAs cover {covered.sum()} of {scored.sum()} labelled models here")
        anchor = None
    elif anchor is not None:
        scored = covered
    lab = np.flatnonzero(scored)
    print(f"# {store_dir.name}: {len(ids)} records, {len(lab)} labelled (with a paper DNA where the anchor runs), {len(set(fam[lab]))} "
          f"families; {platform.processor() or platform.machine()}, {os.cpu_count()} cores", flush=True)
    print("| method | AUC family | AUC parent-child | top-1 | top-5 | family LOMO top-2 / top-3 |\n|---|---|---|---|---|---|")
    results: dict[str, dict] = {}
    scores: dict[str, np.ndarray] = {}

    def report(name: str, score: np.ndarray) -> None:
        score = np.array(score, dtype=np.float64)
        np.fill_diagonal(score, np.nan)
        sub = score[np.ix_(lab, lab)]
        m = pair_metrics(sub, fam[lab], par[lab], [ids[i] for i in lab])
        filled = np.nan_to_num(score, nan=-np.inf)
        m["lomo_top2"], m["lomo_queries"] = family_lomo(filled, fam, lab, 2)
        m["lomo_top3"], _ = family_lomo(filled, fam, lab, 3)
        results[name] = m
        scores[name] = score
        print(f"| {name} | {m['auc']:.3f} | {m['pc_auc']:.3f} | {m['top1']:.3f} | {m['top5']:.3f} | "
              f"{m['lomo_top2']:.3f} / {m['lomo_top3']:.3f} |", flush=True)

    if anchor is not None:
        report("anchor: paper's own DNA (Qwen3-Embedding-8B, 600 probes), raw cosine", centred_cosine(anchor, False))
        report("anchor: paper's own DNA, centred", centred_cosine(anchor))
    elif not PAPER_DNAS.exists():
        print(f"# anchor rows skipped: {PAPER_DNAS} not found")
    centred = {k: vectors[k] if k in SET_KINDS else vectors[k] - vectors[k].mean(axis=0) for k in kinds}
    sims = {k: pairwise_similarity(k, centred[k], vectors[k]) for k in kinds}
    for k in kinds:
        how = ("rarity-weighted cosine of shared word 4-grams" if k in SET_KINDS else
               "per-probe votes" if k in ("probe64", "lexprobe64") else "centred cosine")
        report(f"hf-dna {k} alone ({how})", sims[k])
    behaviour = [sims[k] for k in BEHAVIOUR_KINDS if k in sims]
    report("z-score fusion of " + "+".join(BEHAVIOUR_KINDS), z_fused(behaviour))
    report("rank fusion of " + "+".join(BEHAVIOUR_KINDS), rank_fused(behaviour))
    used = tuple(k for k in DEFAULT_KINDS if k in kinds)
    before = tuple(k for k in used if k not in SET_KINDS)
    if before != used:  # the default before the phrases evidence, as the peer row of the same run
        cv_before = cv_score_matrix(vectors, fam, before, args.folds)
        report(f"relation model without phrases ({'+'.join(before)}; CV by family; the default until 2026-12-04)",
               np.where(np.isnan(cv_before), cv_before.T, cv_before))
    cv = cv_score_matrix(vectors, fam, used, args.folds)
    report(f"relation model ({'+'.join(used)}; CV by family, the default)", np.where(np.isnan(cv), cv.T, cv))
    labelled = np.flatnonzero(fam != "")
    by_model = np.full(len(fam), -1)
    by_model[labelled] = np.random.default_rng(0).permutation(len(labelled)) % args.folds
    cv_model = cv_score_matrix(vectors, fam, used, args.folds, fold=by_model)
    report("relation model, CV by model (its family's other members in the fit: the audit's case when the family "
           "is in the reference)", np.where(np.isnan(cv_model), cv_model.T, cv_model))
    ranked = [n for n in results if n.startswith(("anchor: paper's own DNA, centred", "rank fusion", "relation model ("))]
    print("\n| pairwise score | nearest-neighbour family top-1 | learned family ranker top-1 (family held out) |\n|---|---|---|")
    for name in ranked:
        top1, n = family_ranker_top1(scores[name], fam, lab, args.folds)
        results[name]["ranker_top1"] = top1
        print(f"| {name} | {results[name]['top1']:.3f} | {top1:.3f} ({n} queries) |", flush=True)
    sizes = {f: (fam[lab] == f).sum() for f in set(fam[lab])}
    size_only = np.array([[np.log(sizes[fam[j]]) for j in lab] for _ in lab], dtype=np.float64)
    np.fill_diagonal(size_only, np.nan)
    label_auc = pair_metrics(size_only, fam[lab], par[lab], [ids[i] for i in lab])["auc"]
    print(f"# why the ranker has no pair AUC: a label-only pair score (log size of the record's family) has family AUC "
          f"{label_auc:.3f}")
    print(f"# {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"store": store_dir.name, "results": results}, indent=1))


if __name__ == "__main__":
    main()
