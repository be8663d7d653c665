"""Where a scan writes, and what is already there.

A local directory gets the reference-store layout (`hf_dna.reference.layout`: ``hf-dna.json``,
``data/<org>/<name>/<revision>.parquet``, ``README.md``, so ``--reference OUT_DIR`` reads it) plus
``verdicts/<org>/<name>.json``, every file written atomically. A Hub dataset gets its records through
`hf_dna.reference.sync.push` (idempotent, race-safe, never rewrites another model's record) and the verdicts in
a commit beside them; pushes are batched (`flush_interval_s`) so a large catalogue does not make a commit per model.

The skip check ("a record for this model at this revision is there") and the writes use the same paths, and
only the driver writes, once per finished model: a task Ray retries after its worker died is never written twice.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .. import hub
from .._io import atomic_path, atomic_write_text
from ..errors import (
    IncompatibleRecordsError,
    InvalidInputError,
    PushConflictError,
    ReferenceStoreError,
    RepoNotFoundError,
)
from ..pipeline.record import DNARecord, read_records
from ..reference.layout import (
    CONFIG_NAME,
    README_NAME,
    check_against_config,
    config_for,
    record_bytes,
    record_path,
    with_dataset_metadata,
)
from ..reference.store import ReferenceStore
from ..reference.sync import push

VERDICTS_DIR = "verdicts"


def verdict_path(model_id: str) -> str:
    """``verdicts/<org>/<name>.json`` (``_`` when the id has no org), beside the store's ``data/``."""
    org, _, name = model_id.rpartition("/")
    return f"{VERDICTS_DIR}/{org or '_'}/{name.replace(':', '--')}.json"


def check_config(config: dict[str, Any] | None, expected: dict[str, Any], where: str) -> None:
    """Refuse an output whose config was made with other probes, encoder, dim or projection seed."""
    for name, value in expected.items():
        if config and name in config and config[name] != value:
            raise IncompatibleRecordsError(f"{where} holds records made with another {name} ({config[name]!r}, "
                                           f"this scan: {value!r}): pick another output")


def _verdict_revision(text: str | None) -> str | None:
    try:
        return (json.loads(text or "null") or {}).get("record", {}).get("revision")
    except (ValueError, AttributeError):
        return None


