"""Build a reference store from responses files: embed, project, attach evidence, fit the relation model, save.

`build_store` is what `hf-dna reference build` runs, and how the embedded default stores under
`hf_dna/data/reference/` were made (their README gives the exact command). Responses files are read like
`hf-dna extract --responses` reads them (JSONL/JSON/parquet rows with ``probe`` or ``prompt`` plus
``response``, or llm-dna's ``responses.json``); a file with a ``model_id`` column holds many models.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ResponsesFileError
from ..evidence.lineage import LINEAGE_COLUMNS, labelled_family, read_lineage
from ..evidence.relation import RelationModel
from ..pipeline.backends.responses_file import map_onto_probes, read_rows
from ..pipeline.device import torch_threads
from ..pipeline.dna import DEFAULT_DIM, DEFAULT_SEED
from ..pipeline.embed import DEFAULT_ENCODER, Encoder, load_encoder
from ..pipeline.extract import record_from_embeddings
from ..pipeline.probes import ProbeSet, load_probe_set
from ..pipeline.record import DNARecord
from .layout import CONFIG_NAME, EARLY_STOP, OPERATING_POINT
from .store import ReferenceStore

#: how the LLM DNA authors generated the shared reference responses (README of reference-responses)
REFERENCE_GENERATION = {
    "paper600": {"backend": "reference-responses", "sampling": True, "temperature": 0.7, "top_p": 0.9,
                 "max_length": 1024, "chat_template": False},
    "chat-rand-zh100": {"backend": "reference-responses", "chat_api": True, "chat_template": True},
}
ATTRIBUTION = ("Responses: LLM DNA authors, DNA Explorer (github.com/JerryLife/dna-web, MIT licence), from Wu et al., "
               "*LLM DNA: Tracing Model Evolution via Functional Representations* (arXiv 2509.24496). "
               "Lineage labels: compiled from model cards and public knowledge; `low` rows are unreliable.")


#: a model whose share of empty responses exceeds this is left out of a reference: its DNA would measure the
#: failure (an API error, a model that returned nothing), and all such models look alike
MAX_EMPTY_SHARE = 0.5


def empty_share(texts: list[str]) -> float:
    """Share of responses that are empty or whitespace."""
    return sum(1 for t in texts if not (t or "").strip()) / max(len(texts), 1)


def read_model_responses(files: Iterable[str | os.PathLike], probe_set: ProbeSet) -> dict[str, list[str]]:
    """model_id -> responses in probe order, from one or more files (each may hold one model or many)."""
    out: dict[str, list[str]] = {}
    for file in files:
        rows = read_rows(Path(file))
        if not rows:
            raise ResponsesFileError(f"{file} holds no responses")
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if not isinstance(row, dict):
                raise ResponsesFileError(f"{file}: every row must be an object with 'probe' or 'prompt' and 'response'")
            groups.setdefault(str(row.get("model_id") or Path(file).stem), []).append(row)
        for model_id, model_rows in groups.items():
            if model_id in out:
                raise ResponsesFileError(f"{file}: model {model_id} already came from another file")
            out[model_id] = map_onto_probes(model_rows, probe_set, str(file))
    return out


class EmbeddingCache:
    """Precomputed per-response embeddings (npz files with keys model_id, probe, emb), looked up by model."""

    def __init__(self, location: str | os.PathLike):
        path = Path(location)
        files = sorted(glob.glob(str(path / "*.npz"))) if path.is_dir() else [str(path)]
        self._rows: dict[tuple[str, int], np.ndarray] = {}
        for file in files:
            with np.load(file, allow_pickle=True) as z:
                for model_id, probe, emb in zip(z["model_id"], z["probe"], z["emb"]):
                    self._rows[(str(model_id), int(probe))] = emb

    def get(self, model_id: str, n_probes: int) -> np.ndarray | None:
        rows = [self._rows.get((model_id, p)) for p in range(n_probes)]
        return None if any(r is None for r in rows) else np.stack(rows).astype(np.float32)


def build_records(responses: dict[str, list[str]], probe_set: ProbeSet, lineage: dict[str, dict[str, str]],
                  encoder: Encoder, *, dim: int = DEFAULT_DIM, seed: int = DEFAULT_SEED,
                  generation: dict[str, Any] | None = None, cache: EmbeddingCache | None = None,
                  progress: bool = False, ray_address: str | None = None) -> list[DNARecord]:
    """One DNARecord (with evidence and the declared base from `lineage`) per model.

    `ray_address`: embed the models not in `cache` as Ray tasks on that cluster
    (`hf_dna.pipeline.ray_encode`); projection and evidence stay here, so the records equal the serial ones."""
    from tqdm.auto import tqdm

    encoded: dict[str, np.ndarray] = {}
    if ray_address is not None:
        from ..pipeline.ray_encode import encode_on_ray

        cached = {m for m in responses if cache and cache.get(m, len(responses[m])) is not None}
        todo = {m: responses[m] for m in sorted(responses) if m not in cached}
        encoded = encode_on_ray(todo, encoder, ray_address, progress=progress) if todo else {}
    records = []
    for model_id in tqdm(sorted(responses), desc="reference models", disable=not progress):
        texts = responses[model_id]
        emb = cache.get(model_id, len(texts)) if cache else None
        if emb is None:
            emb = encoded.pop(model_id, None)
        if emb is None:
            with torch_threads():
                emb = encoder.encode(texts)
        info = lineage.get(model_id) or {}
        bases = [b.strip() for b in (info.get("parent") or "").split(";") if b.strip()]
        records.append(record_from_embeddings(
            model_id, texts, emb, probe_set, encoder, dim=dim, seed=seed, revision="reference",
            generation=generation, declared_base_models=bases,
            declared_relation=(info.get("relation") or None) if bases else None))
    return records


def rebuild_command(responses_files: list[str], probe_spec: str, lineage_csv: str | None, out_dir: str,
                    max_empty: float = MAX_EMPTY_SHARE) -> str:
    parts = ["hf-dna reference build", *responses_files, "--probes", probe_spec]
    if max_empty != MAX_EMPTY_SHARE:
        parts += ["--max-empty", str(max_empty)]
    if lineage_csv:
        parts += ["--lineage", str(lineage_csv)]
    return " ".join([*parts, "-o", str(out_dir)])


def cv_table_rows(model: RelationModel) -> list[str]:
    """One row of the store README's cross-validation table per fitted head of `model`."""
    return [f"| {name} | {cv['auc']:.3f} / {cv.get('auc_by_fold', float('nan')):.3f} | {cv['pc_auc']:.3f} | "
            f"{cv['top1']:.3f} | {cv['top5']:.3f} | {cv.get('nn_fire_rate', float('nan')):.2f} | "
            f"{cv.get('nn_fire_precision', float('nan')):.2f} |" for name, cv in model.cv.items()]


