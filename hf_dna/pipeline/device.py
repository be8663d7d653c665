"""Where and how fast generation runs on this machine: torch threads, device and dtype choices."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import InvalidInputError


def cpu_threads() -> int:
    """Intra-op threads for torch on CPU: ``$HF_DNA_NUM_THREADS`` if set, else one per physical core, and only
    one on machines with <= 2 usable CPUs.

    Measured on a 2-vCPU AMD EPYC VM (SmolLM2-135M Q4_1, greedy, batch 1, another process busy on the other
    vCPU): 1 thread 21.6-24.6 tokens/s, 2 threads 2.2-4.3 tokens/s, i.e. 2 threads is 5-10x *slower*
    (bench/RESULTS.md). Two vCPUs are usually one core's two hyper-threads, and torch's spinning OpenMP workers
    lose badly to any other load on the sibling. Under `accelerate launch` the cores are shared by the
    processes of this machine.
    """
    env = os.environ.get("HF_DNA_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit():
            raise InvalidInputError(f"HF_DNA_NUM_THREADS must be a positive integer, not {env!r}")
        return max(1, int(env))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if usable <= 2:
        return 1
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, usable // 2 // local_processes)


@contextlib.contextmanager
def torch_threads(n: int | None = None) -> Iterator[int]:
    """Run a block with `n` (default `cpu_threads()`) torch intra-op threads, restoring the old count after."""
    import torch

    n = n or cpu_threads()
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


def resolve_device(device: str) -> str:
    """``auto`` -> this process's accelerator (under `accelerate launch`, its own GPU) or ``cpu``."""
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInputError(f"device {device} requested but CUDA is not available")
        return device
    if not torch.cuda.is_available():
        return "cpu"
    from accelerate import PartialState

    return str(PartialState().device)


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where it is ~3x faster than float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: on GPU bfloat16 (or float16); on CPU bfloat16 where the CPU has native bf16 (measured 3.2x less
    prefill time than float32 for SmolLM2, bench/RESULTS.md), else float32 (emulated half precision is slow).
    The dtype used is stored in the record's ``generation``; pass ``--dtype float32`` for the most portable bytes."""
    if dtype != "auto":
        return dtype
    if device == "cpu":
        return "bfloat16" if cpu_has_native_bf16() else "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"

