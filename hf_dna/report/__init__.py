"""Views over many records and verdicts: the governance report (`governance`), trees (`tree`), figures and maps
(`figures`, `mapping`), distance matrices (`compare`)."""
from __future__ import annotations

from .governance import (
                         Report,
                         ReportEntry,
                         audit_entries,
                         build_report,
                         entries_from_reference,
                         read_verdicts,
                         write_report,
)

__all__ = ["Report", "ReportEntry", "audit_entries", "build_report", "entries_from_reference", "read_verdicts",
           "write_report"]
