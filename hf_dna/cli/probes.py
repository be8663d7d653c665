"""`hf-dna probes list|show`."""
from __future__ import annotations

import json

import click

from ..pipeline.probes import builtin_names, load_probe_set


@click.group("probes")
def probes_group() -> None:
    """List and inspect probe sets."""


@probes_group.command("list")
def list_cmd() -> None:
    """List the built-in probe sets with their size and sha256."""
    for name in builtin_names():
        ps = load_probe_set(name)
        click.echo(f"{name}\t{len(ps)}\t{ps.hash}\t{ps.description}")
    click.echo("rand-en-<n>[-s<seed>]\t<n>\t-\tseeded random English word prompts (any n)")


@probes_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per probe.")
def show_cmd(name: str, as_json: bool) -> None:
    """Print the prompts of probe set NAME (built-in, rand-en-<n>, NAME:<k>, or a file)."""
    ps = load_probe_set(name)
    click.echo(f"# {ps.name}: {len(ps)} probes, sha256 {ps.hash}" + (f"; source: {ps.source}" if ps.source else ""), err=True)
    for i, prompt in enumerate(ps.prompts):
        click.echo(json.dumps({"probe": i, "prompt": prompt}, ensure_ascii=False) if as_json else f"{i}\t{prompt}")


COMMANDS = [probes_group]
