"""`hf-dna reference build|add|enrich|info|list`: make, extend, enrich and inspect reference stores."""
from __future__ import annotations

import json

import click

from ..pipeline.dna import DEFAULT_DIM, DEFAULT_SEED
from ..pipeline.embed import DEFAULT_ENCODER
from .options import output_dir


@click.group("reference")
def reference_group() -> None:
    """Build and inspect reference stores (DNA records + lineage + calibrated relation model)."""


@reference_group.command("build")
@click.argument("responses", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--probes", "probes", required=True,
              help="Probe set the responses answer: a built-in name (paper600, paper600:100, ...) or a prompts file.")
@click.option("--lineage", type=click.Path(exists=True, dir_okay=False),
              help="CSV with model_id,family,parent,relation,confidence,note: declared bases and calibration labels.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(), callback=output_dir,
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
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Embed the models' responses as tasks on this Ray cluster (HOST:PORT, ray://HOST:PORT, auto = "
                   "$RAY_ADDRESS, or local); the store equals the serial build. Needs hf-dna[ray].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def build_cmd(responses, probes, lineage, out_dir, encoder, embeddings_cache, dim, seed, generation_json, max_empty,
              ray_address, quiet) -> None:
    """Build a reference store from RESPONSES files (JSONL/JSON/parquet; a model_id column for many models)."""
    from ..errors import InvalidInputError
    from ..reference.build import build_store

    if ray_address:  # connect first: a missing Ray or a dead address fails before anything is read or encoded
        from ..pipeline.ray_encode import connect

        connect(ray_address)
    generation = None
    if generation_json:
        try:
            generation = json.loads(generation_json)
        except ValueError as err:
            raise InvalidInputError(f"--generation is not valid JSON: {err}") from None
    store = build_store(list(responses), probes, lineage, out_dir, encoder=encoder, embeddings_cache=embeddings_cache,
                        dim=dim, seed=seed, generation=generation, progress=not quiet, max_empty=max_empty,
                        ray_address=ray_address)
    click.echo(f"wrote {len(store)} records to {out_dir}" + ("" if store.calibration else " (no calibration: "
                                                                "fewer than 3 labelled families)"))


@reference_group.command("add")
@click.argument("records", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(), callback=output_dir,
              help="Store directory: created when missing, extended when it holds a store.")
@click.option("--lineage", type=click.Path(exists=True, dir_okay=False),
              help="CSV rows (model_id,family,parent,relation,confidence,note) for the added models.")
@click.option("--refit", is_flag=True, help="Refit the calibration on all records (needs 3 labelled families); "
              "default: keep the store's calibration.")
@click.option("--replace", is_flag=True, help="Overwrite records (same model + revision) and lineage rows already "
              "stored; default: refuse and write nothing.")
def add_cmd(records: tuple[str, ...], out_dir: str, lineage: str | None, refit: bool, replace: bool) -> None:
    """Create or extend a local reference store from DNA RECORDS (`hf-dna extract` JSON/parquet files), so a
    team can audit against its own models."""
    from ..pipeline.record import read_records
    from ..reference.build import add_records

    loaded = [record for path in records for record in read_records(path)]
    store, notes = add_records(out_dir, loaded, lineage, refit=refit, replace=replace)
    click.echo(f"{out_dir}: {len(store)} records; " + "; ".join(notes))


@reference_group.command("enrich")
@click.argument("store")
@click.option("--models", "models", multiple=True, metavar="ID", help="Only these reference models (repeatable).")
@click.option("-o", "--output", "out_dir", type=click.Path(), callback=output_dir,
              help="Write the enriched store here (required when STORE is a Hub dataset; default: STORE in place).")
@click.option("--push", "push_back", is_flag=True, help="Push the enriched records back to the Hub dataset STORE.")
@click.option("--repo", metavar="ORG/NAME", help="Push the enriched records to this Hub dataset instead.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token (default: $HF_TOKEN / the saved login).")
@click.option("--from-files", "from_files", multiple=True, metavar="ID=PATH",
              help="Read this model's evidence from a local copy (dir or .gguf) instead of the Hub (repeatable; "
                   "without --models only these are enriched).")
@click.option("--quiet", is_flag=True, help="No line per model.")
def enrich_cmd(store: str, models: tuple[str, ...], out_dir: str | None, push_back: bool, repo: str | None,
               token: str | None, from_files: tuple[str, ...], quiet: bool) -> None:
    """Add file evidence (config, tokenizer hash, weight sketch by byte-range reads) to the records of a
    reference STORE (directory or Hub dataset id) from the Hub, or from local copies (--from-files).
    Resumable: records that have it are skipped."""
    from pathlib import Path

    from ..errors import InvalidInputError
    from ..reference.enrich import enrich

    if push_back and Path(store).is_dir() and not repo:
        raise InvalidInputError("--push needs STORE to be a Hub dataset (or pass --repo ORG/NAME)")
    files = {}
    for item in from_files:
        model_id, sep, path = item.partition("=")
        if not sep or not model_id or not path:
            raise InvalidInputError(f"--from-files takes MODEL_ID=PATH, not {item!r}")
        files[model_id] = path
    target = repo or (store if push_back else None)
    report = None if quiet else (lambda model_id, what: click.echo(f"{model_id}: {what}", err=True))
    result = enrich(store, models=models or None, output=out_dir, token=token, push_to=target, progress=report,
                    files=files)
    pushed = f"; pushed to {target} ({result.pushed.sha[:12]})" if result.pushed else ""
    click.echo(f"{result.directory}: {len(result.enriched)} enriched, {len(result.already)} already had file "
               f"evidence, {len(result.failed)} failed{pushed}")


@reference_group.command("info")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print config, counts and CV metrics as JSON.")
def info_cmd(store: str, as_json: bool) -> None:
    """Describe a reference STORE (directory or Hub dataset id): config, size, calibration quality."""
    from ..audit.decision import operating_point, stop_point
    from ..reference import ReferenceStore

    ref = ReferenceStore.load(store)
    posterior, posterior_source = operating_point(ref)
    cv = {}
    if ref.calibration:
        from ..evidence.relation import RelationModel

        cv = RelationModel.from_dict(ref.calibration).cv
    stop = stop_point(ref)
    info = {"store": store, "records": len(ref), "lineage_rows": len(ref.lineage_table), "config": ref.config,
            "calibration_cv": cv, "relative_posterior": posterior, "relative_posterior_source": posterior_source,
            "adaptive_stop": stop}
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
    click.echo(f"  audit flags undeclared bases from behaviour at relative posterior {posterior:.2f}: {posterior_source}")
    if stop:
        click.echo(f"  audit --adaptive stops after the first {stop['n_probes']} probes when the family confidence "
                   f"there is below {stop['family_confidence_below']} (bench/adaptive_eval.py)")


@reference_group.command("list")
def list_cmd() -> None:
    """List the embedded default reference stores."""
    from ..reference import CONFIG_NAME, default_store_dirs

    for directory in default_store_dirs():
        config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        n = sum(1 for _ in (directory / "data").rglob("*.parquet"))
        click.echo(f"{directory.name}\t{config.get('probe_set')}\t{n} records\t{directory}")


COMMANDS = [reference_group]
