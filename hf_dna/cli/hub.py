"""`hf-dna push`, `hf-dna pull` and `hf-dna publish`: the Hub side of reference stores and findings."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InvalidInputError
from ..pipeline.record import read_records
from .options import output_dir

_TOKEN = click.option("--token", envvar="HF_TOKEN", metavar="TOKEN",
                      help="Hub token with write access (default: HF_TOKEN or the saved login).")


@click.command("push")
@click.argument("records", nargs=-1, required=True)
@click.option("--repo", required=True, metavar="ORG/NAME", help="Hub dataset repo of the reference (created when new).")
@_TOKEN
@click.option("--overwrite", is_flag=True,
              help="Replace a different record already stored for the same model+revision (only for your own model).")
def push_cmd(records: tuple[str, ...], repo: str, token: str | None, overwrite: bool) -> None:
    """Push DNA RECORDS (JSON/parquet files, directories or a reference store dir) to a Hub reference dataset.

    One parquet file per model+revision under data/<org>/<name>/; identical records are skipped (no empty
    commits), another model's record is never rewritten, and records whose probe hash, encoder, dim, seed or
    projection differ from the repo's hf-dna.json are refused. Concurrent pushes are retried safely.
    """
    from ..reference import CONFIG_NAME, ReferenceStore, push

    sources = []
    for path in records:
        if (Path(path) / CONFIG_NAME).is_file():
            sources.append(ReferenceStore.load(path))
        else:
            sources.append(read_records(path))
    if len(sources) == 1 and isinstance(sources[0], ReferenceStore):
        result = push(sources[0], repo, token=token, overwrite=overwrite)
    else:
        result = push([r for s in sources for r in (s.records if isinstance(s, ReferenceStore) else s)], repo,
                      token=token, overwrite=overwrite)
    state = f"commit {result.sha[:12]}" if result.committed else "nothing new: no commit"
    click.echo(f"{repo}: {len(result.added)} added, {len(result.replaced)} replaced, "
               f"{len(result.unchanged)} unchanged ({state})")


@click.command("pull")
@click.argument("repo", metavar="ORG/NAME")
@click.option("-o", "--output", "output", required=True, type=click.Path(), callback=output_dir,
              help="Directory to write the reference store into.")
@click.option("--revision", help="Branch, tag or commit of the dataset (default: main).")
@_TOKEN
def pull_cmd(repo: str, output: str, revision: str | None, token: str | None) -> None:
    """Download the Hub reference dataset REPO into a local reference store directory."""
    from ..reference import pull

    store = pull(repo, output, token=token, revision=revision)
    click.echo(f"{repo} -> {output}: {len(store)} records, probe set {store.config.get('probe_set')}, "
               f"{len(store.lineage_table)} lineage rows")


@click.command("publish")
@click.argument("verdict_file", metavar="VERDICT.json", type=click.Path(dir_okay=False))
@click.option("--card-pr", is_flag=True, help="Open a PR on the model repo with hf-dna's model-card section.")
@click.option("--findings-repo", metavar="ORG/NAME", help="Push the findings row to this Hub dataset.")
@click.option("--print-section", is_flag=True, help="Only print the rendered model-card section.")
@_TOKEN
def publish_cmd(verdict_file: str, card_pr: bool, findings_repo: str | None, print_section: bool,
                token: str | None) -> None:
    """Publish a saved audit verdict (the JSON of `hf-dna audit --format json`).

    The card section sits between <!-- hf-dna:start --> and <!-- hf-dna:end -->; re-running replaces it and
    never touches the rest of the card.
    """
    from ..audit import publish

    try:
        verdict = json.loads(Path(verdict_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InvalidInputError(f"cannot read verdict {verdict_file}: {type(err).__name__}: {err}") from None
    if not (card_pr or findings_repo or print_section):
        raise InvalidInputError("nothing to do: pass --card-pr, --findings-repo or --print-section")
    if print_section:
        click.echo(publish.render_card_section(verdict), nl=False)
    if card_pr:
        click.echo(f"opened card PR: {publish.open_card_pr(verdict['model'], verdict, token)}")
    if findings_repo:
        click.echo(f"pushed findings row: {findings_repo}/{publish.push_findings_row(findings_repo, verdict, token)}")


COMMANDS = [push_cmd, pull_cmd, publish_cmd]
