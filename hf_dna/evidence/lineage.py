"""Known lineage labels (``lineage.csv``): what the relation model learns from and the audit explains with."""
from __future__ import annotations

import csv
import io
import os
import re
from typing import Any

from ..errors import ReferenceStoreError

LINEAGE_COLUMNS = ("model_id", "family", "parent", "relation", "confidence", "note")
#: label confidences good enough to learn from and to judge with
GOOD_CONFIDENCE = ("high", "medium")


def read_lineage(lineage: Any) -> dict[str, dict[str, str]]:
    """``{model_id: {family, parent, relation, confidence, note}}`` from a lineage CSV path (extra columns
    allowed), a list of row dicts, or such a dict (returned as is)."""
    if isinstance(lineage, dict):
        return lineage
    if isinstance(lineage, (str, os.PathLike)):
        try:
            with open(lineage, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except OSError as err:
            raise ReferenceStoreError(f"cannot read lineage file {lineage}: {err.strerror}") from None
        if rows and "model_id" not in rows[0]:
            raise ReferenceStoreError(f"lineage file {lineage} has no model_id column")
    else:
        rows = list(lineage)
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.get("model_id"):
            out.setdefault(row["model_id"], {k: (row.get(k) or "") for k in LINEAGE_COLUMNS[1:]})
    return out


def lineage_csv(lineage: dict[str, dict[str, str]]) -> str:
    """Lineage rows as CSV text with the standard columns, sorted by model id."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LINEAGE_COLUMNS)
    for model_id in sorted(lineage):
        writer.writerow([model_id, *(lineage[model_id].get(k) or "" for k in LINEAGE_COLUMNS[1:])])
    return buffer.getvalue()


def labelled_family(info: dict[str, str] | None) -> str:
    """The family to learn from ('' for unlabelled, unknown or low-confidence rows)."""
    if not info or info.get("confidence") not in GOOD_CONFIDENCE or info.get("family") in ("", "unknown"):
        return ""
    return info["family"]


#: an API model id's routing variant (OpenRouter's ``:free``, ``:beta``, ``:thinking``, ...): the same model served
#: another way. Hub repo ids cannot hold a colon, so only API ids have one.
_VARIANT = re.compile(r":[A-Za-z0-9._-]+$")


def same_model(a: str, b: str) -> bool:
    """Whether two model ids name the same model: equal, or equal but for an API routing variant suffix
    (``stepfun/step-3.5-flash`` and ``stepfun/step-3.5-flash:free``)."""
    return a == b or _VARIANT.sub("", a).lower() == _VARIANT.sub("", b).lower()
