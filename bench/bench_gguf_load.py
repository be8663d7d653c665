"""GGUF start-up: `hf-dna extract` of the shipped SmolLM2-135M-Instruct GGUF with its config and tokenizer parsed
from the file (a fresh cache: the peer) vs read from the copy saved on the first load (`gguf_sidecar`).

Runs alternate (fresh, saved, fresh, saved, ...), each its own process, so both sides see the same machine state;
the DNAs of all runs must be byte-equal. Prints the hardware, the per-run times, the medians and their ratio.

Usage: python bench/bench_gguf_load.py [--runs 3] [--probes paper600:10] [--max-new-tokens 16]
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


def extract(gguf: str, cache: Path, out: Path, probes: str, max_new: int) -> float:
    env = {**os.environ, "HF_DNA_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "hf_dna", "extract", gguf, "--probes", probes, "--max-new-tokens", str(max_new),
           "--quiet", "--no-cache", "-o", str(out)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"extract failed: {done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--probes", default="paper600:10")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()
    from hf_dna.errors import HfDnaError
    from hf_dna.pipeline.shipped import shipped_model_path

    try:
        gguf = str(shipped_model_path("smollm2"))
    except HfDnaError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"# {describe()}\n# {Path(gguf).name}, {args.probes}, {args.max_new_tokens} new tokens, dtype auto")
    times: dict[str, list[float]] = {"parsed from the GGUF (fresh cache)": [], "saved copy": []}
    dnas = set()
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        extract(gguf, warm, Path(tmp) / "first.json", args.probes, args.max_new_tokens)  # makes the saved copy
        for i in range(args.runs):
            for label, cache in (("parsed from the GGUF (fresh cache)", Path(tmp) / f"cold-{i}"), ("saved copy", warm)):
                out = Path(tmp) / f"{i}-{len(dnas)}-{label[:5]}.json"
                times[label].append(extract(gguf, cache, out, args.probes, args.max_new_tokens))
                dnas.add(json.dumps(json.loads(out.read_text())["dna"]))
    for label, values in times.items():
        print(f"| {label} | {' / '.join(f'{v:.2f}' for v in values)} s | median {statistics.median(values):.2f} s |")
    cold, saved = (statistics.median(v) for v in times.values())
    print(f"# start-up saved: {cold - saved:.2f} s a run; speed-up {cold / saved:.2f}x; "
          f"DNAs {'byte-equal' if len(dnas) == 1 else 'DIFFER'}")
    if len(dnas) != 1:
        sys.exit(1)


if __name__ == "__main__":
    main()
