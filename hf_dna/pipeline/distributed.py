"""Extraction over several processes (``accelerate launch -m hf_dna extract ...``).

With at least as many models as processes, each process extracts its share of the models; otherwise the
generation batches of each model are split between the processes (the batch plan is the single-process one, so
the responses, and the records, are identical to a single-process run). Records are gathered on the main
process, in the order the models were given; the other processes return an empty list.
A plain ``python -m hf_dna`` run is one process and goes straight through.
"""
from __future__ import annotations

from typing import Any

from .extract import as_probe_set, extract, record_from_responses
from .generate import ResponseJob
from .record import DNARecord


def process_state() -> Any:
    """accelerate's `PartialState`; on machines without CUDA it is asked for CPU processes (gloo), else a
    ``torch.distributed`` launch on CPU would leave every process thinking it is alone."""
    import os

    import torch
    from accelerate import PartialState

    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"}
    return PartialState(cpu=cpu)


def extract_many(models: list[str], probes: Any = "paper600", *, progress: bool = True, **options: Any) -> list[DNARecord]:
    """`hf_dna.pipeline.extract.extract` for each model, spread over the processes of an `accelerate launch`.

    `options` are `extract`'s keyword arguments (responses, settings, dim, seed, encoder, revision, token,
    cache_dir, gguf_file, use_cache).
    """
    probe_set = as_probe_set(probes)
    state = process_state()
    if state.num_processes == 1:
        return [extract(m, probe_set, progress=progress, **options) for m in models]
    from accelerate.utils import gather_object

    show = progress and state.is_local_main_process
    try:
        if options.get("responses") is not None or len(models) >= state.num_processes:
            with state.split_between_processes(list(enumerate(models))) as mine:
                local = [(i, extract(m, probe_set, progress=show, **options).to_dict()) for i, m in mine]
            gathered = sorted(gather_object(local), key=lambda x: x[0])
            return [DNARecord.from_dict(rec) for _, rec in gathered] if state.is_main_process else []
        records = [_extract_split_probes(m, probe_set, state, show, options) for m in models]
        return records if state.is_main_process else []
    finally:
        # an open gloo/nccl group at interpreter exit can abort the process ("terminate called without an
        # active exception") after the work is done: close it once every process is through
        state.wait_for_everyone()
        state.destroy_process_group()


def _extract_split_probes(model: str, probe_set: Any, state: Any, progress: bool, options: dict[str, Any]) -> DNARecord | None:
    """One model: each process generates its share of the batches; the main process embeds and projects."""
    from accelerate.utils import gather_object

    job_options = {k: options.get(k) for k in ("revision", "token", "cache_dir", "gguf_file")}
    job = ResponseJob(model, probe_set, options.get("settings"), use_cache=options.get("use_cache", True), **job_options)
    with state.split_between_processes(list(range(len(job.batches)))) as mine:
        texts = job.run(list(mine), progress)
    merged: dict[int, str] = {}
    for part in gather_object([texts]):
        merged.update(part)
    if not state.is_main_process:
        return None
    dna_options = {k: options[k] for k in ("dim", "seed", "encoder", "weights") if k in options}
    answers = job.responses(merged)
    answers.model_id = options.get("name") or answers.model_id
    return record_from_responses(answers, probe_set, **dna_options)
