"""`--backend api` throughput and fault behaviour against the local OpenAI-compatible server (tests/openai_server.py).

The server answers with the deterministic echo answerer after a fixed per-request latency (default 50 ms, standing
for a real API's), through the real `huggingface_hub.InferenceClient`. Measured:

1. responses/s at concurrency 1, 4 and 16 (fresh cache each run), and the ratio vs concurrency 1;
2. a 20% fault rate at concurrency 16 (first requests of 1 probe in 5 fail: 429 with Retry-After 0.5 s, 500, 503,
   a dropped connection, malformed JSON, a hang past the 1 s timeout): every answer obtained, none delivered
   twice, and a rerun asks nothing (all from the cache).

    python bench/bench_api.py [--probes 160] [--latency-ms 50]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from zlib import crc32

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hf_dna.pipeline.backends.api import ApiSettings, api_responses
from hf_dna.pipeline.probes import load_probe_set
from tests.openai_server import OpenAIServer, echo_answerer
from bench.hardware import cpu_name as cpu_model  # noqa: E402

KINDS = ["429", "500", "503", "drop", "malformed", "hang"]




def run(server: OpenAIServer, probes, concurrency: int, cache: str, **api) -> tuple[float, object]:
    settings = ApiSettings(base_url=server.base_url, concurrency=concurrency, **api)
    start = time.perf_counter()
    out = api_responses("smollm2-local", probes, None, settings, cache_dir=cache, progress=False)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=160)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    probes = load_probe_set(f"rand-en-{args.probes}")
    latency = args.latency_ms / 1000
    print(f"hardware: {cpu_model()}, {os.cpu_count()} logical CPUs; python {platform.python_version()}")
    print(f"{len(probes)} probes, echo answerer with {args.latency_ms:g} ms per request\n")
    print("| concurrency | seconds | responses/s | vs concurrency 1 |")
    print("|---|---|---|---|")
    base = None
    with OpenAIServer(echo_answerer(latency)) as server, tempfile.TemporaryDirectory() as tmp:
        run(server, load_probe_set("rand-en-8"), 1, f"{tmp}/warm-up")  # imports, first connection
        for concurrency in (1, 4, 16):
            seconds, _ = run(server, probes, concurrency, f"{tmp}/c{concurrency}")
            rate = len(probes) / seconds
            base = base or rate
            print(f"| {concurrency} | {seconds:.2f} | {rate:.1f} | {rate / base:.2f}x |")

        index = {p: i for i, p in enumerate(probes.prompts)}
        server.reset_counts()
        server.retry_after, server.hang_s = "0.5", 1.5
        server.faults = lambda p, attempt: (KINDS[crc32(p.encode()) % len(KINDS)]
                                            if attempt == 1 and index[p] % 5 == 0 else None)
        seconds, out = run(server, probes, 16, f"{tmp}/faults", timeout=1.0, backoff=0.1)
        expected = [echo_answerer()(p, {"temperature": 0.0})[0] for p in probes.prompts]
        requests = sum(server.requests.values())
        twice = sum(1 for p in probes.prompts if server.answered[p] != 1)
        before = requests
        run(server, probes, 16, f"{tmp}/faults", timeout=1.0, backoff=0.1)
        rerun = sum(server.requests.values()) - before
        faults = ", ".join(f"{k} {v}" for k, v in sorted(server.faulted.items()))
        print(f"\n20% fault rate at concurrency 16: {seconds:.2f} s ({len(probes) / seconds:.1f} responses/s); "
              f"{requests} requests for {len(probes)} probes (faults: {faults}); "
              f"all answers correct: {out.texts == expected}; answers delivered more than once: {twice}; "
              f"requests on rerun (cache): {rerun}")


if __name__ == "__main__":
    main()
