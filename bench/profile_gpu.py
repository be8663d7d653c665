"""Where a CUDA generation batch spends its time: phases timed with synchronisation, variants side by side, and a
torch.profiler table of one batch (SmolLM2-135M-shaped model from bench_gpu's assets, bfloat16).

Run after bench_gpu.py on the same machine (it builds the model): ``python bench/profile_gpu.py``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEVICE = os.environ.get("BENCH_DEVICE", "cuda")
WORK = Path(os.environ.get("TMPDIR", "/tmp")) / "hf-dna-gpu-bench"


def main() -> None:
    import torch

    from hf_dna.pipeline.backends import decode
    from hf_dna.pipeline.backends.transformers import TransformersGenerator, resolve_source
    from hf_dna.pipeline.generate import plan_batches
    from hf_dna.pipeline.probes import load_probe_set
    from hf_dna.pipeline.responses import GenerationSettings

    def sync() -> None:
        if DEVICE.startswith("cuda"):
            torch.cuda.synchronize()

    from bench.bench_gpu import random_weights

    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else random_weights(Path(".gpu"), WORK)[0]
    probes = load_probe_set("paper600")
    settings = GenerationSettings(max_new_tokens=32, chat_template="off", device=DEVICE, dtype="bfloat16")
    start = time.perf_counter()
    gen = TransformersGenerator(resolve_source(str(model_dir)), settings)
    ids = gen.prompt_ids(probes.prompts)
    t_tok = time.perf_counter() - start
    start = time.perf_counter()
    gen.model  # noqa: B018
    sync()
    print(f"tokenizer+prompts {t_tok:.2f} s, model load {time.perf_counter() - start:.2f} s, "
          f"prompt tokens mean {sum(map(len, ids)) / len(ids):.0f} max {max(map(len, ids))}, torch threads {torch.get_num_threads()}")
    batches = plan_batches([len(x) for x in ids], 32)

    def timed(label: str, n: int = 4) -> None:
        times = []
        for b in batches[1:1 + n]:  # the longest batch left out
            sync()
            t = time.perf_counter()
            gen.generate_batch([ids[i] for i in b], 0)
            sync()
            times.append(time.perf_counter() - t)
        print(f"{label}: batch of 32 {min(times) * 1000:.0f} ms (min of {n}), all {[round(x * 1000) for x in times]}")

    timed("warm-up", 2)
    timed("default")
    saved = decode.PREFILL_TOKENS
    decode.PREFILL_TOKENS = 1 << 30
    timed("prefill in one piece")
    decode.PREFILL_TOKENS = saved
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    timed("1 torch thread")
    torch.set_num_threads(threads)
    own = TransformersGenerator.own_decoding
    TransformersGenerator.own_decoding = property(lambda self: False)
    timed("transformers generate()")
    TransformersGenerator.own_decoding = own
    # phases of one batch
    batch = [ids[i] for i in batches[1]]
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        gen.generate_batch(batch, 0)
        sync()
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    main()
