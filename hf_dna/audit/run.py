"""`audit`: a model (or its responses or record) -> its DNA record and declared lineage -> a `Verdict`."""
from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError, RecordFileError
from ..hub import ModelMetadata
from ..pipeline.extract import extract
from ..pipeline.probes import ProbeSet, load_probe_set
from ..pipeline.record import DNARecord, read_records
from ..pipeline.responses import GenerationSettings
from ..reference.store import ReferenceStore, probes_for_store
from .declared import declared_lineage, read_model_files
from .judge import judge
from .verdict import RELATIONS, Verdict

#: probe set used when neither --probes, --record nor a reference says otherwise (chosen in bench/audit_eval.py)
DEFAULT_PROBES = "paper600:100"


def audit(model: str, *, reference: Any = None, probes: str | None = None, responses: str | None = None,
          record: DNARecord | str | None = None, base_models: list[str] | tuple[str, ...] | None = None,
          relation: str | None = None, settings: Any = None, token: str | None = None, k: int = 5,
          progress: bool = False, revision: str | None = None, gguf_file: str | None = None,
          relative_posterior: float | None = None, backend: str = "transformers", api: Any = None) -> Verdict:
    """Audit `model` (Hub id, local dir/file, or any name when `responses`/`record` are given).

    `reference`: a `ReferenceStore`, a local store dir or a Hub dataset id; default: the embedded store made
    with the record's probes. `base_models`/`relation` override the card (source ``cli``). `relative_posterior`:
    where behaviour alone flags an undeclared base (default: the reference's operating point, else 0.95).
    """
    if relation is not None and relation not in RELATIONS:
        raise InvalidInputError(f"relation must be one of {', '.join(RELATIONS)}, not {relation!r}")
    notes: list[str] = []
    store = reference if isinstance(reference, ReferenceStore) else (
        ReferenceStore.load(reference) if reference is not None else None)
    probe_set = None
    if record is None:  # find the store before generating anything: a missing one fails fast
        probe_set = load_probe_set(probes or (_store_probe_set(store) if store is not None else None)
                                   or DEFAULT_PROBES)
        store = store if store is not None else ReferenceStore.default_for(probe_set)
        probe_set = _probes_of_store(store, probe_set, notes)
    cli_declared = bool(base_models or relation)
    files = None if cli_declared else read_model_files(model, token, notes, revision)  # read once, passed along
    dna = _get_record(model, record, responses, probe_set, settings, token, progress, revision, gguf_file,
                      files.metadata if files is not None else None, backend=backend, api=api)
    if store is None:
        store = ReferenceStore.default(probe_hash=dna.probe_hash)
    declared = declared_lineage(files, base_models, relation, notes)
    return judge(model, dna, declared, store, k=k, notes=notes, relative_posterior=relative_posterior)


def _probes_of_store(store: ReferenceStore, probe_set: ProbeSet, notes: list[str]) -> ProbeSet:
    """The probes to audit on: the reference's own when they are the first k of those given (said in a note)."""
    usable = probes_for_store(store, probe_set)
    if usable is None or usable is probe_set:
        return probe_set  # equal, or not comparable: the comparison refuses with a clear message
    notes.append(f"the reference was built with the first {len(usable)} of the {len(probe_set)} probes of "
                 f"{probe_set.name}: audited on those ({usable.name})")
    return usable


def _store_probe_set(store: Any) -> str | None:
    config = getattr(store, "config", None)
    if isinstance(config, dict):
        return config.get("probe_set")
    return getattr(config, "probe_set", None)


def _get_record(model: str, record: DNARecord | str | None, responses: str | None, probes: ProbeSet | None,
                settings: Any, token: str | None, progress: bool, revision: str | None = None,
                gguf_file: str | None = None, metadata: ModelMetadata | None = None, backend: str = "transformers",
                api: Any = None) -> DNARecord:
    """The model's DNA: a given record (object or file), else extracted from responses or by generation."""
    if isinstance(record, DNARecord):
        return record
    if record is not None:
        records = read_records(record)
        if len(records) == 1:
            return records[0]
        matching = [r for r in records if r.model_id == model]
        if len(matching) != 1:
            raise RecordFileError(f"{record} holds {len(records)} records and {len(matching)} for {model}: "
                                  "pass a file with one record")
        return matching[0]
    return extract(model, probes, responses=responses, settings=settings or GenerationSettings.paper(), token=token,
                   revision=revision, gguf_file=gguf_file, progress=progress, metadata=metadata, backend=backend,
                   api=api)

