"""What several command groups share."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def output_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback: an output file (``-`` is stdout) must be writable, checked while the options are read,
    so a bad place fails before minutes of work rather than after."""
    from .._io import check_writable

    if value not in (None, "-"):
        check_writable(value, directory=False)
    return value


def output_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback: an output directory must exist or be creatable, and take new files (see `output_file`)."""
    from .._io import check_writable

    if value is not None:
        check_writable(value, directory=True)
    return value


def silence_progress_bars() -> None:
    """--quiet: no download/loading bars from huggingface_hub and transformers either."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging

    disable_progress_bars()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    # transformers' GGUF loader draws a tqdm bar of its own: the backend silences it while loading a GGUF when this
    # switch is off (importing that loader here would cost ~1 s of start-up to every model)


#: how a model is loaded and generates: `hf-dna extract` and `hf-dna audit` take the same options
_GENERATION = [
    click.option("--max-new-tokens", type=int, default=256, show_default=True,
                 help="Tokens generated per probe (the encoder reads at most 256 word pieces)."),
    click.option("--batch-size", type=click.IntRange(min=1), help="Prompts generated together (default: 32 on CPU; "
                 "on a GPU as many as a quarter of its memory holds, up to 512)."),
    click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
                 show_default=True, help="Model weights dtype (auto: float32 on CPU, bfloat16/float16 on GPU). "
                 "On CPUs with AVX512-BF16/AMX, bfloat16 is ~2-3x faster but its responses can differ between CPUs."),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option("--load-in", type=click.Choice(["8bit", "4bit"]), help="Quantised loading (needs CUDA + bitsandbytes)."),
    click.option("--trust-remote-code", is_flag=True, help="Allow models that ship their own Python code."),
    click.option("--gguf-file", help="The .gguf file to load from a Hub repo or directory holding several."),
    click.option("--revision", help="Hub revision (branch, tag or commit) of the model."),
    click.option("--backend", type=click.Choice(["transformers", "api"]), default="transformers", show_default=True,
                 help="transformers: run the model here; api: ask a chat-completions API (Hugging Face inference "
                 "providers with the HF token, or the OpenAI-compatible endpoint of --base-url)."),
    click.option("--base-url", metavar="URL", help="With --backend api: an OpenAI-compatible endpoint "
                 "(vLLM, TGI, OpenRouter, OpenAI, e.g. http://localhost:8000/v1). Default: HF inference providers."),
    click.option("--api-key-env", metavar="NAME", help="With --backend api: the environment variable holding the "
                 "endpoint's key (default: the HF token for Hugging Face endpoints, no key for others)."),
    click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True,
                 help="With --backend api: requests in flight."),
]


def api_settings(backend: str, base_url: str | None, api_key_env: str | None, concurrency: int) -> Any:
    """`hf_dna.pipeline.backends.api.ApiSettings` of the API options; None for the transformers backend."""
    from ..errors import InvalidInputError
    from ..pipeline.backends.api import ApiSettings

    if backend != "api":
        if base_url or api_key_env:
            raise InvalidInputError("--base-url and --api-key-env need --backend api")
        return None
    return ApiSettings(base_url=base_url, api_key_env=api_key_env, concurrency=concurrency)


def generation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the generation options (`_GENERATION`) to a click command."""
    for option in reversed(_GENERATION):
        command = option(command)
    return command