def store_readme(store_config: dict[str, Any], model: RelationModel, command: str, attribution: str | None,
                 dropped: list[str] = (), max_empty: float = MAX_EMPTY_SHARE) -> str:
    """The store's README: what it holds, its measured quality, attribution and the exact rebuild command."""
    lines = [
        f"# hf-dna reference store: {store_config['probe_set']}",
        "",
        f"{model.n_records} DNA records ({model.n_labelled} with a high/medium-confidence family label), probe set "
        f"`{store_config['probe_set']}` ({store_config['n_probes']} probes, sha256 `{store_config['probe_hash']}`), "
        f"encoder `{store_config['encoder']}`, dim {store_config['dim']}, projection seed "
        f"{store_config['projection_seed']}. Layout: `hf-dna.json` (config), `data/<org>/<name>/<revision>.parquet` "
        "(one DNARecord per model), `lineage.csv`, `calibration.json` (`hf_dna.evidence.relation.RelationModel`).",
        "",
        "Relationship detection, cross-validated with whole families held out of fitting (`calibration.json`):",
        "",
        "| evidence | AUC family (pooled / mean by fold) | AUC parent-child | top-1 family | top-5 family | top candidate P>=0.5 | "
        "of which right family |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += cv_table_rows(model)
    if dropped:
        lines += ["", f"Left out: {len(dropped)} models with more than {max_empty:.0%} empty responses (their DNA would "
                  f"measure the failure, not the model): " + ", ".join(f"`{m}`" for m in dropped) + "."]
    lines += ["", "## Rebuild", "", "```", command, "```", "",
              "(`--embeddings-cache DIR` reuses precomputed per-response embeddings, npz with model_id/probe/emb.)"]
    if attribution:
        lines += ["", "## Source data and attribution", "", attribution]
    return "\n".join(lines) + "\n"


def build_store(responses_files: list[str | os.PathLike], probe_set: str | ProbeSet, lineage_csv: str | None,
                out_dir: str | os.PathLike, encoder: str | Encoder = DEFAULT_ENCODER,
                embeddings_cache: str | os.PathLike | None = None, *, dim: int = DEFAULT_DIM,
                seed: int = DEFAULT_SEED, generation: dict[str, Any] | None = None, attribution: str | None = None,
                progress: bool = False, max_empty: float = MAX_EMPTY_SHARE, ray_address: str | None = None):
    """Build and save a reference store; returns the `ReferenceStore`.

    `generation` defaults to how the shared reference responses were made when the probe set is one of theirs
    (`REFERENCE_GENERATION`), else ``{"backend": "responses-file"}``. The relation model is fitted when
    `lineage_csv` labels at least 3 families. Models with more than `max_empty` empty responses are left out
    (listed in the README). `ray_address`: encode on that Ray cluster (`build_records`); the store is the same.
    """
    probes = probe_set if isinstance(probe_set, ProbeSet) else load_probe_set(probe_set)
    files = [str(f) for f in responses_files]
    if not files:
        raise ResponsesFileError("no responses files given")
    lineage = read_lineage(lineage_csv) if lineage_csv else {}
    base_name = probes.base_name
    if generation is None:
        generation = REFERENCE_GENERATION.get(base_name, {"backend": "responses-file"})
    if attribution is None and base_name in REFERENCE_GENERATION:
        attribution = ATTRIBUTION
    responses = read_model_responses(files, probes)  # a bad file fails before the encoder loads
    dropped = sorted(m for m, texts in responses.items() if empty_share(texts) > max_empty)
    responses = {m: t for m, t in responses.items() if m not in dropped}
    if not responses:
        raise ResponsesFileError(f"every model has more than {max_empty:.0%} empty responses: nothing to build")
    enc = encoder if isinstance(encoder, Encoder) else load_encoder(encoder)
    cache = EmbeddingCache(embeddings_cache) if embeddings_cache else None
    records = build_records(responses, probes, lineage, enc, dim=dim, seed=seed, generation=generation,
                            cache=cache, progress=progress, ray_address=ray_address)
    model = RelationModel.fit(records, lineage) if _labelled_families(lineage, responses) >= 3 else None
    store = ReferenceStore(records, lineage={m: lineage[m] for m in responses if m in lineage},
                           calibration=model.to_dict() if model else None)
    probe_spec = probes.name if base_name in REFERENCE_GENERATION else (probes.source or probes.name)
    command = rebuild_command(files, probe_spec, lineage_csv, str(out_dir), max_empty)
    store.readme = (store_readme(store.config, model, command, attribution, dropped, max_empty) if model
                    else store.dataset_card(attribution=attribution))
    store.save(out_dir)
    return store


def _labelled_families(lineage: dict[str, dict[str, str]], models: Iterable[str]) -> int:
    return len({labelled_family(lineage.get(m)) for m in models} - {""})


def add_records(out_dir: str | os.PathLike, records: list[DNARecord], lineage_csv: str | os.PathLike | None = None,
                *, refit: bool = False, replace: bool = False) -> tuple[ReferenceStore, list[str]]:
    """Create or extend the local store in `out_dir` with `records` (and their `lineage_csv` rows).

    A record for a model + revision already stored, or a lineage row for a model already labelled, is refused
    unless `replace`; nothing is written when anything is refused. The store's calibration is kept (it was fitted
    on its own labelled records and stays valid for its probes and encoder), or refitted on all records with
    `refit` (needs 3 labelled families). Returns the saved store and notes on what was done.
    """
    if not records:
        raise InvalidInputError("no records to add")
    directory = Path(out_dir)
    exists = (directory / CONFIG_NAME).is_file()
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"{directory} is not a directory")
    if directory.is_dir() and not exists and any(directory.iterdir()):
        raise InvalidInputError(f"{directory} is neither a reference store nor empty: refusing to write into it")
    store = ReferenceStore.load(directory) if exists else ReferenceStore()
    stored = {(r.model_id, r.revision) for r in store.records}
    clash = sorted(f"{r.model_id}@{r.revision}" for r in records if (r.model_id, r.revision) in stored)
    new_lineage = read_lineage(lineage_csv) if lineage_csv else {}
    relabelled = sorted(m for m, row in new_lineage.items() if m in store.lineage_table
                        and store.lineage_table[m] != {k: str(row.get(k) or "") for k in store.lineage_table[m]})
    if (clash or relabelled) and not replace:
        what = clash and f"records already stored: {', '.join(clash[:5])}" or \
            f"lineage rows already present with other labels: {', '.join(relabelled[:5])}"
        raise InvalidInputError(f"{directory}: {what} (pass --replace to overwrite)")
    store.add(records)
    for model_id, row in new_lineage.items():
        store.lineage_table[model_id] = {k: str(row.get(k) or "") for k in LINEAGE_COLUMNS[1:]}
    notes = [f"{len(records) - len(clash)} record(s) added" + (f", {len(clash)} replaced" if clash else "")]
    if refit:
        families = _labelled_families(store.lineage_table, store.model_ids)
        if families < 3:
            raise InvalidInputError(f"cannot refit the calibration: {families} labelled families (needs 3)")
        old = store.calibration if isinstance(store.calibration, dict) else {}
        store.calibration = RelationModel.fit(store.records, store.lineage_table).to_dict()
        notes.append(f"calibration refitted on {len(store)} records ({families} labelled families)")
        # both were measured on the old calibration: the audit goes without them until they are measured again
        if OPERATING_POINT in old:
            notes.append("its measured operating point was dropped with the old calibration "
                         "(bench/audit_eval.py --write-operating-point measures it again)")
        if EARLY_STOP in old:
            notes.append("its adaptive stop point was dropped with the old calibration "
                         "(bench/adaptive_eval.py --write-stop-point measures it again)")
    elif store.calibration:
        notes.append("calibration kept (fitted before these records; --refit to refit on all)")
    else:
        notes.append("no calibration: the audit reports nearest models and distances, marked uncalibrated")
    added = sorted({r.model_id for r in records})
    store.readme = _with_added_section(store.readme or store.dataset_card(), added, notes)
    store.save(directory)
    return store, notes


ADDED_HEADING = "## Records added with `hf-dna reference add`"


def _with_added_section(readme: str, model_ids: list[str], notes: list[str]) -> str:
    """The store's card with the added models listed under `ADDED_HEADING` (provenance of what is not rebuilt by
    the card's own command)."""
    line = f"- {', '.join(f'`{m}`' for m in model_ids)}: {'; '.join(notes)}"
    if ADDED_HEADING not in readme:
        return readme.rstrip("\n") + f"\n\n{ADDED_HEADING}\n\n{line}\n"
    head, rest = readme.split(ADDED_HEADING, 1)
    section, heading, after = rest.partition("\n## ")  # the line goes at the end of this section, not the card's
    return head + ADDED_HEADING + section.rstrip("\n") + "\n" + line + "\n" + ("\n## " + after if heading else "")
