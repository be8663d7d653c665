"""Encode a probe range of a shared response set once, into an npz chunk that `hf-dna reference build
--embeddings-cache DIR` and the method benchmarks (bench/method_data.py) read.

Usage: python bench/embed_responses.py --set paper600 --start 100 --stop 200 [--out /work/cache/emb]

Writes OUT/<set>-<start:03d>-<stop:03d>.npz with keys model_id, probe, emb (float32, all-MiniLM-L6-v2 through
`hf_dna.pipeline.embed`, the encoder the product uses). One-off, heavy work (about 40 minutes per 100 paper600 probes on 2 CPU
cores); never part of CI. Data: ../shared/data/reference-responses (LLM DNA authors, github.com/JerryLife/dna-web, MIT).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
from method_data import EMB_CACHE, SHARED  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="paper600")
    ap.add_argument("--start", type=int, required=True)
    ap.add_argument("--stop", type=int, required=True)
    ap.add_argument("--out", default=str(EMB_CACHE))
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    from hf_dna.pipeline.embed import load_encoder
    from hf_dna.pipeline.device import torch_threads

    target = Path(args.out) / f"{args.set}-{args.start:03d}-{args.stop:03d}.npz"
    if target.exists():
        sys.exit(f"Error: {target} exists (delete it to re-encode)")
    df = pd.read_parquet(SHARED / f"{args.set}.parquet", columns=["model_id", "probe", "response"])
    df = df[(df.probe >= args.start) & (df.probe < args.stop)].reset_index(drop=True)
    texts = [(r or "").strip() for r in df.response]
    print(f"{len(texts)} responses of {df.model_id.nunique()} models, probes {args.start}-{args.stop}", flush=True)
    t0 = time.perf_counter()
    with torch_threads():
        emb = load_encoder().encode(texts, batch_size=args.batch_size, progress=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.npz")
    np.savez(partial, model_id=df.model_id.to_numpy().astype(str), probe=df.probe.to_numpy().astype(np.int16),
             emb=np.asarray(emb, dtype=np.float32))
    partial.replace(target)
    print(f"wrote {target} in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
