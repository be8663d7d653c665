"""Relationship detection on real responses: DNA schemes and audit-method variants, families held out.

Usage: python bench/method_eval.py [--set paper600] [--probes 100] [--folds 5] [--json OUT]

Data: ../shared/data/reference-responses (LLM DNA authors, github.com/JerryLife/dna-web, MIT) and cached
all-MiniLM-L6-v2 embeddings (bench/method_data.py). Labels: lineage.csv `family`, high/medium confidence.
Metrics (hf_dna.evidence.metrics.pair_metrics): AUC same-family vs different over all labelled pairs; parent-child vs
different-family AUC; leave-one-model-out nearest-neighbour family top-1/top-5. Learned variants (whitening,
probe weights, logistic combination) are fitted on training families only (grouped k-fold by family).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from method_data import available_probe_count, load_dataset  # noqa: E402

from hf_dna.evidence.metrics import pair_metrics
from hf_dna.evidence.relation import _unit, cosine_block, cross_validate, family_folds, vote_matrix, whitener
from hf_dna.pipeline.dna import project  # noqa: E402
from hf_dna.evidence.sketches import lexical_sketch, wide_embedding  # noqa: E402


def scheme_llmdna(emb: np.ndarray, seed: int = 42) -> np.ndarray:
    """llm-dna 1.0.1: each response JL to 64, concatenated, then JL to 128."""
    n, p, d = emb.shape
    rng = np.random.default_rng(seed)
    first = rng.standard_normal((d, 64)).astype(np.float32) / np.sqrt(64)
    small = (emb.reshape(n * p, d) @ first).reshape(n, p * 64)
    second = rng.standard_normal((p * 64, 128)).astype(np.float32) / np.sqrt(128)
    return small @ second


def scheme_truncate(emb: np.ndarray) -> np.ndarray:
    """Old llm-dna git: concatenate, keep the first 128 dims."""
    return emb.reshape(len(emb), -1)[:, :128]


def cos_matrix(x: np.ndarray, centre: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if centre:
        x = x - x.mean(axis=0)
    return cosine_block(x, x)


def whitened_cv(dna: np.ndarray, families: np.ndarray, folds: int, shrink: float) -> np.ndarray:
    """Similarity rows of held-out families, whitened with the training families' within-family covariance."""
    fold = family_folds(families, folds)
    centred = dna - dna.mean(axis=0)
    score = cos_matrix(dna, True)
    for k in range(folds):
        train = (fold != k) & (fold >= 0)
        w = whitener(centred[train], families[train], shrink)
        t = centred @ w
        test = np.flatnonzero(fold == k)
        score[test] = cosine_block(t[test], t)
    return score


def per_probe_sims(emb: np.ndarray) -> np.ndarray:
    """(p, n, n) cosine of per-probe centred embeddings."""
    centred = emb - emb.mean(axis=0, keepdims=True)
    unit = _unit(centred.transpose(1, 0, 2))
    return np.einsum("pnd,pmd->pnm", unit, unit, optimize=True).astype(np.float32)


def probe_weighted_cv(sims: np.ndarray, families: np.ndarray, folds: int) -> np.ndarray:
    """Average of per-probe similarities weighted by each probe's family separation on training families."""
    fold = family_folds(families, folds)
    score = sims.mean(axis=0).astype(np.float64)
    for k in range(folds):
        rows = np.flatnonzero((fold != k) & (fold >= 0))
        sub = sims[:, rows][:, :, rows]
        same = families[rows][:, None] == families[rows][None, :]
        off = ~np.eye(len(rows), dtype=bool)
        pos, neg = same & off, ~same
        sep = (sub[:, pos].mean(axis=1) - sub[:, neg].mean(axis=1)) / (sub[:, neg].std(axis=1) + 1e-9)
        w = np.clip(sep, 0, None)
        w = w / w.sum()
        test = np.flatnonzero(fold == k)
        score[test] = np.tensordot(w, sims[:, test, :], axes=1)
    return score


