"""The work of a scan: one task per model (read its files once, extract its DNA), run in this process or as
Ray tasks, yielding each result as it finishes.

On Ray every task asks for one CPU and, when the cluster has GPUs, the GPUs its weights need (`gpus_for`); a
task whose worker dies (killed, out of memory, node lost) is retried by Ray (`max_retries`). A task only
computes: it returns the record, and the driver writes it (`hf_dna.scan.output`), so a retry never writes twice.
Ray is imported only when a Ray runner is made.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..audit.declared import read_model_files
from ..errors import HfDnaError
from ..pipeline.dna import DEFAULT_DIM, DEFAULT_SEED
from ..pipeline.embed import DEFAULT_ENCODER
from ..pipeline.extract import extract
from ..pipeline.probes import ProbeSet
from ..pipeline.ray_encode import first_line, pin_threads
from ..pipeline.responses import GenerationSettings

GIB = 1 << 30
#: GPU memory a model needs at generation, per byte of weights (KV cache and activations of a batch)
GPU_MEMORY_PER_WEIGHT_BYTE = 1.3
#: and on top of that (CUDA context, the sentence encoder)
GPU_MEMORY_FIXED = 1 * GIB
#: assumed per-GPU memory when the cluster's cannot be measured
DEFAULT_GPU_MEMORY = 16 * GIB


@dataclass(frozen=True)
class ExtractJob:
    """What a task needs to extract one model; everything in it travels to the worker."""

    model: str
    revision: str | None  # the pinned Hub commit; None for local models
    probes: ProbeSet  # the prompts themselves: workers need no probe file
    settings: GenerationSettings
    token: str | None = None
    gguf_file: str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    dim: int = DEFAULT_DIM
    seed: int = DEFAULT_SEED
    encoder: str = DEFAULT_ENCODER


def extract_task(job: ExtractJob) -> dict[str, Any]:
    """One model: its files' metadata (read once, as the audit does) and its DNA record.

    Returns ``{"record", "files", "notes"}``, or ``{"error": one line}`` for a model that cannot be extracted
    (not found, gated, not a causal LM, ...): such errors are results, not worker failures, so Ray does not retry
    them."""
    notes: list[str] = []
    try:
        files = read_model_files(job.model, job.token, notes, job.revision)
        record = extract(job.model, job.probes, settings=job.settings, token=job.token, revision=job.revision,
                         gguf_file=job.gguf_file, cache_dir=job.cache_dir, use_cache=job.use_cache, progress=False,
                         metadata=files.metadata, dim=job.dim, seed=job.seed, encoder=job.encoder)
    except HfDnaError as err:
        return {"error": str(err)}
    return {"record": record, "files": files, "notes": notes}


def gpus_for(weight_bytes: int | None, gpu_memory: int, max_gpus: float) -> float:
    """GPUs to request for a model with `weight_bytes` of weights on GPUs of `gpu_memory` bytes.

    None on a cluster without GPUs; a whole GPU when the size is unknown; a share in quarters of a GPU
    (several small models per GPU) up to one; whole GPUs beyond, at most `max_gpus` (the most any node has:
    the model is then spread over them with ``device_map="auto"``)."""
    if max_gpus <= 0:
        return 0.0
    if not weight_bytes:
        return 1.0
    share = (weight_bytes * GPU_MEMORY_PER_WEIGHT_BYTE + GPU_MEMORY_FIXED) / max(gpu_memory, 1)
    if share <= 1:
        return max(0.25, math.ceil(share * 4) / 4)
    return float(min(math.floor(max_gpus), math.ceil(share)))


def _on_worker(task: Callable[[ExtractJob], dict[str, Any]], job: ExtractJob) -> dict[str, Any]:
    """Ray task body: torch threads follow the CPUs Ray assigned, then the task."""
    import ray

    pin_threads(ray)
    return task(job)


def _gpu_memory_task() -> int:
    import torch

    return int(torch.cuda.get_device_properties(0).total_memory) if torch.cuda.is_available() else 0


class SerialRunner:
    """Every task in this process, one after the other (no ``--ray``)."""

    def __init__(self) -> None:
        self.submitted = 0

    def run(self, jobs: list[tuple[str, ExtractJob, int | None]],
            task: Callable[[ExtractJob], dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, job, _ in jobs:
            self.submitted += 1
            yield key, task(job)


class RayRunner:
    """Tasks on a Ray cluster (this process already connected), yielded as they finish (`ray.wait`)."""

    def __init__(self, ray: Any, max_retries: int = 3, gpu_memory: int | None = None):
        self.ray, self.max_retries = ray, max_retries
        self.submitted = 0
        self.max_gpus = max((node.get("Resources", {}).get("GPU", 0.0) for node in ray.nodes() if node.get("Alive")),
                            default=0.0)
        self.gpu_memory = gpu_memory or (self._measure_gpu_memory() if self.max_gpus else 0)

    def _measure_gpu_memory(self) -> int:
        """One GPU's memory, asked of a GPU worker (the driver may have none); `DEFAULT_GPU_MEMORY` when it
        does not answer within two minutes."""
        ref = self.ray.remote(_gpu_memory_task).options(num_gpus=1, num_cpus=0).remote()
        try:
            return self.ray.get(ref, timeout=120) or DEFAULT_GPU_MEMORY
        except Exception:  # noqa: BLE001 - GPUs busy or the probe failed: assume a common size
            self.ray.cancel(ref)
            return DEFAULT_GPU_MEMORY

    def resources(self, weight_bytes: int | None) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": 1, "max_retries": self.max_retries, "retry_exceptions": False}
        gpus = gpus_for(weight_bytes, self.gpu_memory, self.max_gpus)
        if gpus:
            options["num_gpus"] = gpus
        return options

    def run(self, jobs: list[tuple[str, ExtractJob, int | None]],
            task: Callable[[ExtractJob], dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
        ray = self.ray
        remote = ray.remote(_on_worker)
        task_ref = ray.put(task)
        pending: dict[Any, str] = {}
        for key, job, weight_bytes in jobs:
            pending[remote.options(**self.resources(weight_bytes)).remote(task_ref, job)] = key
            self.submitted += 1
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    key = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - a task error, or a worker lost after its retries
                        outcome = {"error": f"task failed on Ray: {first_line(err)}"}
                    yield key, outcome
        finally:  # interrupted (or the driver failed writing): nothing left running for nobody
            for ref in pending:
                ray.cancel(ref)
