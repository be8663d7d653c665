"""Publishing audit findings: a model-card section opened as a PR, and a findings row in a Hub dataset.

The card section is rendered from `templates/card_section.md.j2` (Jinja2, as huggingface_hub's ModelCard does) and
sits between `<!-- hf-dna:start -->` and `<!-- hf-dna:end -->`: re-running replaces that section only, never
duplicates it and never touches the rest of the card. A verdict is the audit's JSON dict: `model`, `declared`
{base_models, relation}, `nearest` [{model_id, distance, probability, family}], `flags` [{code, message, evidence}],
`record` (DNARecord dict).
"""
from __future__ import annotations

import io
import json
import re
from typing import Any

from .. import hub
from .._templates import render_template
from ..errors import InvalidInputError
from ..pipeline.record import write_parquet

START_MARKER = "<!-- hf-dna:start -->"
END_MARKER = "<!-- hf-dna:end -->"
PR_TITLE = "hf-dna: lineage audit section for the model card"
_SECTION = re.compile(re.escape(START_MARKER) + r".*?" + re.escape(END_MARKER) + r"\n?", re.DOTALL)


def _normalised(verdict: dict[str, Any]) -> dict[str, Any]:
    """The verdict with every key the templates read present."""
    if not isinstance(verdict, dict) or not verdict.get("model"):
        raise InvalidInputError("a verdict must be a dict with at least a 'model' key")
    declared = verdict.get("declared") or {}
    record = verdict.get("record") or None
    return {
        "model": verdict["model"],
        "revision": verdict.get("revision") or (record or {}).get("revision"),
        "declared": {"base_models": list(declared.get("base_models") or []), "relation": declared.get("relation")},
        "nearest": [{"model_id": n.get("model_id"), "distance": float(n.get("distance", float("nan"))),
                     "probability": n.get("probability"), "family": n.get("family"),
                     "weights": n.get("weights"), "weight_similarity": n.get("weight_similarity")}
                    for n in verdict.get("nearest") or []],
        "flags": [{"code": f.get("code"), "message": f.get("message", ""), "evidence": f.get("evidence")}
                  for f in verdict.get("flags") or []],
        "record": record,
        "evidence": dict(verdict.get("evidence") or {}),
    }


def render_card_section(verdict: dict[str, Any]) -> str:
    """The hf-dna model-card section for a verdict, markers included."""
    body = re.sub(r"\n{3,}", "\n\n", render_template("card_section.md.j2", **_normalised(verdict)).strip())
    return f"{START_MARKER}\n{body}\n{END_MARKER}\n"


def card_with_section(card_text: str | None, section: str) -> str:
    """The card with hf-dna's section replaced (first occurrence kept, duplicates dropped) or appended."""
    if not card_text:
        return section
    if _SECTION.search(card_text):
        first = True

        def replace(_match: re.Match) -> str:
            nonlocal first
            keep, first = (section if first else ""), False
            return keep

        return _SECTION.sub(replace, card_text)
    separator = "" if card_text.endswith("\n\n") else ("\n" if card_text.endswith("\n") else "\n\n")
    return f"{card_text}{separator}{section}"


def open_card_pr(repo_id: str, verdict: dict[str, Any], token: str | bool | None = None) -> str:
    """Open a PR on the model repo that adds/updates hf-dna's card section; returns the PR URL.

    When an open hf-dna PR already proposes exactly this card, its URL is returned and no new PR is opened;
    when the card on main already holds exactly this section, the card's URL is returned.
    """
    current = hub.read_text(repo_id, "README.md", token=token)
    card = card_with_section(current if current is not None else f"# {repo_id}\n", render_card_section(verdict))
    if current == card:  # already merged: nothing to propose (not an error: CI re-runs must stay green)
        return f"{hub.endpoint()}/{repo_id}/blob/main/README.md"
    for discussion in hub.list_discussions(repo_id, token=token):
        if discussion["is_pull_request"] and discussion["status"] == "open" and discussion["title"] == PR_TITLE:
            proposed = hub.read_text(repo_id, "README.md", revision=f"refs/pr/{discussion['num']}", token=token)
            if proposed == card:
                return discussion["url"]
    description = ("This PR adds (or updates) the lineage audit section written by hf-dna, between the "
                   f"`{START_MARKER}` and `{END_MARKER}` markers. The rest of the card is unchanged.\n\n"
                   + findings_summary(verdict))
    return hub.open_pr_with_file(repo_id, "README.md", card, PR_TITLE, description, token=token)


