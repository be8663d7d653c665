"""`hf-dna audit --adaptive` against a plain audit, end to end on a real model, in the same run.

The model is the demo's card-less fine-tune of the shipped SmolLM2-135M-Instruct GGUF (`hf-dna demo` makes it;
made here on first use). Each run is its own process with a fresh response cache, plain and adaptive alternating;
both audit against the embedded paper600-100 reference with the paper's sampling settings. Prints the hardware,
wall times, the probes the verdict rests on, its flags and the adaptive note.

Usage: python bench/bench_adaptive.py [--runs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import describe  # noqa: E402


def audit(model: Path, cache: Path, adaptive: bool) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "hf_dna", "audit", str(model), "--format", "json", "--quiet",
           *(["--adaptive"] if adaptive else [])]
    start = time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, "HF_DNA_CACHE": str(cache)}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"audit failed: {done.stderr[-2000:]}")
    return time.perf_counter() - start, json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    from hf_dna.errors import HfDnaError
    from hf_dna.hub import hf_dna_home
    from hf_dna.pipeline.derive import demo_model
    from hf_dna.pipeline.shipped import shipped_model_path

    try:
        model = demo_model(shipped_model_path("smollm2"), hf_dna_home() / "demo")
    except HfDnaError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"# {describe()}\n# {model.name}, paper600-100 reference, paper sampling settings, dtype auto")
    times: dict[str, list[float]] = {"plain (100 probes)": [], "--adaptive": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for label in times:
                wall, verdict = audit(model, Path(tmp) / f"{i}-{len(times[label])}-{label[:5]}", label == "--adaptive")
                times[label].append(wall)
                note = next((n for n in verdict["notes"] if n.startswith("adaptive")), "")
                print(f"| {label} | {wall:.1f} s | {verdict['record']['n_probes']} probes | "
                      f"{','.join(f['code'] for f in verdict['flags']) or 'clean'} | "
                      f"family confidence {verdict['family_confidence']} | {note} |", flush=True)
    plain, adaptive = (statistics.median(v) for v in times.values())
    print(f"# median plain {plain:.1f} s, adaptive {adaptive:.1f} s: {plain / adaptive:.2f}x")


if __name__ == "__main__":
    main()
