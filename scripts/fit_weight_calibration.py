"""Fit the weight evidence's calibration (hf_dna/evidence/weight_calibration.json) on pairs of weight sketches built here.

Per family (a tiny Llama from one random init; builders from tests/test_weight_sketch.py, as bench/bench_weights.py
uses them): the base trained a little, bf16/fp16 casts, a re-shard, GGUF F16/Q8_0/Q4_1/Q4_0/Q4_K_M-like,
bitsandbytes nf4/int8 layouts, a dequantized Q4_1 re-export and a Q8_0 of it, fine-tunes (3 and 100 steps, and of the
dequantized copy), a merged q/v LoRA, added tokens, a Q4_0 GGUF and an nf4 of the 100-step fine-tune, and two
unrelated same-config models (other inits trained on the same text, one as Q4_1 GGUF).
Derived pairs: every pair inside a family; unrelated pairs: each family model vs its two other inits, and every
pair across families. The features of each pair (`weight_calibration.FEATURES`) are stored with the fit.

    python scripts/fit_weight_calibration.py [--families 3] [--out hf_dna/evidence/weight_calibration.json]
    python scripts/fit_weight_calibration.py --refit   # refit from the pairs stored in the JSON (seconds)
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from hf_dna.evidence import weight_calibration as C
from hf_dna.evidence import weights as W

DIGITS = 6  #: features are stored rounded; the fit runs on the rounded values, so a refit reproduces it exactly


def family_sketches(root: Path, seed: int) -> tuple[dict[str, dict], list[dict]]:
    from tests.test_weight_sketch import UNRELATED, build_family

    paths = build_family(root, seed=seed, unrelated_seed=100 + seed)
    members = {name: W.sketch_files(path) for name, path in paths.items() if name not in ("wide", *UNRELATED)}
    return members, [W.sketch_files(paths[name]) for name in UNRELATED]


def build_pairs(n_families: int, root: Path) -> tuple[list[list[float]], list[list[float]], list[str]]:
    import torch

    torch.set_num_threads(1)
    families = {}
    for seed in range(1, n_families + 1):
        start = time.perf_counter()
        families[seed] = family_sketches(root / f"family{seed}", seed)
        print(f"family {seed}: {len(families[seed][0])} models built and sketched in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    related, unrelated, skipped = [], [], []

    def add(target: list, a: dict, b: dict, label: str) -> None:
        x = W.pair_features(a, b)
        if x is None:
            skipped.append(label)
        else:
            target.append([round(float(v), DIGITS) for v in x])

    for seed, (members, others) in families.items():
        for (na, a), (nb, b) in itertools.combinations(members.items(), 2):
            add(related, a, b, f"{seed}:{na}~{nb}")
        for (name, m), other in itertools.product(members.items(), others):
            add(unrelated, m, other, f"{seed}:{name}~other-init")
    for s, t in itertools.combinations(families, 2):
        for (na, a), (nb, b) in itertools.product(families[s][0].items(), families[t][0].items()):
            add(unrelated, a, b, f"{s}:{na}~{t}:{nb}")
    return related, unrelated, skipped


def fit_stored(data: dict) -> dict:
    """Refit from the pairs a calibration JSON stores (what tests/test_weight_calibration.py checks)."""
    return C.fit(np.array(data["pairs"]["related"]), np.array(data["pairs"]["unrelated"]), l2=data.get("l2", C.L2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", type=int, default=3)
    parser.add_argument("--out", default=str(C.PATH))
    parser.add_argument("--refit", action="store_true", help="refit from the pairs stored in --out")
    args = parser.parse_args()
    out = Path(args.out)
    if args.refit:
        stored = json.loads(out.read_text())
        refit = fit_stored(stored)
        print(json.dumps({k: refit[k] for k in ("coefficients", "intercept", "decision", "fit")}, indent=1))
        return
    import torch

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fit-weight-calibration-") as tmp:
        related, unrelated, skipped = build_pairs(args.families, Path(tmp))
    calibration = C.fit(np.array(related), np.array(unrelated))
    from bench.hardware import cpu_name

    calibration["provenance"] = {
        "command": f"python scripts/fit_weight_calibration.py --families {args.families}",
        "date": time.strftime("%Y-%m-%d"), "hardware": f"{cpu_name()}, {os.cpu_count()} vCPU",
        "dtype": "float32 models (and their bf16/fp16/GGUF/bitsandbytes copies)",
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
        "sketch": f"{W.SCHEME} v{W.VERSION}, {W.DIM} buckets", "families": args.families,
        "seconds": round(time.perf_counter() - start), "skipped_pairs": len(skipped),
        "pairs_built": ("tiny Llama families (4 layers, 128 wide, vocab 1200), one random init each: casts, "
                        "re-shard, GGUF F16/Q8_0/Q4_1/Q4_0/Q4_K_M-like, bitsandbytes nf4/int8, dequantized "
                        "re-export, fine-tunes, merged q/v LoRA, added tokens; unrelated: other inits of the same "
                        "config trained on the same text, and models across families")}
    calibration["pairs"] = {"related": related, "unrelated": unrelated}
    out.write_text(json.dumps(calibration, separators=(",", ":")) + "\n")
    summary = {k: calibration[k] for k in ("coefficients", "intercept", "decision", "logit_range", "fit")}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
