"""`ReferenceStore`: a set of comparable DNA records plus their known lineage, stored locally or as a Hub dataset
(layout: `hf_dna.reference.layout`)."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .. import hub
from .._io import atomic_path, atomic_write_text
from .._templates import render_template
from ..errors import (
    IncompatibleRecordsError,
    RecordFileError,
    ReferenceStoreError,
)
from ..evidence.lineage import LINEAGE_COLUMNS, lineage_csv, read_lineage
from ..pipeline.probes import ProbeSet
from ..pipeline.record import (
    DNARecord,
    check_compatible,
    read_records,
    record_schema,
)
from .layout import (
    CALIBRATION_NAME,
    CONFIG_NAME,
    LINEAGE_NAME,
    README_NAME,
    STORE_PATTERNS,
    check_against_config,
    config_for,
    record_bytes,
    record_path,
    with_dataset_metadata,
)

METRICS = ("cosine", "euclidean")
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data" / "reference"
_REPO_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


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
                                     allow_patterns=STORE_PATTERNS)
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

    @classmethod
    def default_for(cls, probe_set: ProbeSet) -> ReferenceStore:
        """The embedded store built with `probe_set`, else the one built with its longest head (the first k
        probes: answers to all 600 paper probes are audited on the first 100 of an embedded store)."""
        heads = []
        for directory in default_store_dirs():
            config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
            n = int(config.get("n_probes") or 0)
            if 0 < n <= len(probe_set) and probe_set.head(n).hash == config.get("probe_hash"):
                heads.append((n, directory))
        if not heads:
            return cls.default(probe_hash=probe_set.hash)  # raises, naming what is available
        return cls.load(max(heads)[1])


def probes_for_store(store: ReferenceStore, probe_set: ProbeSet) -> ProbeSet | None:
    """`probe_set` itself when `store` was built with it, its first k probes when the store was built with
    those, else None (not comparable)."""
    n, wanted = int(store.config.get("n_probes") or 0), store.config.get("probe_hash")
    if probe_set.hash == wanted:
        return probe_set
    if 0 < n < len(probe_set) and probe_set.head(n).hash == wanted:
        return probe_set.head(n)
    return None


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