def lexical_exact(texts: list[list[str]]) -> np.ndarray:
    """Average per-probe cosine of char 3-5-gram TF-IDF (IDF fitted per probe over all models)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n, p = len(texts), len(texts[0])
    total = np.zeros((n, n))
    for j in range(p):
        docs = [" ".join((t[j] or "").lower().split()) or " " for t in texts]
        x = TfidfVectorizer(analyzer="char", ngram_range=(3, 5), sublinear_tf=True, min_df=1).fit_transform(docs)
        total += (x @ x.T).toarray()
    return total / p


def fmt(name: str, m: dict) -> str:
    return f"| {name} | {m['auc']:.3f} | {m['pc_auc']:.3f} | {m['top1']:.3f} | {m['top5']:.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="paper600")
    ap.add_argument("--probes", type=int, default=0, help="leading probes to use (0: all with cached embeddings)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--skip-exact-lex", action="store_true")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    n_probes = args.probes or available_probe_count(args.set)
    t0 = time.time()
    data = load_dataset(args.set, n_probes)
    fam, par, ids = data.family, data.parent, data.model_ids
    lab = np.flatnonzero(data.labelled)
    print(f"# {args.set}: {len(ids)} models, {len(lab)} labelled (high/medium), {len(set(fam[lab]))} families, "
          f"{n_probes} probes; {platform.processor() or platform.machine()}, {os.cpu_count()} cores", flush=True)

    def evaluate(score: np.ndarray) -> dict:
        return pair_metrics(score[np.ix_(lab, lab)], fam[lab], par[lab], [ids[i] for i in lab])

    results = {}
    emb = data.emb
    dna = project(emb, 128, 42)
    print("| variant | AUC family | AUC parent-child | top-1 | top-5 |\n|---|---|---|---|---|")

    def report(name: str, score: np.ndarray) -> None:
        results[name] = evaluate(score)
        print(fmt(name, results[name]), flush=True)

    report("scheme a: paper concat->JL128 (raw cos)", cos_matrix(dna, False))
    report("scheme b: llm-dna 1.0.1 JL64 each->JL128", cos_matrix(scheme_llmdna(emb), False))
    report("scheme c: truncate to 128", cos_matrix(scheme_truncate(emb), False))
    report("paper DNA128, centred", cos_matrix(dna, True))
    for shrink in (0.1, 1.0):
        report(f"DNA128 centred+whitened (within-family, shrink {shrink}; CV)",
               whitened_cv(dna, fam, args.folds, shrink))
    for dim in (512, 1024, 2048):
        report(f"wide JL{dim}, centred", cos_matrix(wide_embedding(emb, 42, dim), True))
    sims = per_probe_sims(emb)
    report("exact per-probe centred cosine (no projection)", sims.mean(axis=0))
    report("probe-weighted per-probe cosine (CV weights)", probe_weighted_cv(sims, fam, args.folds))
    del sims
    vectors = data.evidence_vectors()
    answered = np.array([[bool((t or "").strip()) for t in texts] for texts in data.texts])
    centred = emb - emb.mean(axis=0)
    report("per-probe votes, exact embeddings (nearest 4% per probe)", vote_matrix(centred, np.ones_like(answered)))
    report("per-probe votes, exact, empty answers left out", vote_matrix(centred, answered))
    for kind in ("probe64", "lexprobe64"):
        report(f"per-probe votes on the stored {kind} sketches (int8)",
               vote_matrix(vectors[kind] - vectors[kind].mean(axis=0), answered))
    lex = np.stack([lexical_sketch(t, 42) for t in data.texts])
    report("lex sketch 512 (raw cos)", cos_matrix(lex, False))
    report("lex sketch 512, centred", cos_matrix(lex, True))
    if not args.skip_exact_lex:
        report("lex exact TF-IDF per-probe avg cosine", lexical_exact(data.texts))

    kind_sets = [("dna",), ("dna", "dna_white"), ("lex",), ("emb1024",), ("probe64",), ("dna", "dna_white", "lex"),
                 ("dna", "dna_white", "emb1024"), ("dna", "dna_white", "lex", "emb1024"), ("dna", "lex", "emb1024"),
                 ("lex", "emb1024", "probe64"), ("dna", "lex", "emb1024", "probe64"), ("lexprobe64",),
                 ("dna", "emb1024", "probe64", "lexprobe64"), ("dna", "lex", "emb1024", "probe64", "lexprobe64")]
    for kinds in kind_sets:
        m = cross_validate(vectors, fam, par, ids, kinds, args.folds)
        name = f"logistic on {'+'.join(kinds)} (CV by family)"
        results[name] = m
        print(fmt(name, m) + f" AUC mean by fold {m['auc_by_fold']:.3f}; brier {m['brier']:.4f}; top candidate P>=0.5 for {m['nn_fire_rate']:.2f} of models, right family {m['nn_fire_precision']:.2f}; pairs P>=0.5 precision {m['flag_precision']:.3f} "
              f"recall {m['flag_recall']:.3f}", flush=True)
    print(f"# n_queries {results[name]['n_queries']}, parent-child pairs {results[name]['n_pc_pairs']}; "
          f"{time.time() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"set": args.set, "n_probes": n_probes, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
