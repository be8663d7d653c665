"""A verdict (its `to_dict`) as text, JSON, the model-card Markdown section, or GitHub Actions annotations."""
from __future__ import annotations

import json
from typing import Any

from .publish import render_card_section

FORMATS = ("text", "json", "markdown", "github")


def _p(probability: float | None, digits: int) -> str:
    return "uncalibrated" if probability is None else f"{probability:.{digits}f}"


def format_text(verdict: dict[str, Any]) -> str:
    """A human summary: declared lineage, nearest relatives, flags, notes."""
    declared = verdict["declared"]
    bases = ", ".join(declared["base_models"]) or "none"
    lines = [f"hf-dna audit: {verdict['model']}  ->  {verdict['verdict'].upper()}",
             f"declared base: {bases}  relation: {declared['relation'] or '-'}  (from {declared['source']})",
             f"probes: {verdict['record']['probe_set']} ({verdict['record']['n_probes']})", "nearest reference models:"]
    width = max([len(n["model_id"]) for n in verdict["nearest"]] + [8])
    for n in verdict["nearest"]:
        weights = f"  weights={n['weights']} (r={n['weight_similarity']:.6f})" if n.get("weights") else ""
        lines.append(f"  {n['model_id']:<{width}}  P(related)={_p(n['probability'], 3)}  distance={n['distance']:.4f}"
                     f"  family={n['family'] or '?'}{weights}")
    lines += [f"evidence {kind}: {said}" for kind, said in (verdict.get("evidence") or {}).items() if said]
    for flag in verdict["flags"]:
        lines.append(f"FLAG {flag['code']}: {flag['message']}")
    lines += [f"note: {note}" for note in verdict["notes"]]
    return "\n".join(lines)


def format_markdown(verdict: dict[str, Any]) -> str:
    """The model-card section hf-dna would publish (`hf_dna.audit.publish` template), then the audit's notes."""
    notes = "".join(f"- {note}\n" for note in verdict["notes"])
    return render_card_section(verdict) + (f"\nNotes:\n\n{notes}" if notes else "")


def format_github(verdict: dict[str, Any], fail_on: set[str]) -> str:
    """GitHub Actions workflow commands: one annotation per flag (error when in --fail-on), then a summary."""
    def escape(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    lines = [f"::{'error' if f['code'] in fail_on else 'warning'} title=hf-dna {f['code']}::"
             f"{escape(verdict['model'] + ': ' + f['message'])}" for f in verdict["flags"]]
    top = verdict["nearest"][0] if verdict["nearest"] else None
    nearest = f"; nearest {top['model_id']} (P={_p(top['probability'], 2)})" if top else ""
    lines.append(f"::notice title=hf-dna audit::{escape(verdict['model'])}: {verdict['verdict']}"
                 f" ({len(verdict['flags'])} flag(s)){escape(nearest)}")
    return "\n".join(lines)


def render(verdict: dict[str, Any], fmt: str, fail_on: set[str]) -> str:
    if fmt == "json":
        return json.dumps(verdict, indent=2, ensure_ascii=False)
    if fmt == "markdown":
        return format_markdown(verdict)
    if fmt == "github":
        return format_github(verdict, fail_on)
    return format_text(verdict)
