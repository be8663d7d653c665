"""Governance reports over many models: per-model lineage findings, a 2-D DNA map, a distance heatmap and a
phylogenetic tree, written as a self-contained HTML page (images inline), Markdown and JSON.

Entries come from audit verdicts (`hf_dna.audit`), from saved verdict JSON files, or straight from a reference
store (each model against the rest of the store). A model without a DNA gets a line saying why, never a crash.
"""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, check_writable
from .._templates import environment
from .._version import __version__
from ..audit import Declared, audit, judge
from ..errors import HfDnaError, InvalidInputError
from ..hub import list_models
from ..pipeline.record import DNARecord, check_compatible
from ..reference import ReferenceStore
from .figures import UNKNOWN, heatmap_png, leaf_order, map_png, tree_png
from .mapping import classical_mds, stress
from .tree import MIN_SELF_CENTRE, build_tree, dna_distances, record_labels

#: draw the distance heatmap up to this many models (beyond that it is unreadable)
HEATMAP_MAX = 40
#: in a report on a few models, add this many nearest reference relatives of each to the map and tree
CONTEXT_RELATIVES = 3


@dataclass
class ReportEntry:
    """One model's line in the report."""

    model: str
    declared: dict[str, Any] = field(default_factory=dict)
    nearest: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    verdict: str | None = None
    family: str = UNKNOWN
    family_source: str = ""
    record: DNARecord | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the record without its bulky extra evidence vectors (the DNA itself is kept)."""
        out = {k: v for k, v in self.__dict__.items() if k != "record"}
        out["record"] = {**self.record.to_dict(), "evidence": {}} if self.record else None
        return out


@dataclass
class Report:
    """Everything a report page shows; `figures` maps a name to PNG bytes."""

    title: str
    entries: list[ReportEntry]
    reference: str | None
    method: str
    generated_at: str
    figures: dict[str, bytes] = field(default_factory=dict)
    newick: str | None = None
    coords: dict[str, list[float]] = field(default_factory=dict)
    map_stress: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        verdicts = [e.verdict or ("no-dna" if e.record is None else "not-audited") for e in self.entries]
        return {v: verdicts.count(v) for v in sorted(set(verdicts))}

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title, "generated_at": self.generated_at, "hf_dna_version": __version__,
            "reference": self.reference, "tree_method": self.method, "counts": self.counts,
            "models": [e.to_dict() for e in self.entries], "map": self.coords, "map_stress": self.map_stress,
            "newick": self.newick, "notes": self.notes,
        }


# ---------------------------------------------------------------------------------------------- inputs

def load_reference(reference: str):
    """A `ReferenceStore` for a local dir, a Hub dataset repo id, or 'default' (the embedded store)."""
    return ReferenceStore.default() if reference in ("default", "", None) else ReferenceStore.load(reference)


def families_for(store, model_ids: list[str]) -> dict[str, str]:
    """Lineage family of each model the store knows (models it does not know are left out)."""
    out = {}
    for model_id in model_ids:
        lineage = _lineage(store, model_id)
        if lineage and lineage.get("family"):
            out[model_id] = str(lineage["family"])
    return out


def _lineage(store, model_id: str) -> dict | None:
    if store is None:
        return None
    try:
        return store.lineage(model_id)
    except (KeyError, LookupError):
        return None


def entry_from_verdict(verdict: dict[str, Any], store=None) -> ReportEntry:
    """A report entry from a verdict dict (`Verdict.to_dict()` / `hf-dna audit --format json`)."""
    if not isinstance(verdict, dict) or "model" not in verdict:
        raise InvalidInputError("a verdict must be a JSON object with a 'model' key (hf-dna audit --format json)")
    record = DNARecord.from_dict(verdict["record"]) if verdict.get("record") else None
    entry = ReportEntry(
        model=str(verdict["model"]), declared=dict(verdict.get("declared") or {}),
        nearest=list(verdict.get("nearest") or []), flags=list(verdict.get("flags") or []),
        verdict=verdict.get("verdict"), record=record, notes=list(verdict.get("notes") or []),
        error=None if record or verdict.get("verdict") else "the verdict carries no DNA record",
    )
    _assign_family(entry, store)
    return entry


def _assign_family(entry: ReportEntry, store) -> None:
    """Family from the reference's lineage, else from a declared base, else from the nearest relative."""
    own = _lineage(store, entry.model)
    if own and own.get("family"):
        entry.family, entry.family_source = str(own["family"]), "reference lineage"
        return
    for base in entry.declared.get("base_models") or []:
        lineage = _lineage(store, base)
        if lineage and lineage.get("family"):
            entry.family, entry.family_source = str(lineage["family"]), f"declared base {base}"
            return
    if entry.nearest and entry.nearest[0].get("family"):
        entry.family, entry.family_source = str(entry.nearest[0]["family"]), "nearest relative"


