"""What the benchmarks run on, named in every figure: CPU model, the flags that matter, threads, load."""
from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> list[str]:
    try:
        line = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        return []
    have = set(line.split())
    return [flag for flag in FLAGS if flag in have]


def describe() -> str:
    """One line: CPU, its flags that matter, usable CPUs, load average, Python."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu_name()}, {usable} usable CPUs, flags: {', '.join(cpu_flags()) or 'no AVX2/AVX-512'}, "
            f"load average {load}, Python {platform.python_version()}")
