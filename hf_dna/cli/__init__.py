"""`hf-dna` command line: a thin click layer over the Python API (one module per command group)."""
from __future__ import annotations

import sys

import click

from .._version import __version__
from ..errors import HfDnaError


class _Group(click.Group):
    """Turns every `HfDnaError` (and any `OSError`) into one line on stderr and its exit code; never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HfDnaError as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(err.exit_code)
        except OSError as err:  # a file that could not be read or written: still one line, never a traceback
            where = f": {err.filename}" if getattr(err, "filename", None) else ""
            click.echo(f"Error: {err.strerror or err}{where}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hf-dna")
def main() -> None:
    """hf-dna: trace a model's lineage from its behaviour (LLM DNA) and audit its model card.

    \b
    Typical use:
      hf-dna extract ./my-model -o my-model.dna.json
      hf-dna audit org/model --format markdown
      hf-dna compare a.dna.json b.dna.json
    """


def _register() -> None:
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f"{__name__}.{module.name}")
        for command in getattr(mod, "COMMANDS", ()):
            main.add_command(command)


_register()
