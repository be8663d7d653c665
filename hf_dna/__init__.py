"""hf-dna: LLM DNA (RepTrace) extraction and model-card lineage audits for the Hugging Face Hub."""
from __future__ import annotations

__version__ = "0.1.0"

from .dna import DEFAULT_DIM, DEFAULT_SEED, PROJECTION, project  # noqa: E402
from .errors import HfDnaError  # noqa: E402
from .probes import ProbeSet, load_probe_set  # noqa: E402
from .record import DNARecord, read_records, write_records  # noqa: E402

__all__ = [
    "DEFAULT_DIM",
    "DEFAULT_SEED",
    "DNARecord",
    "HfDnaError",
    "PROJECTION",
    "ProbeSet",
    "load_probe_set",
    "project",
    "read_records",
    "write_records",
]
