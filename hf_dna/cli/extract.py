"""`hf-dna extract MODEL...`."""
from __future__ import annotations

import click

from ..dna import DEFAULT_DIM, DEFAULT_SEED
from ..embed import DEFAULT_ENCODER


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
@click.option("--max-new-tokens", type=int, default=256, show_default=True,
              help="Tokens generated per probe (the encoder reads at most 256 word pieces).")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Prompts generated together.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
              show_default=True, help="Model weights dtype (auto: float32 on CPU, bfloat16/float16 on GPU). On CPUs with "
                   "AVX512-BF16/AMX, bfloat16 is ~2-3x faster but its responses can differ between CPUs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--chat-template", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Wrap probes in the model's chat template (auto: when it has one).")
@click.option("--sampling/--greedy", default=False, show_default=True,
              help="Greedy decoding, or the paper's seeded sampling (temperature 0.7, top_p 0.9).")
@click.option("--paper", is_flag=True,
              help="The LLM DNA paper's generation settings: seeded sampling, T=0.7, top_p=0.9, no chat template.")
@click.option("--load-in", type=click.Choice(["8bit", "4bit"]), help="Quantised loading (needs CUDA + bitsandbytes).")
@click.option("--trust-remote-code", is_flag=True, help="Allow models that ship their own Python code.")
@click.option("--gguf-file", help="The .gguf file to load from a Hub repo or directory holding several.")
@click.option("--revision", help="Hub revision (branch, tag or commit) of the model.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token for gated or private repos (default: $HF_TOKEN).")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="Sentence encoder (Hub id or local dir).")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Response cache directory (default: $HF_DNA_CACHE or $HF_HOME/hf-dna/responses).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option("-o", "--output", default="-", show_default=True,
              help="Output file (.parquet for parquet, else JSON) or - for stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def extract_cmd(models: tuple[str, ...], probes: str, responses: str | None, dim: int, seed: int, max_new_tokens: int,
                batch_size: int, dtype: str, device: str, chat_template: str, sampling: bool, paper: bool,
                load_in: str | None, trust_remote_code: bool, gguf_file: str | None, revision: str | None,
                token: str | None, encoder: str, cache_dir: str | None, no_cache: bool, output: str,
                quiet: bool) -> None:
    """Extract the DNA of each MODEL: a local dir, a .gguf file or a Hub repo id.

    One model writes one record, several write a list. Under `accelerate launch -m hf_dna extract ...` the
    models (or the probes of a single model) are spread over the processes; the main process writes the output
    (on a CPU-only machine: `accelerate launch --multi_gpu --num_processes N -m hf_dna extract ...`).
    """
    from ..distributed import extract_many
    from ..generate import GenerationSettings
    from ..record import dumps_records, write_records

    if quiet:
        silence_progress_bars()

    overrides = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype, device=device,
                     load_in=load_in, trust_remote_code=trust_remote_code, seed=seed)
    if paper:
        settings = GenerationSettings.paper(**overrides)
    else:
        settings = GenerationSettings(chat_template=chat_template, sampling=sampling, **overrides)
    _announce_processes(len(models), quiet)
    records = extract_many(list(models), probes, responses=responses, settings=settings, dim=dim, seed=seed,
                           encoder=encoder, revision=revision, token=token, cache_dir=cache_dir,
                           gguf_file=gguf_file, use_cache=not no_cache, progress=not quiet)
    if not records:  # a non-main process of a distributed run
        return
    if output == "-":
        click.echo(dumps_records(records))
    else:
        write_records(records, output)
        if not quiet:
            click.echo(f"wrote {len(records)} DNA record(s) to {output}", err=True)


def _announce_processes(n_models: int, quiet: bool) -> None:
    from ..distributed import process_state

    state = process_state()
    if state.num_processes > 1 and state.is_main_process and not quiet:
        what = "models" if n_models >= state.num_processes else "generation batches"
        click.echo(f"spreading {what} over {state.num_processes} processes", err=True)


def silence_progress_bars() -> None:
    """--quiet: no download/loading bars from huggingface_hub and transformers either."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging

    disable_progress_bars()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:  # transformers' GGUF loader draws a plain tqdm bar that its logging switch does not reach
        from functools import partial

        from tqdm.auto import tqdm
        from transformers import modeling_gguf_pytorch_utils

        modeling_gguf_pytorch_utils.tqdm = partial(tqdm, disable=True)
    except ImportError:
        pass


COMMANDS = [extract_cmd]
