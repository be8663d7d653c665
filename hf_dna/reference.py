"""`ReferenceStore`: a set of comparable DNA records plus their known lineage, stored locally or as a Hub dataset.

Layout (identical in a local dir and in the Hub dataset repo, readable by `datasets.load_dataset(repo)`):

    hf-dna.json                           config: probe_set, probe_hash, n_probes, encoder, encoder_revision, dim,
                                          projection_seed, projection, format_version
    data/<org>/<name>/<revision>.parquet  one DNARecord row per model+revision ("_/<name>" for ids without org)
    lineage.csv                           optional: model_id,family,parent,relation,confidence,note
    calibration.json                      optional, opaque here (fitted by the calibration code)
    README.md                             dataset card

`push` is idempotent (an identical record makes no commit), race-safe (commits carry `parent_commit`; a stale
parent is re-read and retried), never rewrites another model's record, and refuses records whose probe hash,
encoder, dim, seed or projection differ from the repo's `hf-dna.json`.
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import hub
from ._io import atomic_path, atomic_write_text
from .errors import (IncompatibleRecordsError, PushConflictError, RecordFileError, ReferenceStoreError,
                     RepoNotFoundError, StaleParentError)
from .record import (COMPAT_FIELDS, DNARecord, check_compatible, read_records, record_schema, records_to_table,
                     write_parquet)

CONFIG_NAME = "hf-dna.json"
LINEAGE_NAME = "lineage.csv"
CALIBRATION_NAME = "calibration.json"
README_NAME = "README.md"
FORMAT_VERSION = 1
CONFIG_FIELDS = ("probe_set", "probe_hash", "n_probes", "encoder", "encoder_revision", "dim", "projection_seed",
                 "projection")
LINEAGE_COLUMNS = ("model_id", "family", "parent", "relation", "confidence", "note")
METRICS = ("cosine", "euclidean")
DEFAULT_ROOT = Path(__file__).resolve().parent / "data" / "reference"
_REPO_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def record_path(model_id: str, revision: str) -> str:
    """Path of a record in a store: ``data/<org>/<name>/<revision>.parquet`` (``_`` when the id has no org)."""
    org, _, name = model_id.rpartition("/")
    safe_revision = (revision or "local").replace("/", "--")
    safe_name = name.replace(":", "--")  # API ids such as `org/model:free`; ':' is not allowed in Windows paths
    return f"data/{org or '_'}/{safe_name}/{safe_revision}.parquet"


def config_for(record: DNARecord) -> dict[str, Any]:
    """The store config that `record` (and every record comparable with it) satisfies."""
    return {**{name: getattr(record, name) for name in CONFIG_FIELDS}, "format_version": FORMAT_VERSION}


def check_against_config(record: DNARecord, config: dict[str, Any], where: str = "the reference store") -> None:
    """Raise `IncompatibleRecordsError` naming the first compat field where `record` differs from `config`."""
    for name in COMPAT_FIELDS:
        if name in config and getattr(record, name) != config[name]:
            raise IncompatibleRecordsError(f"{record.model_id} does not fit {where}: {name} differs "
                                           f"({getattr(record, name)!r} vs {config[name]!r})")


def record_bytes(record: DNARecord) -> bytes:
    """One record as parquet bytes in `record_schema()` (deterministic for identical records)."""
    buffer = io.BytesIO()
    write_parquet(records_to_table([record]), buffer)
    return buffer.getvalue()


def read_lineage(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """A lineage CSV (extra columns allowed) as ``{model_id: {family, parent, relation, confidence, note}}``."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise ReferenceStoreError(f"cannot read lineage file {path}: {err.strerror}") from None
    if rows and "model_id" not in rows[0]:
        raise ReferenceStoreError(f"lineage file {path} has no model_id column")
    return {r["model_id"]: {k: (r.get(k) or "") for k in LINEAGE_COLUMNS[1:]} for r in rows if r.get("model_id")}