def entries_from_reference(store, k: int = 5, progress: bool = True) -> list[ReportEntry]:
    """One entry per reference record, judged against the other records of the store.

    With a calibrated store this is the audit's own decision (`hf_dna.audit.judge`: calibrated probabilities
    and flags, the declared lineage taken from the store's lineage table); without one, just the k nearest
    other records by centred cosine distance.
    """
    records = list(store.records)
    if not records:
        raise InvalidInputError("the reference store holds no DNA records")
    if getattr(store, "calibration", None):
        return _judged_reference_entries(store, records, k, progress)
    labels = record_labels(records)
    distances = dna_distances(records, mean=_store_mean(store, records[0]))
    families = families_for(store, [r.model_id for r in records])
    entries = []
    for i, rec in enumerate(records):
        order = [j for j in np.argsort(distances[i]) if j != i][:k]
        nearest = [{"model_id": labels[j], "distance": round(float(distances[i, j]), 6), "probability": None,
                    "family": families.get(records[j].model_id, "")} for j in order]
        entry = ReportEntry(model=labels[i], declared=_reference_declared(store, rec), nearest=nearest, record=rec,
                            notes=["uncalibrated reference: nearest other reference models by centred cosine "
                                   "distance, no probabilities or flags"])
        entry.family, entry.family_source = families.get(rec.model_id, UNKNOWN), "reference lineage"
        entries.append(entry)
    return entries


def _reference_declared(store, record: DNARecord) -> dict[str, Any]:
    lineage = _lineage(store, record.model_id) or {}
    parents = [p.strip() for p in (lineage.get("parent") or "").split(";") if p.strip()]
    return {"base_models": list(record.declared_base_models) or parents,
            "relation": record.declared_relation or lineage.get("relation") or None, "source": "reference lineage"}


def _judged_reference_entries(store, records: list[DNARecord], k: int, progress: bool) -> list[ReportEntry]:
    from tqdm.auto import tqdm

    note = "judged against the other reference models (leave-one-out; the store's calibration saw this model)"
    entries = []
    for rec in tqdm(records, desc="judging reference", unit="model", disable=not progress):
        declared = _reference_declared(store, rec)
        verdict = judge(rec.model_id, rec, Declared(base_models=declared["base_models"], relation=declared["relation"],
                                                    source=declared["source"],
                                                    relation_explicit=bool(declared["relation"])),
                        store, k=k, notes=[note])
        entries.append(entry_from_verdict(verdict.to_dict(), store))
    return entries


def audit_entries(models: list[str], *, reference=None, store=None, records: list[DNARecord] = (),
                  token: str | None = None, progress: bool = True) -> list[ReportEntry]:
    """Audit each model id and each record (through `hf_dna.audit`); a failed audit becomes an entry saying why."""
    from tqdm.auto import tqdm

    jobs: list[tuple[str, DNARecord | None]] = [(m, None) for m in models] + [(r.model_id, r) for r in records]
    entries = []
    for model, record in tqdm(jobs, desc="auditing", unit="model", disable=not progress or len(jobs) < 2):
        try:
            kwargs = {"record": record} if record is not None else {}
            verdict = audit(model, reference=reference, token=token, **kwargs)
            entries.append(entry_from_verdict(verdict.to_dict(), store))
        except HfDnaError as err:  # keep a given DNA on the map even when its audit failed
            entry = ReportEntry(model=model, record=record, error=f"audit failed: {err}")
            if record is not None:
                _assign_family(entry, store)
            entries.append(entry)
    return entries


def org_models(org: str, token: str | None = None) -> list[str]:
    """The model ids an org or user owns on the Hub (through `hf_dna.hub`)."""
    return list_models(org, token=token)


def read_verdicts(paths: list[str], store=None) -> list[ReportEntry]:
    """Entries from saved verdict JSON files (one object or a list per file)."""
    entries = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InvalidInputError(f"cannot read verdict file {path}: {err}") from None
        for item in data if isinstance(data, list) else [data]:
            entries.append(entry_from_verdict(item, store))
    return entries


# ---------------------------------------------------------------------------------------------- building

