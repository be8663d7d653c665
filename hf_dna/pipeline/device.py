"""Where and how fast generation runs on this machine: torch threads, device and dtype choices."""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

from ..errors import InvalidInputError


def cpu_threads() -> int:
    """Intra-op threads for torch on CPU: ``$HF_DNA_NUM_THREADS`` if set, else one per physical core this process
    may use (shared by the processes of an `accelerate launch`), and on small machines (<= 4 threads) only when a
    quick measurement (`threads_pay_off`, ~0.1 s, once per process) shows they beat one thread.

    Measured (bench/RESULTS.md): on a 2-vCPU Intel Xeon with two real cores, 2 threads prefill SmolLM2 2.1x faster
    than 1; on a 2-vCPU AMD EPYC VM whose vCPUs are one core's two hyper-threads, 2 threads were no faster, and
    5-10x slower while another process kept the sibling busy (torch's OpenMP workers spin). The CPU count alone
    cannot tell these apart.
    """
    chosen = _threads_from_env()
    if chosen is not None:
        return chosen
    n = core_threads()
    if 1 < n <= 4 and not threads_pay_off(n):
        return 1
    return n


def core_threads() -> int:
    """``$HF_DNA_NUM_THREADS`` if set, else this process's share of the physical cores (the processes of an
    `accelerate launch` share them): the threads of numpy work that releases the GIL (the projection's random
    blocks, `hf_dna.pipeline.dna`), and the start of `cpu_threads`' choice for torch."""
    chosen = _threads_from_env()
    if chosen is not None:
        return chosen
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, physical_cores() // local_processes)


def _threads_from_env() -> int | None:
    env = os.environ.get("HF_DNA_NUM_THREADS", "").strip()
    if not env:
        return None
    if not env.isdigit():
        raise InvalidInputError(f"HF_DNA_NUM_THREADS must be a positive integer, not {env!r}")
    return max(1, int(env))


def usable_cpus() -> set[int]:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def physical_cores() -> int:
    """Physical cores among the CPUs this process may use (hyper-thread siblings counted once), from sysfs;
    half the usable CPUs (at least one) where the topology cannot be read."""
    cpus = usable_cpus()
    cores = set()
    for cpu in cpus:
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topology}/physical_package_id") as package, open(f"{topology}/core_id") as core:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            return max(1, len(cpus) // 2)
    return max(1, len(cores))


@functools.cache
def threads_pay_off(n: int, repeats: int = 5) -> bool:
    """Whether `n` torch threads run a prefill-sized float32 matmul at least 1.3x faster than one thread (best of
    `repeats`, interleaved). Cached per process."""
    import time

    import torch

    a, b = torch.randn(512, 576), torch.randn(576, 1536)
    old = torch.get_num_threads()
    best = {1: float("inf"), n: float("inf")}
    try:
        for _ in range(repeats):
            for threads in (1, n):
                torch.set_num_threads(threads)
                start = time.perf_counter()
                torch.mm(a, b)
                best[threads] = min(best[threads], time.perf_counter() - start)
    finally:
        torch.set_num_threads(old)
    return best[1] >= 1.3 * best[n]


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


#: prompts generated together on CPU: 5.6x llm-dna vs 4.0x at 8 (bench/RESULTS.md); more rows use more memory
#: than they save time
CPU_BATCH_SIZE = 32
#: the most prompts generated together on a GPU, and the share of its memory their KV cache may take
GPU_MAX_BATCH_SIZE, GPU_CACHE_SHARE = 512, 0.25
#: the share of a GPU's free memory that the weights (and, with the batch size, their KV cache) may fill
GPU_FREE_SHARE = 0.9


def auto_batch_size(device: str, *, gpu_memory: int = 0, weight_bytes: int = 0, cache_bytes_per_row: int = 0,
                    free_memory: int | None = None) -> int:
    """The batch size when none is given. CPU: `CPU_BATCH_SIZE`. GPU: as many rows as fit `GPU_CACHE_SHARE` of its
    memory after the weights, and `GPU_FREE_SHARE` of its `free_memory` after the weights where other processes
    use the card, each row costing `cache_bytes_per_row` (its KV cache for a long prompt plus the answer), in steps
    of 32, from 32 up to `GPU_MAX_BATCH_SIZE`. A GPU step is bound by kernel launches, not by rows (profiled on an H200, SmolLM2-135M
    shape: 1.0 s of CPU time against 0.11 s of GPU time for a batch of 32), so more rows cost little: 600 probes
    took 22.7 s at 32 rows and 5.7 s at this rule's 512 (bench/RESULTS.md)."""
    if device == "cpu" or cache_bytes_per_row <= 0:
        return CPU_BATCH_SIZE
    room = GPU_CACHE_SHARE * gpu_memory - weight_bytes
    if free_memory is not None:
        room = min(room, GPU_FREE_SHARE * free_memory - weight_bytes)
    rows = int(room // cache_bytes_per_row) // 32 * 32
    return max(32, min(GPU_MAX_BATCH_SIZE, rows))


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


def encoder_device() -> str | None:
    """Where the sentence encoder runs: this process's GPU when it has one, else the CPU (None). Measured on an
    H200 (bench/RESULTS.md): 600 answers in 0.18 s on the GPU against 3.0 s on its 16 CPU cores, with float32
    embeddings equal to the CPU's (smallest cosine 1.000000). ``CUDA_VISIBLE_DEVICES=`` keeps it on the CPU."""
    device = resolve_device("auto")
    return None if device == "cpu" else device


#: oneDNN ISA caps (``ONEDNN_MAX_CPU_ISA``) under which it still runs bfloat16 matmuls natively
_ONEDNN_BF16_ISAS = {"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                     "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16",
                     "AVX10_2_512", "AVX10_2_512_AMX_2"}


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX), where it is ~3x faster than float32,
    and torch may use it: an ISA cap (``ATEN_CPU_CAPABILITY`` below avx512, ``ONEDNN_MAX_CPU_ISA`` below
    AVX512_CORE_BF16) makes bfloat16 emulated, ~6x slower than float32 (bench/RESULTS.md)."""
    if os.environ.get("ATEN_CPU_CAPABILITY", "avx512").lower() not in ("avx512", ""):
        return False
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() not in _ONEDNN_BF16_ISAS | {""}:
        return False
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

