"""How behaviour evidence grows with the number of probes (issue 11): per-probe character n-gram sketches
(`lexprobe64`, hf_dna.evidence.sketches; no encoder needed, so all 600 probes are cheap) compared by per-probe
votes over the first k of paper600's probes, k = 50 ... 600, from the real responses in
../shared/data/reference-responses (LLM DNA authors, github.com/JerryLife/dna-web, MIT). The anchor row is the
authors' own DNA (Qwen3-Embedding-8B, 600 probes), scored on the same models, labels, pairs and metrics in the
same run (bench/method_store_eval.py's protocol: the paper600-100 store's models with a paper DNA).

Usage: python bench/probe_count_eval.py [--ks 50,100,200,300,600] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
from method_store_eval import ROOT, centred_cosine, family_lomo, load_labels, paper_dnas, rank_fused  # noqa: E402

from hf_dna.evidence.metrics import pair_metrics  # noqa: E402
from hf_dna.evidence.relation import pairwise_similarity, record_vectors  # noqa: E402
from hf_dna.evidence.sketches import lexical_probe_sketch, pack_probe_sketch, unpack_probe_sketch  # noqa: E402
from hf_dna.pipeline.dna import DEFAULT_SEED  # noqa: E402
from hf_dna.reference.store import ReferenceStore  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "reference-responses"


def sketch(texts: list[str]) -> np.ndarray:
    """The stored form of a model's lexprobe64 (int8-packed and unpacked, as records carry it)."""
    return unpack_probe_sketch(pack_probe_sketch(lexical_probe_sketch(texts, DEFAULT_SEED)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="50,100,200,300,600")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()
    store_dir = ROOT / "hf_dna" / "data" / "reference" / "paper600-100"
    records = ReferenceStore.load(store_dir).records
    ids = [r.model_id for r in records]
    fam, par = load_labels(store_dir, ids)
    anchor = paper_dnas(ids)
    if anchor is None:
        sys.exit("error: ../shared/data/paper-dnas not found (the anchor row needs it)")
    df = pd.read_parquet(SHARED / "paper600.parquet", columns=["model_id", "probe", "response"])
    df = df[df.model_id.isin(set(ids))]
    n_probes = int(df.probe.max()) + 1
    table = {m: [""] * n_probes for m in ids}
    for m, p, r in zip(df.model_id, df.probe, df.response):
        table[m][int(p)] = r or ""
    with ProcessPoolExecutor(args.workers) as pool:
        sketches = np.stack(list(pool.map(sketch, [table[m] for m in ids], chunksize=8)))
    t_sketch = time.time() - t0
    lab = np.flatnonzero((fam != "") & ~np.isnan(anchor).any(axis=1))
    print(f"# paper600: {len(ids)} models, {len(lab)} labelled with a paper DNA, {len(set(fam[lab]))} families; "
          f"{n_probes} probes sketched in {t_sketch:.0f} s on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print("| method | probes | AUC family | AUC parent-child | top-1 | top-5 | family LOMO top-2 |\n|---|---:|---|---|---|---|---|")

    def report(name: str, probes: int, score: np.ndarray) -> np.ndarray:
        score = np.array(score, dtype=np.float64)
        np.fill_diagonal(score, np.nan)
        m = pair_metrics(score[np.ix_(lab, lab)], fam[lab], par[lab], [ids[i] for i in lab])
        top2, _ = family_lomo(np.nan_to_num(score, nan=-np.inf), fam, lab, 2)
        print(f"| {name} | {probes} | {m['auc']:.3f} | {m['pc_auc']:.3f} | {m['top1']:.3f} | {m['top5']:.3f} | "
              f"{top2:.3f} |", flush=True)
        return score

    report("anchor: paper's own DNA (Qwen3-Embedding-8B), centred", 600, centred_cosine(anchor))
    stored = [record_vectors(r) for r in records]
    store_sims = {}
    for kind in ("probe64", "emb1024"):
        v = np.stack([s[kind] for s in stored])
        store_sims[kind] = pairwise_similarity(kind, v - v.mean(axis=0), v)
    lex = {}
    for k in (int(x) for x in args.ks.split(",")):
        raw = sketches[:, :k]
        lex[k] = report("hf-dna lexprobe64, per-probe votes", k, pairwise_similarity("lexprobe64", raw - raw.mean(axis=0), raw))
    report("rank fusion probe64 + emb1024 (store, 100 probes) + lexprobe64 (100 probes)", 100,
           rank_fused([store_sims["probe64"], store_sims["emb1024"], lex.get(100, lex[min(lex)])]))
    best = max(lex)
    report(f"rank fusion probe64 + emb1024 (store, 100 probes) + lexprobe64 ({best} probes)", best,
           rank_fused([store_sims["probe64"], store_sims["emb1024"], lex[best]]))
    print(f"# {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
