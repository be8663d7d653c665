"""Data loading for the method benchmarks: real responses, lineage labels, cached per-response embeddings.

Responses and lineage: ../shared/data/reference-responses (LLM DNA authors, github.com/JerryLife/dna-web, MIT).
Embeddings: all-MiniLM-L6-v2 vectors precomputed into npz chunks (keys dir, model_id, probe, emb), e.g.
/work/cache/emb/paper600-000-100.npz; see `load_embeddings`.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(os.environ.get("HF_DNA_SHARED", Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-responses"))
EMB_CACHE = Path(os.environ.get("HF_DNA_EMB_CACHE", "/work/cache/emb"))
GOOD_CONFIDENCE = ("high", "medium")


@dataclass
class Dataset:
    """One response set: models (rows), their labels, texts [model][probe] and embeddings (n, p, d) or None."""

    set_name: str
    model_ids: list[str]
    family: np.ndarray  # str per model ('' when unlabelled or low confidence)
    parent: np.ndarray  # str per model
    confidence: np.ndarray
    texts: list[list[str]]
    emb: np.ndarray | None

    @property
    def labelled(self) -> np.ndarray:
        return self.family != ""

    def evidence_vectors(self, seed: int = 42) -> dict[str, np.ndarray]:
        """Per model, exactly what a reference record built from these responses carries (DNA + evidence,
        as `hf_dna.evidence.sketches.record_evidence` stores it), stacked: kind -> (n_models, ...) float64."""
        from hf_dna.evidence.relation import SET_KINDS, evidence_vectors
        from hf_dna.pipeline.dna import project
        from hf_dna.evidence.sketches import record_evidence

        rows = [evidence_vectors(record_evidence(t, e, seed)) for t, e in zip(self.texts, self.emb)]
        out = {k: [r[k] for r in rows] if k in SET_KINDS else np.stack([r[k] for r in rows]).astype(np.float64)
               for k in rows[0]}
        out["dna"] = project(self.emb, 128, seed).astype(np.float64)
        return out


def available_probe_count(set_name: str) -> int:
    """How many leading probes have cached embeddings (contiguous chunks from 0)."""
    spans = []
    for f in glob.glob(str(EMB_CACHE / f"{set_name}-*.npz")):
        m = re.search(r"-(\d+)-(\d+)\.npz$", f)
        if m:
            spans.append((int(m[1]), int(m[2])))
    end = 0
    for a, b in sorted(spans):
        if a == end:
            end = b
    return end


def load_embeddings(set_name: str, model_ids: list[str], n_probes: int) -> np.ndarray:
    """(n_models, n_probes, d) float32 from the cached chunks covering probes [0, n_probes)."""
    out = None
    index = {m: i for i, m in enumerate(model_ids)}
    for f in sorted(glob.glob(str(EMB_CACHE / f"{set_name}-*.npz"))):
        m = re.search(r"-(\d+)-(\d+)\.npz$", f)
        if not m or int(m[1]) >= n_probes:
            continue
        z = np.load(f, allow_pickle=True)
        emb = z["emb"]
        if out is None:
            out = np.full((len(model_ids), n_probes, emb.shape[-1]), np.nan, dtype=np.float32)
        rows = np.array([index.get(str(x), -1) for x in z["model_id"]])
        probes = z["probe"].astype(int)
        keep = (rows >= 0) & (probes < n_probes)
        out[rows[keep], probes[keep]] = emb[keep]
    if out is None or np.isnan(out).any():
        raise RuntimeError(f"embeddings for {set_name} probes 0-{n_probes} are not all cached in {EMB_CACHE}")
    return out


def load_dataset(set_name: str, n_probes: int, with_embeddings: bool = True, max_empty: float = 0.5) -> Dataset:
    """Load responses (first `n_probes` probes), lineage labels and, if asked, cached embeddings.

    Models with more than `max_empty` empty responses are dropped, as `hf-dna reference build` drops them."""
    df = pd.read_parquet(SHARED / f"{set_name}.parquet", columns=["model_id", "probe", "response"])
    df = df[df.probe < n_probes]
    model_ids = sorted(df.model_id.unique())
    lineage = pd.read_csv(SHARED / "lineage.csv").fillna("")
    lineage = lineage[lineage.set == ("paper600" if set_name == "paper600" else "chat")].drop_duplicates("model_id")
    lin = lineage.set_index("model_id")
    texts_by = {m: [""] * n_probes for m in model_ids}
    for m, p, r in zip(df.model_id, df.probe, df.response):
        texts_by[m][int(p)] = r or ""
    from hf_dna.reference.build import empty_share

    model_ids = [m for m in model_ids if empty_share(texts_by[m]) <= max_empty]
    fam, par, conf = [], [], []
    for m in model_ids:
        row = lin.loc[m] if m in lin.index else None
        good = row is not None and row.confidence in GOOD_CONFIDENCE and row.family not in ("", "unknown")
        fam.append(row.family if good else "")
        par.append(row.parent if row is not None else "")
        conf.append(row.confidence if row is not None else "")
    emb = load_embeddings(set_name, model_ids, n_probes) if with_embeddings else None
    return Dataset(set_name, model_ids, np.array(fam, dtype=object), np.array(par, dtype=object),
                   np.array(conf, dtype=object), [texts_by[m] for m in model_ids], emb)