def findings_summary(verdict: dict[str, Any]) -> str:
    """One line of text summarising a verdict (stored in the findings row)."""
    return render_template("findings_summary.txt.j2", **_normalised(verdict)).strip()


def findings_path(model_id: str, revision: str | None) -> str:
    """Where a model+revision's findings row lives in a findings dataset."""
    org, _, name = model_id.rpartition("/")
    return f"findings/{org or '_'}/{name}/{(revision or 'local').replace('/', '--')}.parquet"


def findings_schema():
    """One explicit schema for every findings file, so empty/None fields never change a column's type."""
    import pyarrow as pa

    text, number = pa.string(), pa.float64()
    return pa.schema([("model_id", text), ("revision", text), ("summary", text), ("flags", pa.list_(text)),
                      ("n_flags", pa.int64()), ("declared_base_models", pa.list_(text)), ("declared_relation", text),
                      ("nearest_model", text), ("nearest_distance", number), ("nearest_probability", number),
                      ("flags_json", text), ("nearest_json", text), ("probe_hash", text), ("encoder", text),
                      ("dim", pa.int64()), ("hf_dna_version", text)])


def findings_row(verdict: dict[str, Any]) -> dict[str, Any]:
    """A flat row for the findings dataset (nested parts as JSON strings)."""
    v = _normalised(verdict)
    record = v["record"] or {}
    top = v["nearest"][0] if v["nearest"] else {}
    return {
        "model_id": v["model"], "revision": v["revision"] or "local",
        "summary": findings_summary(verdict),
        "flags": [f["code"] for f in v["flags"]], "n_flags": len(v["flags"]),
        "declared_base_models": v["declared"]["base_models"], "declared_relation": v["declared"]["relation"],
        "nearest_model": top.get("model_id"), "nearest_distance": top.get("distance"),
        "nearest_probability": top.get("probability"),
        "flags_json": json.dumps(v["flags"], sort_keys=True, default=str),
        "nearest_json": json.dumps(v["nearest"], sort_keys=True, default=str),
        "probe_hash": record.get("probe_hash"), "encoder": record.get("encoder"), "dim": record.get("dim"),
        "hf_dna_version": record.get("hf_dna_version"),
    }


def push_findings_row(repo_id: str, verdict: dict[str, Any], token: str | bool | None = None) -> str:
    """Write a verdict's findings row to a findings dataset (created when new); returns the path in the repo.

    One file per model+revision, so concurrent audits of different models never touch each other's files;
    a re-audit of the same model+revision replaces its own row.
    """
    import pyarrow as pa

    row = findings_row(verdict)
    buffer = io.BytesIO()
    write_parquet(pa.Table.from_pylist([row], schema=findings_schema()), buffer)
    path = findings_path(row["model_id"], row["revision"])
    hub.create_repo(repo_id, repo_type="dataset", token=token)
    files: dict[str, bytes | str] = {path: buffer.getvalue()}
    if "README.md" not in hub.list_repo_files(repo_id, repo_type="dataset", token=token):
        files["README.md"] = render_template("findings_card.md.j2", repo_id=repo_id)
    hub.commit_files(repo_id, files, f"hf-dna: findings for {row['model_id']}", repo_type="dataset", token=token)
    return path


#: name used by the audit CLI's markdown output
render_section = render_card_section