def lineage_csv(lineage: dict[str, dict[str, str]]) -> str:
    """Lineage rows as CSV text with the standard columns, sorted by model id."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LINEAGE_COLUMNS)
    for model_id in sorted(lineage):
        writer.writerow([model_id, *(lineage[model_id].get(k) or "" for k in LINEAGE_COLUMNS[1:])])
    return buffer.getvalue()


DATA_FILES_CONFIG = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/**/*.parquet"}]}]


def with_dataset_metadata(readme: str) -> str:
    """The card with a `configs:` entry in its YAML front matter (added when missing), so that the Hub and
    `datasets.load_dataset` read only data/**/*.parquet, as one table, whatever else the repo holds."""
    import yaml
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    match = REGEX_YAML_BLOCK.search(readme)
    metadata, warning = hub.parse_card_metadata(readme)
    if warning or "configs" in metadata:
        return readme
    metadata["configs"] = DATA_FILES_CONFIG
    front = "---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---\n"
    return front + (readme[match.end():] if match else readme)


def _key(record: DNARecord) -> tuple[str, str]:
    return record.model_id, record.revision


class ReferenceStore:
    """DNA records sharing one compat key, with lineage and an optional calibration; nearest-neighbour search."""

    def __init__(self, records: Iterable[DNARecord] = (), config: dict[str, Any] | None = None,
                 lineage: dict[str, dict[str, str]] | None = None, calibration: dict | None = None,
                 readme: str | None = None, source: str | None = None):
        self.config: dict[str, Any] = dict(config or {})
        self.lineage_table: dict[str, dict[str, str]] = {
            model_id: {k: str(row.get(k) or "") for k in LINEAGE_COLUMNS[1:]} for model_id, row in (lineage or {}).items()}
        self.calibration = calibration
        self.readme = readme
        self.source = source
        self._records: dict[tuple[str, str], DNARecord] = {}
        self._matrix: np.ndarray | None = None
        self.add(list(records))

    # ---- contents --------------------------------------------------------------------------------------------
    @property
    def records(self) -> list[DNARecord]:
        return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    @property
    def model_ids(self) -> list[str]:
        return [r.model_id for r in self._records.values()]

    def lineage(self, model_id: str) -> dict[str, str] | None:
        """Known lineage of a model (family, parent, relation, confidence, note), or None."""
        return self.lineage_table.get(model_id)

    def add(self, records: Iterable[DNARecord]) -> None:
        """Add records (a record for an existing model+revision replaces it); refuse incompatible ones, all or none."""
        records = list(records)
        if not records:
            return
        check_compatible(records)
        if not self.config:
            self.config = config_for(records[0])
        for record in records:
            check_against_config(record, self.config)
        for record in records:
            self._records[_key(record)] = record
        self._matrix = None

    @property
    def matrix(self) -> np.ndarray:
        """All DNAs as a float32 (n, dim) matrix, in `records` order."""
        if self._matrix is None:
            dim = int(self.config.get("dim") or 0)
            self._record_list = self.records
            self._ids = np.asarray([r.model_id for r in self._record_list], dtype=object)
            self._matrix = np.asarray([r.dna for r in self._record_list], dtype=np.float32).reshape(-1, dim)
            self._norms = np.linalg.norm(self._matrix, axis=1)
        return self._matrix

    # ---- search ----------------------------------------------------------------------------------------------
    def distances(self, vector: np.ndarray | list[float], metric: str = "cosine") -> np.ndarray:
        """Distance from `vector` to every record (cosine distance = 1 - cosine similarity, or euclidean)."""
        if metric not in METRICS:
            raise ReferenceStoreError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
        matrix = self.matrix
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != matrix.shape[1]:
            raise IncompatibleRecordsError(f"vector has dim {query.shape[0]}, the reference store has dim {matrix.shape[1]}")
        if metric == "euclidean":  # direct differences: the |a|^2 - 2ab + |b|^2 shortcut loses close pairs in float32
            return np.linalg.norm(matrix - query, axis=1)
        denominator = np.maximum(self._norms * float(np.linalg.norm(query)), np.finfo(np.float32).tiny)
        return 1.0 - (matrix @ query) / denominator

    def nearest(self, vector: np.ndarray | list[float], k: int = 10, exclude: Iterable[str] = (),
                metric: str = "cosine") -> list[tuple[DNARecord, float]]:
        """The `k` closest records (ascending distance), skipping model ids in `exclude`."""
        if not self._records or k <= 0:
            return []
        distances = self.distances(vector, metric).astype(np.float64)
        records = self._record_list
        excluded = list(set(exclude))
        if excluded:
            distances[np.isin(self._ids, excluded)] = np.inf
        k = min(k, len(records))
        top = np.argpartition(distances, k - 1)[:k]
        top = top[np.argsort(distances[top], kind="stable")]
        return [(records[i], float(distances[i])) for i in top if np.isfinite(distances[i])]

    # ---- persistence -----------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the store (each file atomically); stale record files of a previous save are removed."""
        directory = Path(directory)
        if not self.config:
            raise ReferenceStoreError("cannot save an empty reference store: it has no config yet")
        wanted = {record_path(*_key(r)): r for r in self._records.values()}
        for path, record in wanted.items():
            with atomic_path(directory / path) as tmp:
                tmp.write_bytes(record_bytes(record))
        if (directory / CONFIG_NAME).is_file():
            for old in (directory / "data").rglob("*.parquet"):
                if old.relative_to(directory).as_posix() not in wanted:
                    old.unlink()
        atomic_write_text(directory / CONFIG_NAME, json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        if self.lineage_table:
            atomic_write_text(directory / LINEAGE_NAME, lineage_csv(self.lineage_table))
        if self.calibration is not None:
            atomic_write_text(directory / CALIBRATION_NAME, json.dumps(self.calibration, indent=2) + "\n")
        atomic_write_text(directory / README_NAME, with_dataset_metadata(self.readme or self.dataset_card()))
        self.source = str(directory)
        return directory

    def dataset_card(self, attribution: str | None = None, repo_id: str | None = None) -> str:
        """A dataset card (README) that makes `datasets` read data/**/*.parquet as one table."""
        from .publish import render_template

        return render_template("reference_card.md.j2", config=self.config, n_records=len(self),
                               n_lineage=len(self.lineage_table), attribution=attribution, repo_id=repo_id)

    @classmethod
    def create(cls, directory: str | os.PathLike, records: Iterable[DNARecord],
               lineage: dict[str, dict[str, str]] | str | os.PathLike | None = None,
               calibration: dict | None = None, readme: str | None = None) -> ReferenceStore:
        """Build a store from records (+ lineage dict or CSV path, calibration, card) and save it to `directory`."""
        if lineage is not None and not isinstance(lineage, dict):
            lineage = read_lineage(lineage)
        store = cls(records, lineage=lineage, calibration=calibration, readme=readme)
        store.save(directory)
        return store

    @classmethod
    def load(cls, path_or_repo_id: str | os.PathLike, token: str | bool | None = None,
             revision: str | None = None) -> ReferenceStore:
        """Load a local store dir, or a Hub dataset repo (downloaded into the Hub cache at a pinned commit)."""
        path = Path(path_or_repo_id)
        if path.is_dir():
            return cls._load_dir(path)
        text = str(path_or_repo_id)
        if path.exists() or not _REPO_ID.match(text):
            raise ReferenceStoreError(f"reference {text} is neither a store directory nor a Hub dataset id")
        local, _ = hub.snapshot_repo(text, repo_type="dataset", revision=revision, token=token,
                                     allow_patterns=_STORE_PATTERNS)
        store = cls._load_dir(Path(local))
        store.source = text
        return store

    @classmethod
    def _load_dir(cls, directory: Path) -> ReferenceStore:
        config_file = directory / CONFIG_NAME
        if not config_file.is_file():
            raise ReferenceStoreError(f"{directory} is not a reference store: {CONFIG_NAME} is missing")
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ReferenceStoreError(f"{config_file} is not valid JSON: {err}") from None
        if not isinstance(config, dict) or not {"probe_hash", "encoder", "dim"} <= config.keys():
            raise ReferenceStoreError(f"{config_file} lacks probe_hash/encoder/dim")
        records = _read_record_files(sorted((directory / "data").rglob("*.parquet")), directory)
        for record in records:
            check_against_config(record, config, f"reference store {directory} ({record.model_id})")
        lineage = read_lineage(directory / LINEAGE_NAME) if (directory / LINEAGE_NAME).is_file() else {}
        calibration = None
        if (directory / CALIBRATION_NAME).is_file():
            try:
                calibration = json.loads((directory / CALIBRATION_NAME).read_text(encoding="utf-8"))
            except ValueError as err:
                raise ReferenceStoreError(f"{directory / CALIBRATION_NAME} is not valid JSON: {err}") from None
        readme = (directory / README_NAME).read_text(encoding="utf-8") if (directory / README_NAME).is_file() else None
        return cls(records, config=config, lineage=lineage, calibration=calibration, readme=readme,
                   source=str(directory))

    @classmethod
    def default(cls, probe_hash: str | None = None) -> ReferenceStore:
        """The embedded default store (the one whose probe hash matches, when given)."""
        dirs = default_store_dirs()
        if not dirs:
            raise ReferenceStoreError(f"no embedded reference store is installed under {DEFAULT_ROOT}")
        configs = {d: json.loads((d / CONFIG_NAME).read_text(encoding="utf-8")) for d in dirs}
        if probe_hash is None:  # the paper's probes, as many as a store holds
            paper = [d for d in dirs if str(configs[d].get("probe_set", "")).split(":")[0] == "paper600"]
            return cls.load(max(paper, key=lambda d: int(configs[d].get("n_probes") or 0)) if paper else dirs[0])
        for directory, config in configs.items():
            if config.get("probe_hash") == probe_hash:
                return cls.load(directory)
        known = ", ".join(f"{c.get('probe_set')} ({str(c.get('probe_hash'))[:12]})" for c in configs.values())
        raise ReferenceStoreError(f"no embedded reference store was built with probe hash {probe_hash[:12]}; "
                                  f"available: {known}")


_STORE_PATTERNS = [CONFIG_NAME, "data/**", LINEAGE_NAME, CALIBRATION_NAME, README_NAME]


def _read_record_files(files: list[Path], directory: Path) -> list[DNARecord]:
    """All records of a store's parquet files: one pyarrow dataset scan (fast), per file when that fails."""
    if not files:
        return []
    import pyarrow.dataset as ds

    try:
        rows = ds.dataset([str(f) for f in files], format="parquet", schema=record_schema()).to_table().to_pylist()
        return [DNARecord.from_dict(row) for row in rows]
    except Exception:  # a file that does not fit the schema: read one by one to name it in the error
        records = []
        for file in files:
            try:
                records += read_records(file)
            except RecordFileError as err:
                raise ReferenceStoreError(f"reference store {directory}: {err}") from None
        return records


def default_store_dirs() -> list[Path]:
    """Embedded reference stores shipped in the package (dirs under hf_dna/data/reference/ with hf-dna.json)."""
    if not DEFAULT_ROOT.is_dir():
        return []
    return sorted(d for d in DEFAULT_ROOT.iterdir() if (d / CONFIG_NAME).is_file())


# ---- Hub dataset: push / pull ----------------------------------------------------------------------------------
@dataclass
class PushResult:
    """Outcome of a push: the repo head after it, and which record paths were added, replaced or already there."""

    repo_id: str
    sha: str
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    committed: bool = False


def push(store_or_records: ReferenceStore | Iterable[DNARecord], repo_id: str, token: str | bool | None = None,
         overwrite: bool = False, attempts: int = 5, message: str | None = None) -> PushResult:
    """Push records (and a store's lineage/calibration) to a Hub dataset; create the repo and config when new.

    Identical records already there are skipped (no commit when nothing is new). A *different* record at an
    existing model+revision path raises `PushConflictError` unless `overwrite=True` (meant for your own model).
    Each commit carries the head it was planned against; when somebody else committed meanwhile, the repo is
    re-read and the push retried, up to `attempts` times.
    """
    store = store_or_records if isinstance(store_or_records, ReferenceStore) else None
    records = store.records if store else list(store_or_records)
    if not records:
        raise ReferenceStoreError("nothing to push: no records")
    check_compatible(records)
    for attempt in range(attempts):
        try:
            head = hub.head_sha(repo_id, repo_type="dataset", token=token)
        except RepoNotFoundError:
            hub.create_repo(repo_id, repo_type="dataset", token=token)
            head = hub.head_sha(repo_id, repo_type="dataset", token=token)
        files, result = _plan_push(repo_id, head, records, store, token, overwrite)
        if not files:
            result.sha = head
            return result
        summary = message or f"hf-dna: add {len(result.added)} record(s)" + (
            f", replace {len(result.replaced)}" if result.replaced else "")
        try:
            commit = hub.commit_files(repo_id, files, summary, repo_type="dataset", token=token, parent_commit=head)
        except StaleParentError:  # somebody else committed meanwhile: back off a little, re-read, re-plan
            time.sleep(random.uniform(0, min(0.05 * 2 ** attempt, 1.0)))
            continue
        result.sha, result.committed = commit.sha, True
        return result
    raise PushConflictError(f"push to {repo_id} gave up after {attempts} attempts: the repo kept changing")


def _plan_push(repo_id: str, head: str, records: list[DNARecord], store: ReferenceStore | None,
               token: str | bool | None, overwrite: bool) -> tuple[dict[str, bytes | str], PushResult]:
    """Files to commit on top of `head`, and the per-record outcome; raises on incompatibility or conflict."""
    existing = hub.list_repo_entries(repo_id, repo_type="dataset", revision=head, token=token)
    result = PushResult(repo_id=repo_id, sha=head)
    files: dict[str, bytes | str] = {}

    def remote_text(name: str) -> str:
        path = hub.download_file(repo_id, name, repo_type="dataset", revision=head, token=token)
        return Path(path).read_text(encoding="utf-8")

    if CONFIG_NAME in existing:
        try:
            config = json.loads(remote_text(CONFIG_NAME))
        except ValueError:
            raise ReferenceStoreError(f"{repo_id}/{CONFIG_NAME} is not valid JSON") from None
    else:
        config = config_for(records[0])
        files[CONFIG_NAME] = json.dumps(config, indent=2, sort_keys=True) + "\n"
    for record in records:
        check_against_config(record, config, f"Hub reference {repo_id}")
    for record in records:
        path, data = record_path(record.model_id, record.revision), record_bytes(record)
        if path in existing:
            if hub.content_matches(existing[path], data):  # same bytes: no download needed
                result.unchanged.append(path)
                continue
            remote = read_records(hub.download_file(repo_id, path, repo_type="dataset", revision=head, token=token))
            if [r.to_dict() for r in remote] == [record.to_dict()]:  # same record, other serialisation
                result.unchanged.append(path)
                continue
            if not overwrite:
                raise PushConflictError(f"{repo_id} already holds a different record for {record.model_id}@"
                                        f"{record.revision} ({path}): refusing to overwrite it (use overwrite for "
                                        "your own model)")
            result.replaced.append(path)
        else:
            result.added.append(path)
        files[path] = data
    if store is not None and store.lineage_table:
        remote_lineage = {}
        if LINEAGE_NAME in existing:
            local_copy = hub.download_file(repo_id, LINEAGE_NAME, repo_type="dataset", revision=head, token=token)
            remote_lineage = read_lineage(local_copy)
        merged = {**store.lineage_table, **remote_lineage}  # never rewrite rows somebody else pushed
        if merged != remote_lineage:
            files[LINEAGE_NAME] = lineage_csv(merged)
    if store is not None and store.calibration is not None and (overwrite or CALIBRATION_NAME not in existing):
        files[CALIBRATION_NAME] = json.dumps(store.calibration, indent=2) + "\n"
    if README_NAME not in existing and files:
        card_store = store or ReferenceStore(config=config)
        files[README_NAME] = with_dataset_metadata(card_store.readme or card_store.dataset_card(repo_id=repo_id))
    return files, result


def pull(repo_id: str, local_dir: str | os.PathLike, token: str | bool | None = None,
         revision: str | None = None) -> ReferenceStore:
    """Download a Hub reference dataset into `local_dir` and load it."""
    hub.snapshot_repo(repo_id, local_dir=local_dir, repo_type="dataset", revision=revision, token=token,
                      allow_patterns=_STORE_PATTERNS)
    store = ReferenceStore._load_dir(Path(local_dir))
    store.source = repo_id
    return store
