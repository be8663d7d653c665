"""The audit on real derived models, before (behaviour only) and after (weights too): flags right / wrong / missed.

Models are made here from the shipped real models (SmolLM2-135M-Instruct Q4_1, gemma-3-270m Q4_K_M): re-saves in
other dtypes and shards, few- and many-step fine-tunes, a merged LoRA, and an unrelated model of the
same shapes (random init, trained on the same text). Each is audited against the embedded paper600-50 store, which
holds HuggingFaceTB/SmolLM2-135M-Instruct and google/gemma-3-270m with the weight sketches of the shipped GGUFs
(scripts/add_smollm2_instruct_reference.sh, scripts/add_gemma_weights_reference.sh). Three audits each:
no base declared with weights (after), the same responses without the weight sketch (before), and an honest
card (after). Behaviour is generated at 32 new tokens (the reference's answers have 256) to bound the run time.

    python bench/audit_derived.py [--no-gemma | --no-smollm2] [--tokens 32] [--out bench/out/audit_derived.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.hardware import describe  # noqa: E402
from hf_dna.audit import audit  # noqa: E402
from hf_dna.pipeline import derive  # noqa: E402
from hf_dna.pipeline.probes import load_probe_set  # noqa: E402
from hf_dna.pipeline.responses import GenerationSettings  # noqa: E402
from hf_dna.pipeline.shipped import shipped_model_path  # noqa: E402
from hf_dna.reference import ReferenceStore  # noqa: E402
from tests.test_weight_sketch import merged_lora  # noqa: E402

PROBES = "paper600:50"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
GEMMA = "google/gemma-3-270m"


def smollm2_models(root: Path) -> dict[str, tuple[Path, str, bool]]:
    """name -> (path, source id, derived?)."""
    import torch

    model, tokenizer = derive.dequantized(shipped_model_path("smollm2"))
    out = {"bf16 re-save": (derive.save(model, tokenizer, root / "bf16"), SMOLLM2, True),
           "fp32 re-save": (derive.save(model, tokenizer, root / "fp32", dtype="float32"), SMOLLM2, True)}
    out["fp16 re-save, re-sharded"] = (derive.save(model, tokenizer, root / "fp16", dtype="float16",
                                                   max_shard_size="100MB"), SMOLLM2, True)
    few = derive.finetune(copy.deepcopy(model), tokenizer, steps=3, lr=1e-3)
    out["fine-tune 3 steps"] = (derive.save(few, tokenizer, root / "ft3"), SMOLLM2, True)
    many = derive.finetune(copy.deepcopy(model), tokenizer, steps=30, lr=1e-4)
    out["fine-tune 30 steps"] = (derive.save(many, tokenizer, root / "ft30"), SMOLLM2, True)
    lora = merged_lora(model, targets=("q_proj", "v_proj"), rank=8, steps=10, lr=1e-3)
    out["merged LoRA q/v"] = (derive.save(lora, tokenizer, root / "lora"), SMOLLM2, True)
    torch.manual_seed(7)
    from transformers import AutoModelForCausalLM

    unrelated = AutoModelForCausalLM.from_config(copy.deepcopy(model.config), dtype=torch.float32)
    derive.finetune(unrelated, tokenizer, steps=3, lr=1e-3)
    out["unrelated, same shapes"] = (derive.save(unrelated, tokenizer, root / "unrelated"), SMOLLM2, False)
    return out


def gemma_models(root: Path) -> dict[str, tuple[Path, str, bool]]:
    model, tokenizer = derive.dequantized(shipped_model_path("gemma"))
    out = {"gemma bf16 re-save": (derive.save(model, tokenizer, root / "gemma-bf16"), GEMMA, True),
           "gemma Q8_0 GGUF re-export": (derive.requantized_gguf(shipped_model_path("gemma"),
                                                                 root / "gemma-q8" / "gemma-3-270m.Q8_0.gguf"),
                                         GEMMA, True)}
    derive.finetune(model, tokenizer, steps=3, lr=1e-4)
    out["gemma fine-tune 3 steps"] = (derive.save(model, tokenizer, root / "gemma-ft3"), GEMMA, True)
    return out


def reference() -> ReferenceStore:
    """The embedded store: SmolLM2-135M-Instruct and google/gemma-3-270m carry weight sketches of the shipped GGUFs."""
    store = ReferenceStore.default(probe_hash=load_probe_set(PROBES).hash)
    for model_id in (SMOLLM2, GEMMA):
        record = next(r for r in store.records if r.model_id == model_id)
        if not record.evidence.get("weights"):
            raise SystemExit(f"the embedded store's {model_id} has no weight sketch")
    return store


def outcome(verdict, source: str, derived: bool) -> str:
    """right / wrong / missed / clean for a no-base-declared audit."""
    flags = [f for f in verdict.flags if f.code == "undeclared-base"]
    if not derived:
        return "wrong" if flags else "right (clean)"
    if not flags:
        return "missed"
    return "right" if flags[0].evidence["suggested_base_models"][0] == source else "wrong"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-gemma", action="store_true")
    parser.add_argument("--no-smollm2", action="store_true", help="only the gemma-3-270m models")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--out", default="bench/out/audit_derived.json")
    args = parser.parse_args()
    print(describe())
    settings = GenerationSettings.paper(max_new_tokens=args.tokens)
    store = reference()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        models = ({} if args.no_smollm2 else smollm2_models(root)) | ({} if args.no_gemma else gemma_models(root))
        print(f"made {len(models)} models in {time.perf_counter() - started:.0f} s")
        for name, (path, source, derived) in models.items():
            t0 = time.perf_counter()
            try:
                after = audit(str(path), reference=store, probes=PROBES, settings=settings)
                stripped = replace(after.record, evidence={k: v for k, v in after.record.evidence.items() if k != "weights"})
                before = audit(str(path), reference=store, record=stripped)
                honest = audit(str(path), reference=store, record=after.record, base_models=[source],
                               relation="finetune")
                top = after.nearest[0]
                rows.append({"model": name, "source": source, "derived": derived,
                             "weights": f"{top.weights} to {top.model_id}" if top.weights else "none",
                             "after": outcome(after, source, derived), "before": outcome(before, source, derived),
                             "honest_card_flags": honest.flag_codes if derived else None,
                             "behaviour_rank_of_source": next((i + 1 for i, n in enumerate(before.nearest)
                                                               if n.model_id == source), ">5"),
                             "seconds": round(time.perf_counter() - t0, 1)})
            except Exception as err:  # one model that cannot be audited is a row, not the end of the run
                rows.append({"model": name, "source": source, "derived": derived, "error": str(err)[:200]})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| model | weights say | no base declared: before (behaviour only) | after (weights too) | "
          "honest card (after) |\n|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | error: {r['error']} | | | |")
            continue
        honest = "-" if r["honest_card_flags"] is None else (", ".join(r["honest_card_flags"]) or "clean")
        print(f"| {r['model']} | {r['weights']} | {r['before']} (source rank {r['behaviour_rank_of_source']}) | "
              f"{r['after']} | {honest} |")
    for key in ("before", "after"):
        done = [r for r in rows if "error" not in r]
        right = sum(r[key].startswith("right") for r in done)
        wrong = sum(r[key] == "wrong" for r in done)
        missed = sum(r[key] == "missed" for r in done)
        print(f"{key}: right {right}, wrong {wrong}, missed {missed} of {len(rows)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
