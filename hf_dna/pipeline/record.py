"""`DNARecord`: one model's DNA plus the provenance needed to compare it; JSON and parquet I/O (atomic)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, atomic_write_text
from .._version import __version__
from ..errors import IncompatibleRecordsError, RecordFileError

#: fields that must match for two DNAs to be comparable
COMPAT_FIELDS = ("probe_hash", "encoder", "dim", "projection_seed", "projection")


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _version() -> str:
    return __version__


@dataclass
class DNARecord:
    """A model's DNA vector and everything needed to reproduce and compare it."""

    model_id: str
    dna: list[float]
    probe_set: str
    probe_hash: str
    n_probes: int
    encoder: str
    projection_seed: int
    projection: str
    revision: str = "local"
    encoder_revision: str | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    declared_base_models: list[str] = field(default_factory=list)
    declared_relation: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    hf_dna_version: str = field(default_factory=_version)
    created_at: str = field(default_factory=_now)
    dim: int = 0

    def __post_init__(self) -> None:
        self.dna = [float(x) for x in np.asarray(self.dna, dtype=np.float32)]
        self.dim = len(self.dna)

    @property
    def vector(self) -> np.ndarray:
        """The DNA as a float32 numpy array."""
        return np.asarray(self.dna, dtype=np.float32)

    @property
    def compat_key(self) -> tuple:
        return tuple(getattr(self, name) for name in COMPAT_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DNARecord:
        names = {f.name for f in fields(cls)}
        missing = {"model_id", "dna", "probe_hash", "encoder", "projection_seed"} - data.keys()
        if missing:
            raise RecordFileError(f"DNA record lacks field(s): {', '.join(sorted(missing))}")
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs.setdefault("probe_set", "")
        kwargs.setdefault("n_probes", 0)
        kwargs.setdefault("projection", "")
        for key in ("generation", "evidence"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = json.loads(kwargs[key] or "{}")
        kwargs["declared_base_models"] = list(kwargs.get("declared_base_models") or [])
        return cls(**kwargs)

    def to_row(self) -> dict[str, Any]:
        """A flat row for parquet / `datasets`: nested dicts become JSON strings."""
        row = self.to_dict()
        row["generation"] = json.dumps(self.generation, sort_keys=True)
        row["evidence"] = json.dumps(self.evidence, sort_keys=True)
        return row


def check_compatible(records: list[DNARecord]) -> None:
    """Raise `IncompatibleRecordsError` (one line, naming the first differing field) unless all records match."""
    if not records:
        return
    first = records[0]
    for other in records[1:]:
        for name in COMPAT_FIELDS:
            a, b = getattr(first, name), getattr(other, name)
            if a != b:
                raise IncompatibleRecordsError(
                    f"{other.model_id} and {first.model_id} are not comparable: {name} differs ({b!r} vs {a!r})"
                )


def record_schema():
    """The one parquet schema of every record file: optional fields keep their type even when empty, so
    pyarrow and `datasets` read any mix of record files as one table."""
    import pyarrow as pa

    text, whole = pa.string(), pa.int64()
    return pa.schema([
        ("model_id", text), ("dna", pa.list_(pa.float32())), ("probe_set", text), ("probe_hash", text),
        ("n_probes", whole), ("encoder", text), ("projection_seed", whole), ("projection", text),
        ("revision", text), ("encoder_revision", text), ("generation", text),
        ("declared_base_models", pa.list_(text)), ("declared_relation", text), ("evidence", text),
        ("hf_dna_version", text), ("created_at", text), ("dim", whole),
    ])


def records_to_table(records: list[DNARecord]):
    """A pyarrow Table with one row per record, in `record_schema()`."""
    import pyarrow as pa

    return pa.Table.from_pylist([r.to_row() for r in records], schema=record_schema())


def write_parquet(table, sink) -> None:
    """Write a pyarrow table the one way hf-dna writes parquet: zstd, no column statistics (small, deterministic)."""
    import pyarrow.parquet as pq

    pq.write_table(table, sink, compression="zstd", write_statistics=False)


def write_records(records: list[DNARecord], path: str | os.PathLike) -> Path:
    """Write records atomically: ``.parquet`` as a table, ``.jsonl`` one object a line, anything else as JSON
    (one object, or a list)."""
    path = Path(path)
    if path.suffix == ".parquet":
        with atomic_path(path) as tmp:
            write_parquet(records_to_table(records), tmp)
    elif path.suffix == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records))
    else:
        atomic_write_text(path, dumps_records(records) + "\n")
    return path


def dumps_records(records: list[DNARecord]) -> str:
    """JSON text: a single object for one record, else a list."""
    payload = [r.to_dict() for r in records]
    return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, ensure_ascii=False)


def read_records(path: str | os.PathLike) -> list[DNARecord]:
    """Read records from a JSON / JSONL / parquet file, or every such file below a directory."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in {".json", ".jsonl", ".parquet"} and p.is_file())
        if not files:
            raise RecordFileError(f"no DNA record files (.json, .jsonl, .parquet) under {path}")
        return [rec for f in files for rec in read_records(f)]
    if not path.is_file():
        raise RecordFileError(f"no such record file: {path}")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        elif path.suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data if isinstance(data, list) else [data]
    except Exception as err:  # pyarrow / json / unicode errors: all mean "not a record file"
        raise RecordFileError(f"cannot read DNA records from {path}: {type(err).__name__}: {err}") from None
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise RecordFileError(f"{path} holds no DNA records")
    return [DNARecord.from_dict(r) for r in rows]
