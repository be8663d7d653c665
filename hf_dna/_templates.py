"""hf-dna's Jinja2 templates: ``hf_dna/templates`` in a wheel, the repo's top-level ``templates/`` when editable."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import InvalidInputError

PACKAGE = Path(__file__).resolve().parent


def template_dirs() -> list[Path]:
    """Where templates live: hf_dna/templates (wheel) first, then the repo's top-level templates/ (editable)."""
    return [d for d in (PACKAGE / "templates", PACKAGE.parent / "templates") if d.is_dir()]


def environment(**options: Any) -> Any:
    """A Jinja2 environment over `template_dirs`."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in template_dirs()]), **options)


@lru_cache(maxsize=1)
def _text_environment() -> Any:
    import jinja2

    return environment(keep_trailing_newline=True, trim_blocks=False, autoescape=False,
                       undefined=jinja2.ChainableUndefined)


def render_template(name: str, **context: Any) -> str:
    """Render one of hf-dna's plain-text (Markdown) templates."""
    import jinja2

    try:
        return _text_environment().get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise InvalidInputError(f"template {name} not found in {', '.join(map(str, template_dirs())) or 'nowhere'}") from None
