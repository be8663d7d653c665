"""Benchmark: relationship separation of sampled DNAs, hf-dna's decoding loop vs transformers' `generate()`.

The tiny GPT-2 parent, child and unrelated models of `bench/bench_extract.py` (built there, or here on first use),
paper settings (T=0.7, top_p 0.9, top-k 50 as `generate()` applies it), 100 paper probes, 32 new tokens, seeds 42-44;
prints d(parent,child)/d(parent,unrelated) for each path and seed (lower is better), both paths in the same run.

    python bench/bench_sampling.py [--seeds 42,43,44] [--probes paper600:100]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--probes", default="paper600:100")
    args = parser.parse_args()
    from bench_extract import build_tiny_models, hardware

    from hf_dna.pipeline.backends.transformers import TransformersGenerator
    from hf_dna.pipeline.extract import extract
    from hf_dna.pipeline.probes import load_probe_set
    from hf_dna.pipeline.responses import GenerationSettings

    models = build_tiny_models()
    probes = load_probe_set(args.probes)
    print(f"hardware: {hardware()}")
    means = {}
    for label, own in (("hf-dna loop", True), ("generate()", False)):
        TransformersGenerator.own_decoding = property(lambda self, own=own: own)  # the path under test
        ratios = []
        for seed in map(int, args.seeds.split(",")):
            settings = GenerationSettings.paper(max_new_tokens=32, seed=seed)
            dna = {name: np.asarray(extract(str(path), probes, settings=settings, use_cache=False, progress=False,
                                            weights=False).dna) for name, path in models.items()}
            ratios.append(float(np.linalg.norm(dna["parent"] - dna["child"])
                                / np.linalg.norm(dna["parent"] - dna["unrelated"])))
            print(f"{label} seed {seed}: {ratios[-1]:.3f}", flush=True)
        means[label] = float(np.mean(ratios))
    print(" | ".join(f"{k} mean {v:.3f}" for k, v in means.items()),
          f"| ratio loop/generate {means['hf-dna loop'] / means['generate()']:.2f}")


if __name__ == "__main__":
    main()
