"""`audit`: a model (or its responses or record) -> its DNA record and declared lineage -> a `Verdict`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, RecordFileError
from ..hub import ModelMetadata
from ..pipeline.extract import answers_in_parts, extract, record_from_responses
from ..pipeline.probes import ProbeSet, load_probe_set
from ..pipeline.record import DNARecord, read_records
from ..pipeline.responses import GenerationSettings
from ..reference.layout import CONFIG_NAME
from ..reference.store import ReferenceStore, default_store_dirs, probes_for_store
from .decision import stop_point
from .declared import declared_lineage, read_model_files
from .judge import judge
from .verdict import RELATIONS, Verdict

#: probe set used when neither --probes, --record nor a reference says otherwise (chosen in bench/audit_eval.py)
DEFAULT_PROBES = "paper600:100"


def audit(model: str, *, reference: Any = None, probes: str | None = None, responses: str | None = None,
          record: DNARecord | str | None = None, base_models: list[str] | tuple[str, ...] | None = None,
          relation: str | None = None, settings: Any = None, token: str | None = None, k: int = 5,
          progress: bool = False, revision: str | None = None, gguf_file: str | None = None,
          relative_posterior: float | None = None, backend: str = "transformers", api: Any = None,
          adaptive: bool = False) -> Verdict:
    """Audit `model` (Hub id, local dir/file, or any name when `responses`/`record` are given).

    `reference`: a `ReferenceStore`, a local store dir or a Hub dataset id; default: the embedded store made
    with the record's probes. `base_models`/`relation` override the card (source ``cli``). `relative_posterior`:
    where behaviour alone flags an undeclared base (default: the reference's operating point, else 0.95).
    `adaptive`: ask the probes of a smaller embedded reference nested in this one first (paper600-50 inside
    paper600-100) and the rest only when the verdict there is unsure, i.e. when the behavioural family
    confidence is at or above the stop point measured for the pair (bench/adaptive_eval.py); the answers
    already given are kept, so a model asked everything answers each probe once.
    """
    if relation is not None and relation not in RELATIONS:
        raise InvalidInputError(f"relation must be one of {', '.join(RELATIONS)}, not {relation!r}")
    if adaptive and (record is not None or responses is not None):
        raise InvalidInputError("adaptive audits ask the model step by step: they take no --responses or --record")
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
    asking = dict(settings=settings or GenerationSettings.paper(), token=token, revision=revision, gguf_file=gguf_file,
                  progress=progress, metadata=files.metadata if files is not None else None, backend=backend, api=api)
    if adaptive:
        declared = declared_lineage(files, base_models, relation, notes)
        return _adaptive_audit(model, store, probe_set, declared, asking, notes, k=k,
                               relative_posterior=relative_posterior)
    dna = _get_record(model, record, responses, probe_set, **asking)
    if store is None:
        store = ReferenceStore.default(probe_hash=dna.probe_hash)
    declared = declared_lineage(files, base_models, relation, notes)
    return judge(model, dna, declared, store, k=k, notes=notes, relative_posterior=relative_posterior)


def _adaptive_audit(model: str, store: ReferenceStore, probe_set: ProbeSet, declared: Any, asking: dict[str, Any],
                    notes: list[str], **judging: Any) -> Verdict:
    """`audit(adaptive=True)`: the nested store's probes first, the rest only while the verdict is unsure."""
    nested = nested_store(store, probe_set)
    if nested is None:
        notes.append(f"adaptive: {_store_name(store)} names no smaller reference nested in it with a measured stop "
                     f"point, so all {len(probe_set)} probes were asked")
        return judge(model, extract(model, probe_set, **asking), declared, store, notes=notes, **judging)
    small, head, below = nested
    parts = answers_in_parts(model, probe_set, len(head), **asking)
    try:
        early = record_from_responses(next(parts), head)
        verdict = judge(model, early, declared, small, notes=notes, **judging)
        sure = verdict.family_confidence
        if sure is not None and sure < below:
            verdict.notes.append(
                f"adaptive: stopped after the first {len(head)} of {len(probe_set)} probes, judged on "
                f"{_store_name(small)}: the family confidence there, {sure:.2f}, is below the stop point {below:.2f} "
                f"measured for it inside {_store_name(store)} (bench/adaptive_eval.py)")
            return verdict
        answers = next(parts)
    finally:
        parts.close()  # the LM's memory is freed here
    dna = record_from_responses(answers, probe_set, weights=False)  # the weight sketch does not depend on probes
    if "weights" in early.evidence:
        dna.evidence["weights"] = early.evidence["weights"]
    shown = "none" if sure is None else f"{sure:.2f}"
    notes.append(f"adaptive: asked all {len(probe_set)} probes: after the first {len(head)} the family confidence "
                 f"was {shown}, not below the stop point {below:.2f}")
    return judge(model, dna, declared, store, notes=notes, **judging)


def nested_store(store: ReferenceStore, probe_set: ProbeSet) -> tuple[ReferenceStore, ProbeSet, float] | None:
    """The embedded store whose probes are the first k of `probe_set`, its head, and the family confidence below
    which an audit may stop there, when `store`'s calibration names one (`stop_point`); else None."""
    stop = stop_point(store)
    if stop is None or stop["n_probes"] >= len(probe_set):
        return None
    head = probe_set.head(stop["n_probes"])
    if head.hash != stop["probe_hash"]:
        return None
    for directory in default_store_dirs():
        config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        if config.get("probe_hash") == head.hash:
            return ReferenceStore.load(directory), head, stop["family_confidence_below"]
    return None


def _store_name(store: ReferenceStore) -> str:
    source = getattr(store, "source", None)
    return Path(source).name if source and Path(source).is_dir() else str(source or "the reference")


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


def _get_record(model: str, record: DNARecord | str | None, responses: str | None, probes: ProbeSet | None, *,
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
    return extract(model, probes, responses=responses, settings=settings, token=token, revision=revision,
                   gguf_file=gguf_file, progress=progress, metadata=metadata, backend=backend, api=api)

