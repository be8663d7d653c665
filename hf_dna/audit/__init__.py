"""The audit: a model's DNA record and declared lineage against a reference -> a `Verdict` with flags.

`run.audit` is the entry point; `declared` reads what the card says, `candidates` scores the reference with its
relation model, `decision` fits the decision points on the reference, `judge` turns disagreements into flags,
`render` writes a verdict as text / Markdown / GitHub annotations, `publish` puts it on the Hub.
"""
from __future__ import annotations

from .decision import RELATIVE_POSTERIOR, DecisionPoints, decision_points
from .declared import declared_lineage, read_model_files
from .judge import judge
from .run import DEFAULT_PROBES, audit
from .verdict import FLAG_CODES, RELATIONS, Declared, Flag, Neighbour, Verdict

__all__ = ["DEFAULT_PROBES", "FLAG_CODES", "RELATIONS", "RELATIVE_POSTERIOR", "DecisionPoints", "Declared", "Flag",
           "Neighbour", "Verdict", "audit", "decision_points", "declared_lineage", "judge", "read_model_files"]
