"""Benchmark: ReferenceStore.nearest (vectorised numpy) vs peers, and loading a store from disk.

Peers, in the same run: scipy.spatial.distance.cdist + full argsort (the obvious library way), and a pure-Python
loop over records (what a naive implementation does; run on a subset and scaled). Prints absolute times, ratios
and the CPU. Usage: python bench/bench_reference.py [--n 100000] [--dim 128] [--repeat 20]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.hardware import cpu_name  # noqa: E402




def synthetic_store(n: int, dim: int):
    from hf_dna.pipeline.record import DNARecord
    from hf_dna.reference import ReferenceStore

    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(n, dim)).astype(np.float32)
    template = DNARecord(model_id="m", dna=np.zeros(dim), probe_set="bench", probe_hash="b" * 64, n_probes=1,
                         encoder="bench", projection_seed=0, projection="jl")
    store = ReferenceStore()
    store.config = {"probe_set": "bench", "probe_hash": "b" * 64, "encoder": "bench", "dim": dim,
                    "projection_seed": 0, "projection": "jl"}
    for i in range(n):  # bypass per-record float conversion: the benchmark is about search, not construction
        record = DNARecord.__new__(DNARecord)
        record.__dict__.update(template.__dict__, model_id=f"org/m{i}", dna=matrix[i])
        store._records[(record.model_id, "local")] = record
    return store, matrix, rng


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    from scipy.spatial.distance import cdist

    store, matrix, rng = synthetic_store(args.n, args.dim)
    query = rng.normal(size=args.dim).astype(np.float32)
    build = best_of(lambda: (setattr(store, "_matrix", None), store.matrix), 1)
    ours = best_of(lambda: store.nearest(query, k=10, exclude={"org/m1"}), args.repeat)
    peer = best_of(lambda: np.argsort(cdist(query[None, :], matrix, "cosine")[0])[:10], max(args.repeat // 4, 3))
    subset = min(args.n, 10_000)
    records = store.records[:subset]

    def python_loop():
        q = query.tolist()
        qn = sum(x * x for x in q) ** 0.5
        scored = []
        for r in records:
            v = r.dna.tolist()
            scored.append((1 - sum(a * b for a, b in zip(v, q)) / ((sum(a * a for a in v) ** 0.5) * qn), r.model_id))
        return sorted(scored)[:10]

    loop = best_of(python_loop, 1) * args.n / subset
    print(f"CPU: {cpu_name()}; numpy {np.__version__}; n={args.n} dim={args.dim}")
    print(f"matrix build (once per store):        {build * 1000:9.1f} ms")
    print(f"ReferenceStore.nearest k=10 (cosine):  {ours * 1000:9.2f} ms")
    print(f"peer scipy cdist + argsort:            {peer * 1000:9.2f} ms   ratio {peer / ours:5.1f}x")
    print(f"peer pure-Python loop (scaled):        {loop * 1000:9.0f} ms   ratio {loop / ours:5.0f}x")
    euclid = best_of(lambda: store.nearest(query, k=10, metric="euclidean"), args.repeat)
    print(f"ReferenceStore.nearest k=10 (euclid):  {euclid * 1000:9.2f} ms")

    from hf_dna.reference import ReferenceStore

    small = 1000
    with tempfile.TemporaryDirectory() as tmp:
        from hf_dna.pipeline.record import DNARecord

        recs = [DNARecord(model_id=f"org/m{i}", dna=matrix[i], probe_set="bench", probe_hash="b" * 64, n_probes=1,
                          encoder="bench", projection_seed=0, projection="jl") for i in range(small)]
        start = time.perf_counter()
        ReferenceStore.create(tmp, recs)
        saved = time.perf_counter() - start
        start = time.perf_counter()
        ReferenceStore.load(tmp)
        loaded = time.perf_counter() - start
    print(f"save {small} records (one parquet each): {saved:6.2f} s; load: {loaded:6.2f} s")


if __name__ == "__main__":
    main()
