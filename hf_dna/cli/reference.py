"""`hf-dna reference build|info|list`: make and inspect reference stores."""
from __future__ import annotations

import json

import click

from ..dna import DEFAULT_DIM, DEFAULT_SEED
from ..embed import DEFAULT_ENCODER


@click.group("reference")
def reference_group() -> None:
    """Build and inspect reference stores (DNA records + lineage + calibrated relation model)."""


@reference_group.command("build")
@click.argument("responses", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--probes", "probes", required=True,
              help="Probe set the responses answer: a built-in name (paper600, paper600:100, ...) or a prompts file.")
@click.option("--lineage", type=click.Path(exists=True, dir_okay=False),
              help="CSV with model_id,family,parent,relation,confidence,note: declared bases and calibration labels.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the store to (created; an existing store there is updated).")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="Sentence encoder (Hub id or local dir).")
@click.option("--embeddings-cache", type=click.Path(exists=True),
              help="Precomputed embeddings (.npz file or dir of them with model_id, probe, emb) to skip encoding.")
@click.option("--dim", default=DEFAULT_DIM, show_default=True, help="DNA dimension.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, help="Projection seed.")
@click.option("--generation", "generation_json",
              help="JSON object describing how the responses were generated (stored in every record).")
@click.option("--max-empty", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Leave out models with a larger share of empty responses (failed runs look alike).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build_cmd(responses, probes, lineage, out_dir, encoder, embeddings_cache, dim, seed, generation_json, max_empty,
              quiet) -> None:
    """Build a reference store from RESPONSES files (JSONL/JSON/parquet; a model_id column for many models)."""
    from ..errors import InvalidInputError
    from ..refbuild import build_store

    generation = None
    if generation_json:
        try:
            generation = json.loads(generation_json)
        except ValueError as err:
            raise InvalidInputError(f"--generation is not valid JSON: {err}") from None
    store = build_store(list(responses), probes, lineage, out_dir, encoder=encoder, embeddings_cache=embeddings_cache,
                        dim=dim, seed=seed, generation=generation, progress=not quiet, max_empty=max_empty)
    click.echo(f"wrote {len(store)} records to {out_dir}" + ("" if store.calibration else " (no calibration: "
                                                                "fewer than 3 labelled families)"))


@reference_group.command("info")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print config, counts and CV metrics as JSON.")
def info_cmd(store: str, as_json: bool) -> None:
    """Describe a reference STORE (directory or Hub dataset id): config, size, calibration quality."""
    from ..reference import ReferenceStore

    ref = ReferenceStore.load(store)
    cv = {}
    if ref.calibration:
        from ..calibrate import RelationModel

        cv = RelationModel.from_dict(ref.calibration).cv
    info = {"store": store, "records": len(ref), "lineage_rows": len(ref.lineage_table), "config": ref.config,
            "calibration_cv": cv}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{store}: {len(ref)} records, {len(ref.lineage_table)} lineage rows")
    for key, value in ref.config.items():
        click.echo(f"  {key}: {value}")
    for evidence, m in cv.items():
        click.echo(f"  calibration [{evidence}]: AUC {m['auc']:.3f}, parent-child AUC {m['pc_auc']:.3f}, "
                   f"top-1 {m['top1']:.3f}, top-5 {m['top5']:.3f} (families held out)")
    if not cv:
        click.echo("  no calibration")


@reference_group.command("list")
def list_cmd() -> None:
    """List the embedded default reference stores."""
    from ..reference import CONFIG_NAME, default_store_dirs

    for directory in default_store_dirs():
        config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        n = sum(1 for _ in (directory / "data").rglob("*.parquet"))
        click.echo(f"{directory.name}\t{config.get('probe_set')}\t{n} records\t{directory}")


COMMANDS = [reference_group]
