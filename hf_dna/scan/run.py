"""`scan`: many models extracted (in this process or as Ray tasks) and audited, written as they finish.

Order of work: connect to Ray (a dead address fails here, before anything is read or written), load the
reference, list and pin the models, drop those whose record at that revision the output already holds, run the
rest, and for each finished model write its record, audit it against the reference on the driver (the store
is loaded once, and a local ``--reference DIR`` need not exist on the workers) and write its verdict.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..audit.declared import declared_lineage, read_model_files
from ..audit.judge import judge
from ..audit.run import DEFAULT_PROBES
from ..errors import HfDnaError, IncompatibleRecordsError, InvalidInputError, ReferenceStoreError
from ..pipeline.dna import DEFAULT_DIM, DEFAULT_SEED
from ..pipeline.embed import DEFAULT_ENCODER
from ..pipeline.extract import as_probe_set
from ..pipeline.probes import ProbeSet
from ..pipeline.record import DNARecord
from ..pipeline.responses import GenerationSettings
from ..reference.store import ReferenceStore
from . import catalogue
from .output import HubOutput, LocalOutput
from .ray_tasks import ExtractJob, RayRunner, SerialRunner, extract_task


@dataclass
class ScanResult:
    """What a scan did: per model id, whether it was extracted, skipped, audited or failed, and every write."""

    models: list[str] = field(default_factory=list)  # as given, in order
    extracted: list[str] = field(default_factory=list)  # record model ids, in the order they finished
    skipped: list[str] = field(default_factory=list)  # record already in the output at that revision
    audited: dict[str, str] = field(default_factory=dict)  # model id -> "clean" | "flagged"
    flags: dict[str, list[str]] = field(default_factory=dict)  # model id -> flag codes
    failed: dict[str, str] = field(default_factory=dict)  # model (as given) -> one-line reason
    written: list[str] = field(default_factory=list)  # output paths, one entry per write
    tasks: int = 0  # extraction tasks run (Ray or in-process)

    def summary(self) -> str:
        flagged = sum(v == "flagged" for v in self.audited.values())
        return (f"{len(self.models)} model(s): {len(self.extracted)} extracted, {len(self.skipped)} already there, "
                f"{len(self.audited)} audited ({flagged} flagged), {len(self.failed)} failed")


def _load_reference(reference: Any, probes: str | ProbeSet | None) -> ReferenceStore:
    if isinstance(reference, ReferenceStore):
        store = reference
    elif reference is not None and str(reference) != "default":
        store = ReferenceStore.load(reference)
    else:
        store = ReferenceStore.default(probe_hash=as_probe_set(probes or DEFAULT_PROBES).hash)
    if not store.calibration:
        raise ReferenceStoreError(f"the reference {store.source or '(in memory)'} has no calibration: rebuild it "
                                  "with `hf-dna reference build`")
    return store


def _expected_config(probe_set: ProbeSet, dim: int, seed: int, encoder: str) -> dict[str, Any]:
    return {"probe_hash": probe_set.hash, "dim": dim, "projection_seed": seed, "encoder": encoder}


def scan(models: list[str] | tuple[str, ...] = (), *, org: str | None = None,
         models_file: str | os.PathLike | None = None, ray_address: str | None = None, reference: Any = None,
         out_dir: str | os.PathLike | None = None, repo: str | None = None, probes: str | ProbeSet | None = None,
         settings: GenerationSettings | None = None, audit: bool = True, token: str | None = None, k: int = 5,
         relative_posterior: float | None = None, revision: str | None = None, gguf_file: str | None = None,
         cache_dir: str | None = None, use_cache: bool = True, force: bool = False, max_retries: int = 3,
         gpu_memory: int | None = None, progress: bool = True, flush_interval_s: float = 60.0,
         task: Callable[[ExtractJob], dict[str, Any]] | None = None) -> ScanResult:
    """Extract and audit the models named by exactly one of `models`, `org` or `models_file`.

    `ray_address`: run the extractions as Ray tasks there (`hf_dna.pipeline.ray_encode.connect`: HOST:PORT,
    ray://HOST:PORT, auto, local; a process already connected is reused); None: one after the other here.
    Output: `out_dir` (local store layout + ``verdicts/``) or `repo` (a Hub dataset). Models whose record at
    their (pinned) revision is already there are skipped unless `force`; a missing or stale verdict of such a
    model is made again from the stored record. `audit=False`: records only, no reference needed.
    `settings` default to the reference's (the paper's sampling, `GenerationSettings.paper`). `task` replaces
    the per-model task (`extract_task`; tests use it to kill a worker).
    """
    if (out_dir is None) == (repo is None):
        raise InvalidInputError("give an output: -o OUT_DIR or --repo ORG/DATASET (one of them)")
    names = catalogue.model_list(models, org, models_file, token)
    ray = None
    if ray_address is not None:
        from ..pipeline.ray_encode import connect

        ray = connect(ray_address)
    store = _load_reference(reference, probes) if audit else None
    store_probes = store.config.get("probe_set") if store is not None else None
    probe_set = as_probe_set(probes or store_probes or DEFAULT_PROBES)
    if store is not None and store.config.get("probe_hash") != probe_set.hash:
        raise IncompatibleRecordsError(f"probes {probe_set.name} are not the reference's "
                                       f"({store.config.get('probe_set')}): drop --probes or pick another reference")
    dim, seed, encoder = DEFAULT_DIM, DEFAULT_SEED, DEFAULT_ENCODER
    if store is not None:  # records comparable with the reference's
        dim, seed = int(store.config.get("dim", dim)), int(store.config.get("projection_seed", seed))
        encoder = str(store.config.get("encoder") or encoder)
    output = LocalOutput(out_dir) if out_dir is not None else HubOutput(repo, token, flush_interval_s)
    output.check(_expected_config(probe_set, dim, seed, encoder))
    settings = settings or GenerationSettings.paper()
    result = ScanResult(models=names)
    items, result.failed = catalogue.plan(names, revision, token, gguf_file)
    todo, rejudge = [], []
    for item in items:
        if force or not output.has_record(item.model_id, item.revision):
            todo.append(item)
        elif audit and output.verdict_revision(item.model_id) != item.revision:
            rejudge.append(item)
        else:
            result.skipped.append(item.model_id)
    jobs = [(item.model, ExtractJob(item.model, None if item.local else item.revision, probe_set, settings, token,
                                    gguf_file, cache_dir, use_cache, dim, seed, encoder), item.weight_bytes)
            for item in todo]
    runner = RayRunner(ray, max_retries, gpu_memory) if ray is not None else SerialRunner()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo) + len(rejudge), desc="scan", unit="model", disable=not progress)

    def audit_one(model: str, record: DNARecord, files: Any, notes: list[str]) -> None:
        declared = declared_lineage(files, None, None, notes)
        verdict = judge(model, record, declared, store, k=k, notes=notes, relative_posterior=relative_posterior)
        result.written.append(output.write_verdict(record.model_id, verdict.to_dict()))
        result.audited[record.model_id] = verdict.verdict
        result.flags[record.model_id] = verdict.flag_codes

    def fail(model: str, why: str) -> None:
        result.failed[model] = why
        bar.write(f"{model}: failed: {why}")

    def refused(refusals: dict[str, str]) -> None:  # records the Hub dataset refused when they were pushed
        for model_id, why in refusals.items():
            if model_id in result.extracted:
                result.extracted.remove(model_id)
            result.audited.pop(model_id, None)
            result.flags.pop(model_id, None)
            fail(model_id, why)

    try:
        for item in rejudge:  # the record is there, its verdict is not: audit the stored record
            try:
                record = output.read_record(item.model_id, item.revision)
                notes: list[str] = []
                audit_one(item.model, record, read_model_files(item.model, token, notes, item.revision), notes)
                result.skipped.append(item.model_id)
            except HfDnaError as err:
                fail(item.model, str(err))
            bar.update(1)
        for model, outcome in runner.run(jobs, task or extract_task):
            if "error" in outcome:
                fail(model, outcome["error"])
            else:
                record = outcome["record"]
                try:
                    result.written.append(output.write_record(record))
                    result.extracted.append(record.model_id)
                    if store is not None:
                        audit_one(model, record, outcome["files"], list(outcome["notes"]))
                except HfDnaError as err:
                    fail(model, str(err))
            refused(output.finished_one())
            bar.update(1)
    finally:
        result.tasks = runner.submitted
        try:
            refused(output.close())
        finally:
            bar.close()
    return result
