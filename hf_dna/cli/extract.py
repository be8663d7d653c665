"""`hf-dna extract MODEL...`."""
from __future__ import annotations

import click

from ..errors import InvalidInputError
from ..pipeline.dna import DEFAULT_DIM, DEFAULT_SEED
from ..pipeline.embed import DEFAULT_ENCODER
from .options import generation_options, output_file, silence_progress_bars


@click.command("extract")
@click.argument("models", nargs=-1, required=True)
@click.option("--probes", default="paper600", show_default=True,
              help="Probe set: paper600, chat-rand-zh100, rand-en-<n>[-s<seed>], NAME:<k> for the first k, or a file.")
@click.option("--responses", type=click.Path(dir_okay=False),
              help="Use these responses instead of generating: JSONL/parquet rows with probe or prompt + response, "
                   "or llm-dna's responses.json. A file with several models is filtered by MODEL.")
@click.option("--dim", type=int, default=DEFAULT_DIM, show_default=True, help="DNA dimension (random projection).")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
              help="Projection seed, also the sampling seed with --sampling.")
@generation_options
@click.option("--chat-template", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Wrap probes in the model's chat template (auto: when it has one).")
@click.option("--sampling/--greedy", default=False, show_default=True,
              help="Greedy decoding, or the paper's seeded sampling (temperature 0.7, top_p 0.9).")
@click.option("--paper", is_flag=True,
              help="The LLM DNA paper's generation settings: seeded sampling, T=0.7, top_p=0.9, no chat template.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token for gated or private repos (default: $HF_TOKEN).")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="Sentence encoder (Hub id or local dir).")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Response cache directory (default: $HF_DNA_CACHE or $HF_HOME/hf-dna/responses).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option("-o", "--output", default="-", show_default=True, callback=output_file,
              help="Output file (.parquet for parquet, .jsonl one record a line, else JSON) or - for stdout.")
@click.option("--name", metavar="ID", help="Model id to store in the record (one MODEL only; default: MODEL, or a "
              "local directory's name), e.g. the Hub id of a local copy.")
@click.option("--no-weights", is_flag=True, help="Do not sketch the model's weights (static evidence is still read).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def extract_cmd(models: tuple[str, ...], probes: str, responses: str | None, dim: int, seed: int, max_new_tokens: int,
                batch_size: int | None, dtype: str, device: str, chat_template: str, sampling: bool, paper: bool,
                load_in: str | None, trust_remote_code: bool, gguf_file: str | None, revision: str | None,
                token: str | None, encoder: str, cache_dir: str | None, no_cache: bool, output: str,
                quiet: bool, name: str | None = None, no_weights: bool = False, backend: str = "transformers", base_url: str | None = None,
                api_key_env: str | None = None, concurrency: int = 4) -> None:
    """Extract the DNA of each MODEL: a local dir, a .gguf file or a Hub repo id.

    One model writes one record, several write a list. Under `accelerate launch -m hf_dna extract ...` the
    models (or the probes of a single model) are spread over the processes; the main process writes the output
    (on a CPU-only machine: `accelerate launch --multi_gpu --num_processes N -m hf_dna extract ...`).
    """
    from ..pipeline.distributed import extract_many
    from ..pipeline.record import dumps_records, write_records
    from ..pipeline.responses import GenerationSettings
    from .options import api_settings

    if quiet:
        silence_progress_bars()
    if name and len(models) > 1:
        raise InvalidInputError("--name names one model: give a single MODEL")
    api = api_settings(backend, base_url, api_key_env, concurrency)

    overrides = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype, device=device,
                     load_in=load_in, trust_remote_code=trust_remote_code, seed=seed)
    if paper:
        settings = GenerationSettings.paper(**overrides)
    else:
        settings = GenerationSettings(chat_template=chat_template, sampling=sampling, **overrides)
    _announce_processes(len(models), quiet, api is not None)
    backend_options = {"backend": backend, "api": api} if api is not None else {}
    records = extract_many(list(models), probes, responses=responses, settings=settings, dim=dim, seed=seed,
                           encoder=encoder, revision=revision, token=token, cache_dir=cache_dir,
                           gguf_file=gguf_file, use_cache=not no_cache, progress=not quiet, name=name,
                           weights=not no_weights, **backend_options)
    if not records:  # a non-main process of a distributed run
        return
    if output == "-":
        click.echo(dumps_records(records))
    else:
        write_records(records, output)
        if not quiet:
            click.echo(f"wrote {len(records)} DNA record(s) to {output}", err=True)


def _announce_processes(n_models: int, quiet: bool, api: bool = False) -> None:
    from ..errors import InvalidInputError
    from ..pipeline.distributed import process_state

    state = process_state()
    if api and state.num_processes > 1:
        raise InvalidInputError("--backend api runs in one process (its parallelism is --concurrency): "
                                "run it without accelerate launch")
    if state.num_processes > 1 and state.is_main_process and not quiet:
        what = "models" if n_models >= state.num_processes else "generation batches"
        click.echo(f"spreading {what} over {state.num_processes} processes", err=True)


COMMANDS = [extract_cmd]