def build_report(entries: list[ReportEntry], *, store=None, reference_name: str | None = None,
                 title: str = "hf-dna lineage report", method: str = "upgma", context: bool = True) -> Report:
    """Compute the map, heatmap and tree for `entries` (plus nearest reference relatives when `context`)."""
    if not entries:
        raise InvalidInputError("nothing to report: no models given (an org without models, or an empty list)")
    report = Report(title=title, entries=entries, reference=reference_name, method=method,
                    generated_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    with_dna = [e for e in entries if e.record is not None]
    records = [e.record for e in with_dna]
    families = [e.family for e in with_dna]
    highlight = [True] * len(records)
    if context and store is not None:
        extra = _context_records(with_dna, store)
        records += extra
        families += [families_for(store, [r.model_id]).get(r.model_id, UNKNOWN) for r in extra]
        highlight += [False] * len(extra)
    try:
        check_compatible(records)
    except HfDnaError as err:
        raise type(err)(f"cannot draw these models together: {err}") from None
    if len(records) < 2:
        report.notes.append("fewer than two models have a DNA: no map, heatmap or tree")
        return report
    labels = record_labels(records)
    mean = _store_mean(store, records[0])
    distances = dna_distances(records, mean=mean)
    coords = classical_mds(distances)
    report.coords = {label: [round(float(x), 5), round(float(y), 5)] for label, (x, y) in zip(labels, coords)}
    report.map_stress = round(stress(distances, coords), 4)
    report.figures["map"] = map_png(coords, labels, families, highlight)
    tree = build_tree(records, method=method, mean=mean)
    report.newick = tree.newick
    report.figures["tree"] = tree_png(tree, dict(zip(labels, families)))
    if len(records) <= HEATMAP_MAX:
        report.figures["heatmap"] = heatmap_png(distances, labels, leaf_order(tree.root, labels))
    else:
        report.notes.append(f"{len(records)} models: heatmap omitted (drawn up to {HEATMAP_MAX})")
    return report


def _store_mean(store, record: DNARecord) -> np.ndarray | None:
    """The reference's mean DNA (the centre for distances), when the store is comparable with `record`."""
    records = list(store.records) if store is not None else []
    if len(records) < MIN_SELF_CENTRE or records[0].compat_key != record.compat_key:
        return None
    return np.mean([r.vector for r in records], axis=0)


def _context_records(entries: list[ReportEntry], store) -> list[DNARecord]:
    """Reference records near the reported models, to place them among known families."""
    if not entries:
        return []
    key = entries[0].record.compat_key  # a store made with other probes/encoder cannot serve as context
    by_id = {r.model_id: r for r in store.records if r.compat_key == key}
    own = {e.model for e in entries}
    if own <= set(by_id) and len(own) == len(by_id):
        return []
    wanted: list[str] = []
    for entry in entries:
        for near in entry.nearest[:CONTEXT_RELATIVES]:
            model_id = str(near.get("model_id", "")).split("@")[0]
            if model_id in by_id and model_id not in own and model_id not in wanted:
                wanted.append(model_id)
    return [by_id[m] for m in wanted]


# ---------------------------------------------------------------------------------------------- output

def _environment():
    import jinja2

    env = environment(autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["evidence"] = _evidence_text
    env.filters["oneline"] = lambda text: " ".join(str(text).split())
    env.filters["pct"] = lambda p: "" if p is None else f"{100 * float(p):.0f}%"
    return env


def _evidence_text(evidence: Any) -> str:
    if isinstance(evidence, dict):
        return "; ".join(f"{k}: {_short(v)}" for k, v in evidence.items())
    return _short(evidence)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_short(v) for v in value[:8]) + (" ..." if len(value) > 8 else "")
    if isinstance(value, dict):
        return json.dumps(value, default=str)[:200]
    return str(value)


def render_html(report: Report) -> str:
    images = {name: base64.b64encode(png).decode("ascii") for name, png in report.figures.items()}
    return _environment().get_template("report.html.j2").render(report=report, images=images, version=__version__)


def render_markdown(report: Report, image_files: dict[str, str] | None = None) -> str:
    env = _environment()
    env.autoescape = False
    return env.get_template("report.md.j2").render(report=report, images=image_files or {})


def verdict_markdown(verdict: dict[str, Any]) -> str:
    """Markdown for one audit verdict (used by the GitHub Action's job summary)."""
    entry = entry_from_verdict(verdict)
    report = Report(title=f"hf-dna audit: {entry.model}", entries=[entry], reference=None, method="",
                    generated_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    env = _environment()
    env.autoescape = False
    return env.get_template("report.md.j2").render(report=report, images={}, single=True)


def check_output_dir(out_dir: str | os.PathLike) -> None:
    """Raise a one-line `InvalidInputError` unless `out_dir` is (or can be created as) a writable directory."""
    check_writable(out_dir, directory=True, what="the report")


def write_report(report: Report, out_dir: str | os.PathLike) -> list[Path]:
    """Write report.html, report.md, report.json, the PNG figures and tree.nwk into `out_dir` (atomically)."""
    out = Path(out_dir)
    check_output_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InvalidInputError(f"cannot write the report to {out}: {err.strerror or err}") from None
    files: dict[str, bytes] = {f"{name}.png": png for name, png in report.figures.items()}
    if report.newick:
        files["tree.nwk"] = (report.newick + "\n").encode()
    files["report.json"] = (json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n").encode()
    files["report.md"] = render_markdown(report, {n: f"{n}.png" for n in report.figures}).encode()
    files["report.html"] = render_html(report).encode()
    for name, data in files.items():
        write_file(out / name, data)
    return [out / name for name in files]


def write_file(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes atomically; an unwritable place is a one-line `InvalidInputError`."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)  # atomic_path gives it the mode a plain open() would: reports are shared
    except OSError as err:
        raise InvalidInputError(f"cannot write {path}: {err.strerror or err}") from None
    return Path(path)