class LocalOutput:
    """A local reference-store-layout directory, plus verdicts."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.name = str(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise InvalidInputError(f"{directory} exists and is not a directory")
        self.config: dict[str, Any] | None = None
        config_file = self.directory / CONFIG_NAME
        if config_file.is_file():
            try:
                self.config = json.loads(config_file.read_text(encoding="utf-8"))
            except ValueError as err:
                raise ReferenceStoreError(f"{config_file} is not valid JSON: {err}") from None

    def check(self, expected: dict[str, Any]) -> None:
        check_config(self.config, expected, self.name)

    def has_record(self, model_id: str, revision: str) -> bool:
        return (self.directory / record_path(model_id, revision)).is_file()

    def read_record(self, model_id: str, revision: str) -> DNARecord:
        return read_records(self.directory / record_path(model_id, revision))[0]

    def verdict_revision(self, model_id: str) -> str | None:
        """The record revision the saved verdict of `model_id` was made from (None: no verdict)."""
        path = self.directory / verdict_path(model_id)
        return _verdict_revision(path.read_text(encoding="utf-8")) if path.is_file() else None

    def write_record(self, record: DNARecord) -> str:
        if self.config is None:
            self.config = config_for(record)
            atomic_write_text(self.directory / CONFIG_NAME, json.dumps(self.config, indent=2, sort_keys=True) + "\n")
            if not (self.directory / README_NAME).is_file():
                card = ReferenceStore(config=self.config).dataset_card()
                atomic_write_text(self.directory / README_NAME, with_dataset_metadata(card))
        check_against_config(record, self.config, f"the scan output {self.name}")
        path = record_path(record.model_id, record.revision)
        with atomic_path(self.directory / path) as tmp:
            tmp.write_bytes(record_bytes(record))
        return path

    def write_verdict(self, model_id: str, verdict: dict[str, Any]) -> str:
        path = verdict_path(model_id)
        atomic_write_text(self.directory / path, json.dumps(verdict, indent=2, sort_keys=True) + "\n")
        return path

    def finished_one(self) -> dict[str, str]:
        return {}

    def close(self) -> dict[str, str]:
        return {}


class HubOutput:
    """A Hub dataset repo: records pushed safely, verdicts committed beside them, both in batches."""

    def __init__(self, repo_id: str, token: str | bool | None = None, flush_interval_s: float = 60.0):
        self.repo_id, self.token, self.flush_interval_s = repo_id, token, flush_interval_s
        self.name = f"Hub dataset {repo_id}"
        try:
            self.existing = hub.list_repo_entries(repo_id, repo_type="dataset", token=token)
        except RepoNotFoundError:
            self.existing = {}
        self.config: dict[str, Any] | None = None
        if CONFIG_NAME in self.existing:
            try:
                self.config = json.loads(hub.read_text(repo_id, CONFIG_NAME, "dataset", token=token) or "{}")
            except ValueError:
                raise ReferenceStoreError(f"{repo_id}/{CONFIG_NAME} is not valid JSON") from None
        self._records: list[DNARecord] = []
        self._verdicts: dict[str, str] = {}
        self._last_flush = time.monotonic()

    def check(self, expected: dict[str, Any]) -> None:
        check_config(self.config, expected, self.name)

    def has_record(self, model_id: str, revision: str) -> bool:
        return record_path(model_id, revision) in self.existing

    def read_record(self, model_id: str, revision: str) -> DNARecord:
        path = hub.download_file(self.repo_id, record_path(model_id, revision), "dataset", token=self.token)
        return read_records(path)[0]

    def verdict_revision(self, model_id: str) -> str | None:
        path = verdict_path(model_id)
        if path not in self.existing:
            return None
        return _verdict_revision(hub.read_text(self.repo_id, path, "dataset", token=self.token))

    def write_record(self, record: DNARecord) -> str:
        if self.config is not None:
            check_against_config(record, self.config, self.name)
        self._records.append(record)
        return record_path(record.model_id, record.revision)

    def write_verdict(self, model_id: str, verdict: dict[str, Any]) -> str:
        path = verdict_path(model_id)
        self._verdicts[path] = json.dumps(verdict, indent=2, sort_keys=True) + "\n"
        return path

    def finished_one(self) -> dict[str, str]:
        """After each finished model: push what is buffered when `flush_interval_s` has passed."""
        if time.monotonic() - self._last_flush < self.flush_interval_s:
            return {}
        return self.flush()

    def close(self) -> dict[str, str]:
        return self.flush()

    def flush(self) -> dict[str, str]:
        """Push the buffered records (one commit), then the verdicts (one commit); model_id -> why, for records
        the repo refused (another, different record at the same model+revision, pushed meanwhile)."""
        records, verdicts = self._records, self._verdicts
        self._records, self._verdicts, self._last_flush = [], {}, time.monotonic()
        refused: dict[str, str] = {}
        if records:
            try:
                push(records, self.repo_id, token=self.token, message=f"hf-dna scan: {len(records)} record(s)")
            except PushConflictError:  # one of them collides: push one by one, keep the others
                for record in records:
                    try:
                        push([record], self.repo_id, token=self.token, message="hf-dna scan: 1 record")
                    except PushConflictError as err:
                        refused[record.model_id] = str(err)
            if self.config is None:
                self.config = config_for(records[0])
            self.existing.update({record_path(r.model_id, r.revision): {} for r in records
                                  if r.model_id not in refused})
        refused_paths = {verdict_path(m) for m in refused}
        verdicts = {p: t for p, t in verdicts.items() if p not in refused_paths}
        if verdicts:
            hub.commit_files(self.repo_id, verdicts, f"hf-dna scan: {len(verdicts)} verdict(s)",
                             repo_type="dataset", token=self.token)
            self.existing.update({p: {} for p in verdicts})
        return refused
