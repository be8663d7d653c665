"""`hf-dna audit MODEL`: check a model card's declared lineage against the model's DNA."""
from __future__ import annotations

import sys
from typing import Any

import click

from ..audit import FLAG_CODES, RELATIONS, RELATIVE_POSTERIOR, audit
from ..audit.render import FORMATS, render
from ..errors import InvalidInputError
from .options import api_settings, generation_options, output_file, silence_progress_bars

EXIT_FLAGGED = 3


def _fail_on(value: str | None) -> set[str]:
    codes = {c.strip() for c in (value or "").split(",") if c.strip()}
    if "any" in codes:
        return set(FLAG_CODES)
    unknown = codes - set(FLAG_CODES)
    if unknown:
        raise InvalidInputError(f"--fail-on: unknown flag(s) {', '.join(sorted(unknown))} "
                                f"(known: {', '.join(FLAG_CODES)}, or 'any')")
    return codes


def _publish(verdict: dict[str, Any], mode: str, model: str, findings_repo: str | None, token: str | None) -> str:
    from ..audit import publish

    if mode == "pr":
        return f"opened card PR: {publish.open_card_pr(model, verdict, token)}"
    if not findings_repo:
        raise InvalidInputError("--publish dataset needs --findings-repo ORG/NAME")
    return f"pushed findings row: {publish.push_findings_row(findings_repo, verdict, token)}"


@click.command("audit")
@click.argument("model")
@click.option("--reference", metavar="REPO|DIR", help="Reference DNA store: a local dir or a Hub dataset id. "
              "Default: the embedded reference built with the same probes.")
@click.option("--probes", metavar="NAME|FILE", default=None,
              help="Probe set (default: the reference's, else the embedded default paper600:100).")
@click.option("--responses", metavar="FILE",
              help="Use these responses (JSONL/parquet/llm-dna responses.json) instead of running the model.")
@click.option("--record", "record_path", metavar="FILE",
              help="Reuse an existing DNA record (from `hf-dna extract`) instead of computing one.")
@click.option("--base-model", "base_models", multiple=True, metavar="ID",
              help="Declared base model (repeatable); overrides the model card. For models not on the Hub.")
@click.option("--relation", type=click.Choice(RELATIONS), help="Declared relation to the base (with --base-model).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: summary; json: the verdict; markdown: card-section report; github: workflow annotations.")
@click.option("--publish", type=click.Choice(["none", "pr", "dataset"]), default="none", show_default=True,
              help="pr: open a PR adding the report section to the model card; dataset: push a findings row.")
@click.option("--findings-repo", metavar="REPO", help="Findings dataset for --publish dataset.")
@click.option("--fail-on", metavar="FLAGS", default="",
              help=f"Comma list of flags that make the exit code 3 ({', '.join(FLAG_CODES)}, or 'any').")
@click.option("-k", "--top-k", "k", type=click.IntRange(1), default=5, show_default=True,
              help="How many nearest reference models to report.")
@click.option("--relative-posterior", type=click.FloatRange(0.01, 0.99),
              help="How sure undeclared-base must be from behaviour: the probability, fitted on the reference, that "
              "the top candidate is of the model's family. Default: the reference's own operating point, measured "
              "on it with held-out planted cards (`hf-dna reference info` shows it; chat-rand-zh100 0.6), else "
              f"{RELATIVE_POSTERIOR}. Lower finds more undeclared bases and raises more false flags (measured "
              "trade-off: bench/RESULTS.md).")
@click.option("--adaptive", is_flag=True,
              help="Ask the probes of the smaller embedded reference nested in this one first (paper600-50 inside "
              "paper600-100) and the rest only when the verdict there is unsure (a stop point measured on held-out "
              "models, bench/adaptive_eval.py); answers already given are kept.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token (default: $HF_TOKEN / the saved login).")
@click.option("-o", "--output", type=click.Path(), callback=output_file,
              help="Write the report here (atomically) instead of stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars or summary line on stderr.")
@generation_options
def audit_cmd(model: str, reference: str | None, probes: str | None, responses: str | None, record_path: str | None,
              base_models: tuple[str, ...], relation: str | None, fmt: str, publish: str, findings_repo: str | None,
              fail_on: str, k: int, relative_posterior: float | None, adaptive: bool, token: str | None,
              output: str | None, quiet: bool, **generation: Any) -> None:
    """Audit MODEL (Hub id, local dir or .gguf, or any name with --responses/--record) against a DNA reference.

    \b
    Generation (when neither --responses nor --record is given) uses the settings the reference was made with:
    seeded sampling (T=0.7, top_p 0.9, seed 42), no chat template; the options below tune speed and memory.
    Exit codes: 0 clean (or flags not in --fail-on), 3 a --fail-on flag fired, 1 error.
    Flags: undeclared-base, unsupported-base, no-base-declared, wrong-relation.
    """
    if quiet:
        silence_progress_bars()
    fail_codes = _fail_on(fail_on)
    settings = _settings(generation)
    backend = generation.get("backend") or "transformers"
    api = api_settings(backend, generation.get("base_url"), generation.get("api_key_env"),
                       generation.get("concurrency") or 4)
    verdict = audit(model, reference=reference, probes=probes, responses=responses, record=record_path,
                    base_models=list(base_models) or None, relation=relation, settings=settings, token=token, k=k,
                    progress=not quiet, revision=generation.get("revision"), gguf_file=generation.get("gguf_file"),
                    relative_posterior=relative_posterior, backend=backend, api=api, adaptive=adaptive)
    data = verdict.to_dict()
    text = render(data, fmt, fail_codes)
    if output:
        from .._io import atomic_write_text

        atomic_write_text(output, text + "\n")
        if not quiet:
            click.echo(f"{model}: {data['verdict']} ({', '.join(verdict.flag_codes) or 'no flags'}) -> {output}",
                       err=True)
    else:
        click.echo(text)
    if publish != "none":
        message = _publish(data, publish, model, findings_repo, token)
        if not quiet:
            click.echo(message, err=True)
    if fail_codes & set(verdict.flag_codes):
        sys.exit(EXIT_FLAGGED)


def _settings(generation: dict[str, Any]) -> Any:
    """The paper's sampling settings (what the reference was made with), adjusted by the mirrored options."""
    from ..pipeline.responses import GenerationSettings

    return GenerationSettings.paper(**{k: v for k, v in generation.items() if k in _SETTINGS and v is not None})


_SETTINGS = ("max_new_tokens", "batch_size", "dtype", "device", "load_in", "trust_remote_code")
COMMANDS = [audit_cmd]
