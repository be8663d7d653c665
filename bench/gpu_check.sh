#!/usr/bin/env bash
# The GPU checks of one device lease (the `device` tool's H200), in one go: prepare the assets first on a machine
# with the shipped packages (`python bench/bench_gpu.py --prepare .gpu`; wheels the GPU image lacks, e.g. gguf,
# in .gpu/wheels), then run this with `.gpu` carried. STEPS picks the parts (default: all, in this order).
# Writes gpu.md (bench_gpu's tables), profile.log, log and the CLI records under $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=$PWD HF_DNA_CACHE=/tmp/hf-dna-cache
OUT=${OUT:-bench/out/gpu}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
STEPS=${STEPS:-bench profile cli tests}
W=${TMPDIR:-/tmp}/hf-dna-gpu-bench
quiet() { grep -v -E "Loading weights|Writing model"; }
if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl && export PYTHONPATH=$PWD:/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT/log"
for step in $STEPS; do
  echo "== $step" | tee -a "$OUT/log"
  case $step in
  bench) $PY bench/bench_gpu.py --assets .gpu --out "$OUT" 2>&1 | quiet | tee -a "$OUT/log" ;;
  profile) $PY bench/profile_gpu.py 2>&1 | quiet | tee "$OUT/profile.log" ;;
  cli)
    $PY -c "from bench.bench_gpu import random_weights, tiny_gpt2; from pathlib import Path; random_weights(Path('.gpu'), Path('$W')); tiny_gpt2(Path('$W'))" 2>&1 | quiet
    args=(extract "$W/gpt2-parent" --probes paper600:100 --max-new-tokens 32 --encoder "$W/minilm-shaped" --no-cache)
    $PY -m hf_dna "${args[@]}" -o "$OUT/single.parquet" 2>&1 | quiet | tail -2 | tee -a "$OUT/log"
    $PY -m accelerate.commands.launch --num_processes 1 -m hf_dna "${args[@]}" -o "$OUT/launched.parquet" 2>&1 | quiet | tail -2 | tee -a "$OUT/log"
    $PY - "$OUT" <<'PY' 2>&1 | tee -a "$OUT/log"
import sys, numpy as np
from hf_dna.pipeline.record import read_records
a, b = (read_records(f"{sys.argv[1]}/{n}.parquet")[0] for n in ("single", "launched"))
print("single:", a.generation["device"], a.generation["dtype"], "| launched:", b.generation["device"], b.generation["dtype"])
print("cosine single vs accelerate-launched DNA:", float(np.dot(a.vector, b.vector) / np.linalg.norm(a.vector) / np.linalg.norm(b.vector)))
PY
    ;;
  tests) $PY -m pytest -q -p no:warnings -p no:cacheprovider tests/test_generate.py tests/test_decode.py 2>&1 | tail -6 | tee -a "$OUT/log" ;;
  esac
done
