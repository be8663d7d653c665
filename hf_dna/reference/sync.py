"""Share a reference store through a Hub dataset: push records (safely) and pull a store.

`push` is idempotent (an identical record makes no commit), race-safe (commits carry `parent_commit`; a stale
parent is re-read and retried), never rewrites another model's record, and refuses records whose probe hash,
encoder, dim, seed or projection differ from the repo's `hf-dna.json`.
"""
from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import hub
from ..errors import (
    PushConflictError,
    ReferenceStoreError,
    RepoNotFoundError,
    StaleParentError,
)
from ..evidence.lineage import lineage_csv, read_lineage
from ..pipeline.record import (
    DNARecord,
    check_compatible,
    read_records,
)
from . import layout
from .store import ReferenceStore


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

    if layout.CONFIG_NAME in existing:
        try:
            config = json.loads(remote_text(layout.CONFIG_NAME))
        except ValueError:
            raise ReferenceStoreError(f"{repo_id}/{layout.CONFIG_NAME} is not valid JSON") from None
    else:
        config = layout.config_for(records[0])
        files[layout.CONFIG_NAME] = json.dumps(config, indent=2, sort_keys=True) + "\n"
    for record in records:
        layout.check_against_config(record, config, f"Hub reference {repo_id}")
    for record in records:
        path, data = layout.record_path(record.model_id, record.revision), layout.record_bytes(record)
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
        if layout.LINEAGE_NAME in existing:
            local_copy = hub.download_file(repo_id, layout.LINEAGE_NAME, repo_type="dataset", revision=head, token=token)
            remote_lineage = read_lineage(local_copy)
        merged = {**store.lineage_table, **remote_lineage}  # never rewrite rows somebody else pushed
        if merged != remote_lineage:
            files[layout.LINEAGE_NAME] = lineage_csv(merged)
    if store is not None and store.calibration is not None and (overwrite or layout.CALIBRATION_NAME not in existing):
        files[layout.CALIBRATION_NAME] = json.dumps(store.calibration, indent=2) + "\n"
    if layout.README_NAME not in existing and files:
        card_store = store or ReferenceStore(config=config)
        files[layout.README_NAME] = layout.with_dataset_metadata(card_store.readme or card_store.dataset_card(repo_id=repo_id))
    return files, result


def pull(repo_id: str, local_dir: str | os.PathLike, token: str | bool | None = None,
         revision: str | None = None) -> ReferenceStore:
    """Download a Hub reference dataset into `local_dir` and load it."""
    hub.snapshot_repo(repo_id, local_dir=local_dir, repo_type="dataset", revision=revision, token=token,
                      allow_patterns=layout.STORE_PATTERNS)
    store = ReferenceStore._load_dir(Path(local_dir))
    store.source = repo_id
    return store
