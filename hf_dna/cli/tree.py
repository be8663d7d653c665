"""`hf-dna tree RECORDS... | --reference DIR|REPO [--method upgma|nj] [--newick FILE] [--png FILE]`."""
from __future__ import annotations

import click

from ..errors import InvalidInputError
from ..pipeline.record import read_records
from ..report.tree import DISTANCES, METHODS, build_tree
from .options import output_file


@click.command("tree")
@click.argument("records", nargs=-1)
@click.option("--reference", "reference", metavar="DIR|REPO",
              help="Build the tree over a reference store (local dir, Hub dataset repo, or 'default').")
@click.option("--method", type=click.Choice(METHODS), default="upgma", show_default=True,
              help="upgma: average linkage (rooted, ultrametric); nj: neighbour joining (midpoint-rooted).")
@click.option("--distance", type=click.Choice(DISTANCES), default="dna", show_default=True,
              help="dna: cosine of the DNAs; evidence: mean over the DNA and the extra evidence vectors records "
                   "carry (wider projection, lexical sketch); relation: 1 - P(related) from the --reference store's "
                   "calibrated relation model.")
@click.option("--center/--no-center", default=True, show_default=True,
              help="Centre DNAs before cosine distances: on the set's mean DNA when it has >= 10 records "
                   "(per-probe centring; sharpens lineage).")
@click.option("--newick", "newick_path", type=click.Path(), metavar="FILE", callback=output_file,
              help="Write the tree in Newick format to FILE (default: print it).")
@click.option("--png", "png_path", type=click.Path(), metavar="FILE", callback=output_file,
              help="Draw the tree (dendrogram coloured by family when known) to a PNG file.")
def tree_cmd(records: tuple[str, ...], reference: str | None, method: str, distance: str, center: bool,
             newick_path: str | None, png_path: str | None) -> None:
    """Phylogenetic tree of DNA RECORDS (JSON/parquet files or directories) or of a reference store.

    Prints the Newick text unless --newick is given. Refuses records that are not comparable.
    """
    from ..report.figures import tree_png
    from ..report.governance import families_for, load_reference, write_file

    if bool(records) == bool(reference):
        raise InvalidInputError("give either RECORDS or --reference, not both or neither")
    families: dict[str, str] = {}
    calibration = None
    if reference:
        store = load_reference(reference)
        recs = list(store.records)
        families = families_for(store, [r.model_id for r in recs])
        calibration = store.calibration
    else:
        recs = [rec for path in records for rec in read_records(path)]
    tree = build_tree(recs, method=method, center=center, distance=distance, calibration=calibration)
    if newick_path:
        write_file(newick_path, (tree.newick + "\n").encode())
        click.echo(f"wrote {newick_path} ({len(tree.labels)} leaves, {method})", err=True)
    else:
        click.echo(tree.newick)
    if png_path:
        label_families = {label: families.get(rec.model_id, "") for label, rec in zip(tree.labels, recs)}
        write_file(png_path, tree_png(tree, label_families))
        click.echo(f"wrote {png_path}", err=True)


COMMANDS = [tree_cmd]
