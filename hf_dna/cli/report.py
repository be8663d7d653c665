"""`hf-dna report (--org ORG | MODEL... | --records FILE | --verdicts FILE | --reference DIR|REPO) -o DIR`."""
from __future__ import annotations

import click

from ..errors import InvalidInputError
from ..pipeline.record import read_records
from ..report.tree import METHODS


@click.command("report")
@click.argument("models", nargs=-1)
@click.option("--org", metavar="ORG", help="Audit every model the org (or user) owns on the Hub.")
@click.option("--reference", metavar="DIR|REPO", default=None,
              help="Reference store (local dir, Hub dataset repo, or 'default'). With no models, --org, --records "
                   "or --verdicts, the report covers the reference itself (each model against the others).")
@click.option("--records", "record_files", multiple=True, metavar="FILE",
              help="DNA record file(s) to audit and include (JSON/parquet; repeatable).")
@click.option("--verdicts", "verdict_files", multiple=True, metavar="FILE",
              help="Saved verdicts (`hf-dna audit --format json` output) to include as they are (repeatable).")
@click.option("-o", "--output", "out_dir", required=True, metavar="DIR",
              help="Directory for report.html, report.md, report.json, the PNG figures and tree.nwk.")
@click.option("--method", type=click.Choice(METHODS), default="upgma", show_default=True, help="Tree method.")
@click.option("--title", default=None, help="Report title (default names the org / reference).")
@click.option("--token", envvar="HF_TOKEN", default=None, help="Hub token (default: $HF_TOKEN or the cached login).")
@click.option("--no-context", is_flag=True,
              help="Draw only the reported models, without their nearest reference relatives.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def report_cmd(models: tuple[str, ...], org: str | None, reference: str | None, record_files: tuple[str, ...],
               verdict_files: tuple[str, ...], out_dir: str, method: str, title: str | None, token: str | None,
               no_context: bool, quiet: bool) -> None:
    """Governance report on MODELS (Hub ids or local paths, each audited), an --org, saved --records or
    --verdicts, or (with none of these) the --reference store itself.

    Per model: the declared lineage, nearest relatives with probabilities and flags with evidence; for the set: a
    2-D DNA map coloured by family, a distance heatmap (up to 40 models) and a phylogenetic tree.

    Writes a self-contained HTML page (images inline) plus Markdown and JSON into DIR. Models whose audit fails
    or that have no DNA get a line saying why.
    """
    from ..report import governance as rpt

    if org and models:
        raise InvalidInputError("give either --org or MODEL ids, not both")
    rpt.check_output_dir(out_dir)  # fail before any audit runs
    subjects = bool(org or models or record_files or verdict_files)
    model_ids = list(models)
    if org:
        model_ids = rpt.org_models(org, token=token)
        if not model_ids:
            raise InvalidInputError(f"{org} has no models on the Hub: nothing to report")
    needs_store = bool(reference) or not subjects or bool(model_ids or record_files)
    store = _load_store(reference, required=needs_store)
    ref_name = (reference or "default") if store is not None else None
    entries = []
    if not subjects:
        entries = rpt.entries_from_reference(store, progress=not quiet)
        title = title or f"hf-dna lineage report: reference {ref_name}"
    else:
        records = [rec for path in record_files for rec in read_records(path)]
        if model_ids or records:
            entries += rpt.audit_entries(model_ids, reference=store, store=store, records=records, token=token,
                                         progress=not quiet)
        entries += rpt.read_verdicts(list(verdict_files), store)
        title = title or ("hf-dna lineage report: " + (org or f"{len(entries)} model(s)"))
    report = rpt.build_report(entries, store=store, reference_name=ref_name, title=title, method=method,
                              context=not no_context)
    written = rpt.write_report(report, out_dir)
    missing = sum(e.record is None for e in entries)
    click.echo(f"wrote {', '.join(p.name for p in written)} to {out_dir} ({len(entries)} model(s)"
               + (f", {missing} without DNA" if missing else "") + ")", err=True)


def _load_store(reference: str | None, required: bool):
    """The reference store; optional (None when unavailable) for a report built only from saved verdicts."""
    from ..errors import HfDnaError
    from ..report.governance import load_reference

    try:
        return load_reference(reference or "default")
    except HfDnaError:
        if required:
            raise
        return None


COMMANDS = [report_cmd]
