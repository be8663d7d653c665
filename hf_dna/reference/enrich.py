"""File evidence for reference records: static facts (config, tokenizer) and weight sketches read from the Hub.

A reference built from responses carries behaviour only. `enrich` reads each model's config and tokenizer and a
weight sketch by byte-range reads (`hf_dna.evidence.weights.sketch_hub`: headers and a few rows, never the whole
weights) and writes each enriched record as soon as it is done, so an interrupted run resumes where it stopped
(records that already carry the evidence are skipped). A model that cannot be read (gated, gone, no
safetensors/GGUF, a file that cannot be parsed) keeps its record unchanged and gets a one-line note.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import hub
from .._io import atomic_path
from ..errors import HfDnaError, HubOfflineError, InvalidInputError
from ..evidence.weights import sketch_files, sketch_hub
from ..pipeline.record import DNARecord
from .layout import record_bytes, record_path
from .store import ReferenceStore
from .sync import PushResult, pull, push


@dataclass
class EnrichResult:
    """What `enrich` did: the store (dir), which models got evidence, which were skipped or failed and why."""

    store: ReferenceStore
    directory: Path
    enriched: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    pushed: PushResult | None = None


def has_file_evidence(record: DNARecord) -> bool:
    """The record carries both static evidence and a weight sketch (a sketch that says why it is unavailable
    counts: that model was tried)."""
    evidence = record.evidence or {}
    return bool(evidence.get("static")) and bool(evidence.get("weights"))


def file_evidence(model_id: str, token: str | bool | None = None, revision: str | None = None) -> dict:
    """``{"static": ..., "weights": ...}`` of a Hub model (weights None when it has no safetensors/GGUF)."""
    meta = hub.model_metadata(model_id, revision=revision, token=token)
    return _evidence(meta, sketch_hub(model_id, revision=meta.revision, token=token))


def local_file_evidence(path: str | os.PathLike) -> dict:
    """``{"static": ..., "weights": ...}`` of a model's local files (a directory or a ``.gguf`` file)."""
    target = Path(path)
    if not target.exists():
        raise InvalidInputError(f"no such model path: {target}")
    return _evidence(hub.local_metadata(target), sketch_files(target))


def _evidence(meta: hub.ModelMetadata, weights: dict | None) -> dict:
    """The record's file evidence; a model without safetensors/GGUF weights says so (it was tried)."""
    if weights is None:
        weights = {"unavailable": "no safetensors or GGUF weights (pickle files are never read)"}
    return {"static": meta.static_evidence, "weights": weights}


def enrich(store_or_repo: str | os.PathLike, *, models: Iterable[str] | None = None, output: str | None = None,
           token: str | bool | None = None, push_to: str | None = None,
           progress: Callable[[str, str], None] | None = None,
           files: dict[str, str | os.PathLike] | None = None) -> EnrichResult:
    """Add static evidence and weight sketches to the records of a local store dir or a Hub reference dataset.

    A Hub dataset is pulled into `output` first (required then); a local store is updated in place (or copied
    into `output`). `models` limits the work to those ids. `push_to` pushes the enriched records back with the
    store's safe push (each enriched record replaces its own older version; nothing else is rewritten).
    `files` ({model id: local dir or .gguf}) reads those models' evidence from local copies instead of the Hub
    (and, without `models`, limits the work to them).
    """
    files = {m: Path(p) for m, p in (files or {}).items()}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise InvalidInputError(f"no such model path: {missing[0]}")
    source = Path(store_or_repo)
    if source.is_dir():
        store = ReferenceStore.load(source)
        directory = Path(output) if output else source
        if output:
            store.save(directory)
    else:
        if not output:
            raise InvalidInputError(f"{store_or_repo} is not a local store: pass -o DIR to pull the Hub dataset into")
        store = pull(str(store_or_repo), output, token=token)
        directory = Path(output)
    wanted = set(models) if models else (set(files) if files else None)
    if wanted:
        unknown = sorted(wanted - set(store.model_ids))
        if unknown:
            raise InvalidInputError(f"not in the reference: {', '.join(unknown[:5])}")
    result = EnrichResult(store, directory)
    for record in store.records:
        if wanted is not None and record.model_id not in wanted:
            continue
        if has_file_evidence(record):
            result.already.append(record.model_id)
            continue
        try:
            evidence = (local_file_evidence(files[record.model_id]) if record.model_id in files
                        else file_evidence(record.model_id, token=token))
        except HubOfflineError:
            raise
        except HfDnaError as err:
            result.failed[record.model_id] = str(err)
            if progress:
                progress(record.model_id, f"failed: {err}")
            continue
        enriched = replace(record, evidence={**(record.evidence or {}), **evidence})
        store.add([enriched])
        with atomic_path(directory / record_path(enriched.model_id, enriched.revision)) as tmp:
            tmp.write_bytes(record_bytes(enriched))  # one file per model: an interrupted run keeps what is done
        result.enriched.append(record.model_id)
        if progress:
            progress(record.model_id, "enriched")
    if push_to and result.enriched:
        done = set(result.enriched)
        result.pushed = push([r for r in store.records if r.model_id in done], push_to, token=token, overwrite=True,
                             message=f"hf-dna: file evidence for {len(done)} reference model(s)")
    return result
