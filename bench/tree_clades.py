"""Do lineage families form clades in hf-dna's trees? Measured on the real reference DNAs.

Input: a reference store (default: the embedded paper600 store) or the raw per-probe embeddings
(`--emb '/work/cache/emb/paper600-*.npz'`: keys dir, model_id, probe, emb), projected here with hf_dna.pipeline.dna.project;
family labels from lineage.csv. The tree is built over every model with a DNA; only high-confidence labels score.

Definitions, for a family F with >= 2 high-confidence members M (other high-confidence leaves are "foreign";
medium/low-confidence leaves are ignored; UPGMA: clades of the rooted tree; NJ: both sides of every edge):
- pure clade: the largest clade holding members of F and no foreign leaf. A model is "in its family's clade" when
  it lies in that clade. in-clade = |pure clade ∩ M| / |M| (1.0 = F is monophyletic).
- LCA purity: of the smallest clade containing all of M, the share of its scored leaves that belong to F.
- best-F1 clade: the clade maximising F1 of (members vs foreign leaves); its precision and recall.
Headline: the share of all high-confidence models (in families with >= 2 of them) that lie in their family's pure
clade. Peer run: the same trees with the family labels shuffled among the scored leaves (mean of 20 shuffles).

    python bench/tree_clades.py [--store DIR | --emb GLOB] [--lineage CSV] [--out bench/out/tree_clades.json]
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import platform
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from hf_dna.pipeline.record import DNARecord

LINEAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-responses" / "lineage.csv"
SHOWN = ["llama-1", "llama-2", "llama-3", "qwen1.5", "qwen2.5", "qwen3", "gemma-3", "pythia", "bloom", "mistral-7b",
         "yi", "llama*", "qwen*", "gemma*"]
GROUPS = ("llama-", "qwen", "gemma-", "falcon", "deepseek-", "phi-", "mistral-", "smollm", "glm")


def coarse(family: str) -> str:
    """Family group: llama-1/2/3 -> llama*, qwen1.5..qwen3 -> qwen*, gemma-1..3 -> gemma*, ..."""
    return next((g.rstrip("-") + "*" for g in GROUPS if family.startswith(g)), family)


def records_from_embeddings(pattern: str, probe_set: str = "paper600") -> list[DNARecord]:
    from hf_dna.pipeline.dna import DEFAULT_DIM, DEFAULT_SEED, PROJECTION, project

    parts = defaultdict(dict)
    for file in sorted(glob.glob(pattern)):
        data = np.load(file)
        for model_id, probe, emb in zip(data["model_id"], data["probe"], data["emb"]):
            parts[str(model_id)][int(probe)] = emb
    n_probes = max(len(p) for p in parts.values())
    records = []
    for model_id, by_probe in sorted(parts.items()):
        if len(by_probe) != n_probes:
            continue
        emb = np.stack([by_probe[p] for p in range(n_probes)])
        records.append(DNARecord(model_id=model_id, dna=project(emb, DEFAULT_DIM, DEFAULT_SEED), probe_set=probe_set,
                                 probe_hash=f"{probe_set}-{n_probes}", n_probes=n_probes, encoder="all-MiniLM-L6-v2",
                                 projection_seed=DEFAULT_SEED, projection=PROJECTION))
    return records


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def read_lineage(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["model_id"]: row for row in csv.DictReader(fh)}


def family_scores(groups: list[frozenset[str]], labels: dict[str, str]) -> dict[str, dict[str, float]]:
    """Clade scores per family; `labels` maps each scored leaf to its family."""
    members: dict[str, set[str]] = defaultdict(set)
    for leaf, fam in labels.items():
        members[fam].add(leaf)
    scored = set(labels)
    views = [g & scored for g in groups]
    out = {}
    for fam, m in members.items():
        if len(m) < 2:
            continue
        best_pure, lca, best_f1 = 0, None, (0.0, 0.0, 0.0)
        for v in views:
            tp = len(v & m)
            if not tp:
                continue
            fp = len(v) - tp
            if fp == 0:
                best_pure = max(best_pure, tp)
            if tp == len(m) and (lca is None or len(v) < len(lca)):
                lca = v
            f1 = 2 * tp / (2 * tp + fp + len(m) - tp)
            if f1 > best_f1[0]:
                best_f1 = (f1, tp / (tp + fp), tp / len(m))
        out[fam] = {"n": len(m), "in_clade": best_pure, "in_clade_frac": best_pure / len(m),
                    "lca_purity": len(m) / len(lca) if lca else 0.0, "best_f1": best_f1[0],
                    "best_precision": best_f1[1], "best_recall": best_f1[2]}
    return out


def headline(scores: dict[str, dict[str, float]]) -> float:
    n = sum(s["n"] for s in scores.values())
    return sum(s["in_clade"] for s in scores.values()) / n if n else 0.0


def evaluate(records: list[DNARecord], lineage: dict, distances: np.ndarray, method: str, name: str,
             shuffles: int = 20) -> dict:
    from hf_dna.report.tree import neighbor_joining, record_labels, upgma

    labels = record_labels(records)
    t0 = time.perf_counter()
    root = upgma(distances, labels)[0] if method == "upgma" else neighbor_joining(distances, labels)
    seconds = time.perf_counter() - t0
    groups = root.clades() if method == "upgma" else root.splits()
    fine = {label: lineage[r.model_id]["family"] for label, r in zip(labels, records)
            if r.model_id in lineage and lineage[r.model_id]["confidence"] == "high" and lineage[r.model_id]["family"]}
    result = {"method": method, "distance": name, "seconds": round(seconds, 3), "n_leaves": len(records)}
    rng = np.random.default_rng(0)
    for level, labelled in (("fine", fine), ("coarse", {k: coarse(v) for k, v in fine.items()})):
        scores = family_scores(groups, labelled)
        keys, values = list(labelled), list(labelled.values())
        peer = [headline(family_scores(groups, dict(zip(keys, rng.permutation(values))))) for _ in range(shuffles)]
        result[level] = {"families": scores, "in_clade": headline(scores), "shuffled": float(np.mean(peer)),
                         "scored_models": sum(s["n"] for s in scores.values()),
                         "monophyletic": sum(s["in_clade_frac"] == 1.0 for s in scores.values()),
                         "n_families": len(scores)}
    return result


def distance_matrices(records: list[DNARecord], calibration: dict | None) -> dict[str, np.ndarray]:
    """The distances `hf-dna tree --distance` offers, on these records."""
    from hf_dna.report.tree import dna_distances, evidence_distances, relation_distances

    out = {"dna centred": dna_distances(records), "dna raw": dna_distances(records, center=False)}
    if any(r.evidence for r in records):
        out["evidence centred"] = evidence_distances(records)
    if calibration:
        t0 = time.perf_counter()
        out["relation (in-sample)"] = relation_distances(records, calibration)
        print(f"relation distances: {time.perf_counter() - t0:.1f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="reference store dir (default: the embedded paper600 store)")
    parser.add_argument("--emb", help="glob of per-probe embedding .npz files to project instead")
    parser.add_argument("--lineage", default=str(LINEAGE), help="lineage CSV (model_id, family, confidence)")
    parser.add_argument("--out", default="bench/out/tree_clades.json")
    args = parser.parse_args()
    calibration = None
    if args.emb:
        records = records_from_embeddings(args.emb, re.split(r"-[0-9*]", Path(args.emb).name)[0])
        source = args.emb
    else:
        from hf_dna.reference import ReferenceStore

        store = ReferenceStore.load(args.store) if args.store else ReferenceStore.default()
        records, source, calibration = store.records, store.source, store.calibration
    lineage = read_lineage(Path(args.lineage))
    print(f"{len(records)} DNAs from {source}; {cpu_name()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}")
    matrices = distance_matrices(records, calibration)
    runs = [evaluate(records, lineage, d, m, name) for name, d in matrices.items() for m in ("upgma", "nj")]
    print(f"\n{'tree':<30}{'fine in-clade':>14}{'shuffled':>10}{'ratio':>7}{'mono':>8}"
          f"{'coarse in-clade':>17}{'shuffled':>10}{'ratio':>7}{'build s':>9}")
    for r in runs:
        f, c = r["fine"], r["coarse"]
        print(f"{r['method'] + ' ' + r['distance']:<30}{f['in_clade']:>14.3f}{f['shuffled']:>10.3f}"
              f"{f['in_clade'] / max(f['shuffled'], 1e-9):>7.2f}{f['monophyletic']:>4}/{f['n_families']:<3}"
              f"{c['in_clade']:>17.3f}{c['shuffled']:>10.3f}{c['in_clade'] / max(c['shuffled'], 1e-9):>7.2f}"
              f"{r['seconds']:>9.2f}")
    for r in runs:
        print(f"\n{r['method']} {r['distance']}: family  n  in-clade  LCA-purity  best-F1 (P/R)")
        scores = {**r["fine"]["families"], **r["coarse"]["families"]}
        for fam in [f for f in SHOWN if f in scores]:
            s = scores[fam]
            print(f"  {fam:<12}{s['n']:>3}  {s['in_clade']:>3} ({s['in_clade_frac']:.2f})  {s['lca_purity']:>9.2f}"
                  f"  {s['best_f1']:.2f} ({s['best_precision']:.2f}/{s['best_recall']:.2f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"source": str(source), "runs": runs}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
