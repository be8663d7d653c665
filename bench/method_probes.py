"""Family top-1 as a function of probe count, and whether gemma-3 / SmolLM2 models find their relatives.

Usage: python bench/method_probes.py [--counts 25,50,100] [--folds 5]

For each leading-probe count k: leave-one-model-out nearest-neighbour family top-1/top-5 and AUC for the paper
DNA (centred cosine) and for the relation model (logistic on DNA + evidence, families held out), then the
top-5 neighbours of google/gemma-3-* and HuggingFaceTB/SmolLM2-135M (each scored by a model fitted without
its family). Data: ../shared/data/reference-responses (LLM DNA authors, github.com/JerryLife/dna-web, MIT).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from method_data import available_probe_count, load_dataset  # noqa: E402

from hf_dna.evidence.relation import DEFAULT_KINDS, cosine_block, cv_score_matrix, pair_metrics  # noqa: E402
from hf_dna.pipeline.dna import project  # noqa: E402

WATCH = ("google/gemma-3", "HuggingFaceTB/SmolLM2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="25,50,100")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--kinds", default=",".join(DEFAULT_KINDS))
    args = ap.parse_args()
    have = available_probe_count("paper600")
    counts = [int(c) for c in args.counts.split(",") if int(c) <= have]
    kinds = tuple(args.kinds.split(","))
    print(f"# paper600, probe counts {counts} (embeddings cached for {have}); "
          f"{platform.machine()}, {os.cpu_count()} cores")
    print("| probes | DNA centred AUC | top-1 | top-5 | relation model AUC | pc-AUC | top-1 | top-5 |\n|---|---|---|---|---|---|---|---|")
    neighbours = {}
    for k in counts:
        t0 = time.time()
        data = load_dataset("paper600", k)
        fam, par, ids = data.family, data.parent, data.model_ids
        lab = np.flatnonzero(data.labelled)
        dna = project(data.emb, 128, 42).astype(np.float64)
        centred = dna - dna.mean(axis=0)
        plain = cosine_block(centred, centred)
        vectors = data.evidence_vectors()
        prob = cv_score_matrix(vectors, fam, kinds, args.folds)
        sub = prob[np.ix_(lab, lab)]
        m0 = pair_metrics(plain[np.ix_(lab, lab)], fam[lab], par[lab], [ids[i] for i in lab])
        m1 = pair_metrics(np.where(np.isnan(sub), sub.T, sub), fam[lab], par[lab], [ids[i] for i in lab])
        print(f"| {k} | {m0['auc']:.3f} | {m0['top1']:.3f} | {m0['top5']:.3f} | {m1['auc']:.3f} | {m1['pc_auc']:.3f} | "
              f"{m1['top1']:.3f} | {m1['top5']:.3f} |  ({time.time() - t0:.0f} s)", flush=True)
        for i, model_id in enumerate(ids):
            if model_id.startswith(WATCH):
                row = prob[i].copy()
                row[i] = -1
                top = np.argsort(-row)[:5]
                neighbours[(k, model_id)] = [(ids[j], data.family[j] or "?", row[j]) for j in top]
    print("\n| probes | model | top-5 neighbours (P(related), family held out) |\n|---|---|---|")
    for (k, model_id), top in neighbours.items():
        text = "; ".join(f"{m} ({f}, {p:.2f})" for m, f, p in top)
        print(f"| {k} | {model_id} | {text} |")


if __name__ == "__main__":
    main()
