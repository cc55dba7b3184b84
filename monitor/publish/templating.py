"""The Jinja2 templates of outgoing mail: `templates/` at the top of the repository.

A wheel installs that folder as `monitor/templates` (pyproject.toml maps it), so the loader looks
beside the package first and then at the checkout's top level (a development or editable install).

HTML templates are autoescaped, so customer-controlled text (an inquiry's subject, a caller's
name) can never inject markup. Text templates are not HTML: every value they print is made one
printable line instead (monitor.publish.printable), so a subject holding CR, LF or an escape
sequence can neither forge a line of the mail nor reach a terminal that shows it. StrictUndefined
makes a misspelt variable an error instead of an empty string in someone's inbox.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from monitor.publish.printable import line

_PACKAGE = Path(__file__).resolve().parents[1]


def template_dir() -> Path:
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if any(candidate.glob("*.html")):  # not a stray empty folder
            return candidate
    raise FileNotFoundError(f"no templates folder beside {_PACKAGE}")


@pass_context
def _finalize(context: Context, value: object) -> object:
    """What a `{{ … }}` prints: HTML as it is (autoescaped after this), text as one line."""
    name = context.name or ""
    return value if name.endswith(".html") else line(value)


@cache
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(template_dir()),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        undefined=StrictUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: object) -> str:
    return environment().get_template(name).render(**context)
