"""Benchmark: `hf_dna.scan` of 4 tiny models (built here) serially vs on a local 2-worker Ray (not a test).

The same 4 models (Llama parent, child = parent + 10 training steps, unrelated Llama, GPT-2; ~0.1-0.3M
parameters, the tests' `tests/fixtures_models.py`) are extracted (no audit, no response cache) three ways:

1. serially in this process (`scan` without Ray; the encoder loaded beforehand, so only the work is timed);
2. on a local Ray started here with 2 CPUs: cold (``ray.init`` and the workers' first imports and encoder load
   included) and warm (the same workers again, ``force``);
3. on that Ray with one worker killed mid-run: the task of `child` does its extraction, then kills its own
   worker before returning (``os._exit``), the first time only; Ray runs it again on a fresh worker.

Every Ray run's records must equal the serial ones bit for bit (``SOURCE_DATE_EPOCH`` fixes ``created_at``).

    python bench/bench_scan.py [--probes 32] [--max-new-tokens 32]

Prints the hardware and a Markdown table (paste it into bench/RESULTS.md).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
MODELS = ("parent", "child", "unrelated", "gpt2")


def hardware() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ""
    if hasattr(os, "getloadavg"):
        one, five, fifteen = os.getloadavg()
        load = f", load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min)"
    return f"{cpu}, {usable} usable CPUs, Python {platform.python_version()}{load}"


def build_models(root: Path) -> dict[str, Path]:
    """The tests' tiny models, saved as safetensors dirs under `root`."""
    from tests.fixtures_models import build_tiny_models

    return build_tiny_models(root)


def records(directory: Path) -> dict[str, dict]:
    from hf_dna.reference.store import ReferenceStore

    return {r.model_id: r.to_dict() for r in ReferenceStore.load(directory).records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=32, help="rand-en-N probes per model")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    import ray

    from hf_dna.pipeline.embed import load_encoder
    from hf_dna.pipeline.responses import GenerationSettings
    from hf_dna.scan import scan

    work = Path(tempfile.mkdtemp(prefix="hf-dna-bench-scan-"))
    paths = [str(p) for p in build_models(work / "models").values()]
    settings = GenerationSettings.paper(max_new_tokens=args.max_new_tokens, batch_size=8, dtype="float32")
    common = {"probes": f"rand-en-{args.probes}", "settings": settings, "audit": False, "use_cache": False,
              "progress": False}
    load_encoder()  # the serial run times the work, not the encoder's first load

    started = time.perf_counter()
    serial = scan(paths, out_dir=work / "serial", **common)
    t_serial = time.perf_counter() - started
    assert not serial.failed, serial.failed
    expected = records(work / "serial")

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 << 20, logging_level="ERROR",
             log_to_driver=False)
    cold = scan(paths, out_dir=work / "ray-cold", ray_address="auto", **common)
    t_cold = time.perf_counter() - started
    started = time.perf_counter()
    warm = scan(paths, out_dir=work / "ray-warm", ray_address="auto", **common)
    t_warm = time.perf_counter() - started

    marker = str(work / "killed")

    def killed_once(job):  # extraction done, then the worker dies before returning it (first time only)
        import os

        from hf_dna.scan.ray_tasks import extract_task

        outcome = extract_task(job)
        if job.model.endswith("child") and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return outcome

    started = time.perf_counter()
    killed = scan(paths, out_dir=work / "ray-killed", ray_address="auto", task=killed_once, **common)
    t_killed = time.perf_counter() - started
    ray.shutdown()

    rows = []
    for name, result, seconds, out in (("serial (this process)", serial, t_serial, "serial"),
                                       ("Ray, 2 workers, cold (ray.init + worker start-up)", cold, t_cold, "ray-cold"),
                                       ("Ray, 2 workers, warm", warm, t_warm, "ray-warm"),
                                       ("Ray, 2 workers, one killed mid-run", killed, t_killed, "ray-killed")):
        got = records(work / out)
        complete = not result.failed and sorted(got) == sorted(MODELS)
        rows.append((name, seconds, t_serial / seconds, complete, got == expected,
                     len(result.written) == len(set(result.written)) == len(MODELS)))
    assert os.path.exists(marker), "the worker was not killed"

    print(f"hardware: {hardware()}")
    print(f"models: 4 tiny (built here), rand-en-{args.probes}, {args.max_new_tokens} new tokens, batch 8, float32, "
          "paper sampling, no response cache, no audit")
    print()
    print("| run | wall s | speed-up vs serial | records complete | = serial bit for bit | each written once |")
    print("|---|---|---|---|---|---|")
    for name, seconds, ratio, complete, equal, once in rows:
        print(f"| {name} | {seconds:.1f} | {ratio:.2f}x | {'yes' if complete else 'NO'} | {'yes' if equal else 'NO'} "
              f"| {'yes' if once else 'NO'} |")


if __name__ == "__main__":
    main()
