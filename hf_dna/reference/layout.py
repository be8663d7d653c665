"""The reference store layout, the same in a local dir and in a Hub dataset repo.

Layout (identical in a local dir and in the Hub dataset repo, readable by `datasets.load_dataset(repo)`):

    hf-dna.json                           config: probe_set, probe_hash, n_probes, encoder, encoder_revision, dim,
                                          projection_seed, projection, format_version
    data/<org>/<name>/<revision>.parquet  one DNARecord row per model+revision ("_/<name>" for ids without org)
    lineage.csv                           optional: model_id,family,parent,relation,confidence,note
    calibration.json                      optional, opaque here (fitted by the calibration code)
    README.md                             dataset card
"""
from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any

from .. import hub
from ..errors import (
    IncompatibleRecordsError,
)
from ..pipeline.record import (
    COMPAT_FIELDS,
    DNARecord,
    records_to_table,
    write_parquet,
)

CONFIG_NAME = "hf-dna.json"
LINEAGE_NAME = "lineage.csv"
CALIBRATION_NAME = "calibration.json"
README_NAME = "README.md"
#: key of a store's calibration that holds its own measured relative decision point (bench/audit_eval.py
#: --write-operating-point): ``{"relative_posterior": p, "rule": ..., "measured": ...}``, read by the audit
OPERATING_POINT = "operating_point"
#: key of a store's calibration that lets an adaptive audit stop after the probes of a smaller store nested in it
#: (its probes are this store's first k; bench/adaptive_eval.py --write-stop-point):
#: ``{"probe_hash": ..., "n_probes": k, "family_confidence_below": b, "rule": ..., "measured": ...}``
EARLY_STOP = "early_stop"
FORMAT_VERSION = 1
CONFIG_FIELDS = ("probe_set", "probe_hash", "n_probes", "encoder", "encoder_revision", "dim", "projection_seed",
                 "projection")




def record_path(model_id: str, revision: str) -> str:
    """Path of a record in a store: ``data/<org>/<name>/<revision>.parquet`` (``_`` when the id has no org)."""
    org, _, name = model_id.rpartition("/")
    safe_revision = (revision or "local").replace("/", "--")
    safe_name = name.replace(":", "--")  # API ids such as `org/model:free`; ':' is not allowed in Windows paths
    # normalised ("a//b" -> "a/b"): ids such as local paths must map to the file name the store really has
    return PurePosixPath(f"data/{org or '_'}/{safe_name}/{safe_revision}.parquet").as_posix()


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


STORE_PATTERNS = [CONFIG_NAME, "data/**", LINEAGE_NAME, CALIBRATION_NAME, README_NAME]


