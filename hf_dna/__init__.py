"""hf-dna: LLM DNA (RepTrace) extraction and model-card lineage audits for the Hugging Face Hub.

The package follows the data: `pipeline` (probes -> responses -> embeddings -> DNA record), `evidence` (what a
record carries beside the DNA and how two records compare), `reference` (stores of known models), `audit`
(verdicts and publishing), `report` (governance reports, trees, maps), `cli`; `hub` is every Hub call.
"""
from __future__ import annotations

from . import _compat
from ._version import __version__
from .errors import HfDnaError
from .pipeline.dna import DEFAULT_DIM, DEFAULT_SEED, PROJECTION, project
from .pipeline.probes import ProbeSet, load_probe_set
from .pipeline.record import DNARecord, read_records, write_records

_compat.install()

__all__ = [
    "DEFAULT_DIM",
    "DEFAULT_SEED",
    "DNARecord",
    "HfDnaError",
    "PROJECTION",
    "ProbeSet",
    "__version__",
    "load_probe_set",
    "project",
    "read_records",
    "write_records",
]
