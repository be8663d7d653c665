"""`hf-dna scan (--org ORG | --models FILE | MODEL...) [--ray ADDRESS] (-o OUT_DIR | --repo ORG/DATASET)`."""
from __future__ import annotations

from typing import Any

import click

from ..audit import RELATIVE_POSTERIOR
from ..errors import HfDnaError
from .options import generation_options, output_dir, silence_progress_bars

_SETTINGS = ("max_new_tokens", "batch_size", "dtype", "device", "load_in", "trust_remote_code")


@click.command("scan")
@click.argument("models", nargs=-1)
@click.option("--org", metavar="ORG", help="Scan every model the org (or user) owns on the Hub.")
@click.option("--models", "models_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="Scan the models named in FILE (Hub ids or local paths, one a line; # comments).")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Run the extractions as tasks on this Ray cluster: HOST:PORT (the head, `ray start --head`), "
                   "ray://HOST:PORT, auto ($RAY_ADDRESS, else the cluster started on this machine) or local. "
                   "Needs hf-dna[ray]. Without it the models are extracted here, one after the other.")
@click.option("--reference", metavar="REPO|DIR", help="Reference DNA store to audit against (default: the "
              "embedded one built with the same probes).")
@click.option("-o", "--output", "out_dir", metavar="OUT_DIR", type=click.Path(), callback=output_dir,
              help="Write records (reference-store layout) and verdicts/<org>/<name>.json here.")
@click.option("--repo", metavar="ORG/DATASET", help="Push records (and verdicts) to this Hub dataset instead.")
@click.option("--probes", metavar="NAME|FILE", help="Probe set (default: the reference's).")
@click.option("--no-audit", is_flag=True, help="Records only: no reference, no verdicts.")
@click.option("--force", is_flag=True, help="Extract again models whose record at that revision is already there.")
@click.option("-k", "--top-k", "k", type=click.IntRange(1), default=5, show_default=True,
              help="Nearest reference models in each verdict.")
@click.option("--relative-posterior", type=click.FloatRange(0.01, 0.99),
              help="How sure undeclared-base must be (as in `hf-dna audit`; default: the reference's operating "
              f"point, else {RELATIVE_POSTERIOR}).")
@click.option("--max-retries", type=click.IntRange(0), default=3, show_default=True,
              help="Ray: times a task is run again when its worker dies.")
@click.option("--gpu-memory", type=click.FloatRange(min=0.5), metavar="GIB",
              help="Ray: memory of one GPU, to size each task's num_gpus from the model's weights (default: "
                   "measured on a GPU worker).")
@click.option("--push-every", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="SECONDS",
              help="--repo: push what finished at most this often (one commit of records, one of verdicts).")
@click.option("--token", envvar="HF_TOKEN", help="Hub token (default: $HF_TOKEN / the saved login).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@generation_options
def scan_cmd(models: tuple[str, ...], org: str | None, models_file: str | None, ray_address: str | None,
             reference: str | None, out_dir: str | None, repo: str | None, probes: str | None, no_audit: bool,
             force: bool, k: int, relative_posterior: float | None, max_retries: int, gpu_memory: float | None,
             push_every: float, token: str | None, quiet: bool, **generation: Any) -> None:
    """Extract and audit many models: an --org, a --models FILE, or MODEL ids / paths.

    \b
    Models whose record at their current revision is already in the output are skipped (a missing verdict is
    made again from the stored record), so an interrupted scan resumes where it stopped. Each model's record
    and verdict are written as soon as it finishes, by this process only: a Ray task retried after its worker
    died is never written twice. Generation uses the reference's settings (seeded sampling), as `hf-dna audit`.
    Exit codes: 0 every model done, 1 an error or some model failed (listed).
    """
    from ..pipeline.responses import GenerationSettings
    from ..scan import scan

    if quiet:
        silence_progress_bars()
    settings = GenerationSettings.paper(**{n: v for n, v in generation.items() if n in _SETTINGS and v is not None})
    result = scan(models, org=org, models_file=models_file, ray_address=ray_address, reference=reference,
                  out_dir=out_dir, repo=repo, probes=probes, settings=settings, audit=not no_audit, token=token, k=k,
                  relative_posterior=relative_posterior, revision=generation.get("revision"),
                  gguf_file=generation.get("gguf_file"), force=force, max_retries=max_retries,
                  gpu_memory=int(gpu_memory * (1 << 30)) if gpu_memory else None, progress=not quiet,
                  flush_interval_s=push_every)
    for model_id, codes in result.flags.items():
        if codes:
            click.echo(f"flagged {model_id}: {', '.join(codes)}", err=True)
    click.echo(f"scan: {result.summary()} -> {out_dir or repo}", err=True)
    if result.failed:
        first = next(iter(result.failed.items()))
        raise HfDnaError(f"{len(result.failed)} of {len(result.models)} model(s) failed (first: {first[0]}: "
                         f"{first[1]})")


COMMANDS = [scan_cmd]
