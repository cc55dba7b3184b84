"""The Jinja2 templates of outgoing mail (`monitor/templates/`), shipped inside the package.

HTML templates are autoescaped, so customer-controlled text (an inquiry's subject, a caller's
name) can never inject markup; text templates are not (they are not HTML). StrictUndefined makes a
misspelt variable an error instead of an empty string in someone's inbox.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("monitor", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: object) -> str:
    return environment().get_template(name).render(**context)
