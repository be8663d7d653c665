"""`hf-dna compare RECORD...`."""
from __future__ import annotations

import json

import click

from ..pipeline.record import read_records
from ..report.compare import compare


@click.command("compare")
@click.argument("records", nargs=-1, required=True)
@click.option("--metric", type=click.Choice(["cosine", "euclidean"]), default="cosine", show_default=True,
              help="Which matrix to print as a table (--json prints both).")
@click.option("--json", "as_json", is_flag=True, help="Print both distance matrices as JSON.")
def compare_cmd(records: tuple[str, ...], metric: str, as_json: bool) -> None:
    """Distance matrix between DNA RECORDS (JSON/parquet files or directories of them).

    Refuses records whose probe hash, encoder, dim, seed or projection differ, naming the first difference.
    """
    result = compare([rec for path in records for rec in read_records(path)])
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    matrix = result.cosine if metric == "cosine" else result.euclidean
    width = max(len(label) for label in result.labels)
    click.echo(" " * width + "  " + "  ".join(f"{i:>8d}" for i in range(len(result.labels))))
    for i, label in enumerate(result.labels):
        click.echo(f"{label:<{width}}  " + "  ".join(f"{v:8.4f}" for v in matrix[i]))


COMMANDS = [compare_cmd]
