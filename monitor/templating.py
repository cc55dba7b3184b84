"""The Jinja2 templates of outgoing mail: `templates/` at the top of the repository.

A wheel installs that folder as `monitor/templates` (pyproject.toml maps it), so the loader looks
beside the package first and then at the checkout's top level (a development or editable install).

HTML templates are autoescaped, so customer-controlled text (an inquiry's subject, a caller's
name) can never inject markup; text templates are not (they are not HTML). StrictUndefined makes a
misspelt variable an error instead of an empty string in someone's inbox.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_PACKAGE = Path(__file__).resolve().parent


def template_dir() -> Path:
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if any(candidate.glob("*.html")):  # not a stray empty folder
            return candidate
    raise FileNotFoundError(f"no templates folder beside {_PACKAGE}")


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(template_dir()),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: object) -> str:
    return environment().get_template(name).render(**context)
