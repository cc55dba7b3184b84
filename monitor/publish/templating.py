"""The Jinja2 templates of outgoing mail: `templates/` at the top of the repository.

A wheel installs that folder as `monitor/templates` (pyproject.toml maps it), so the loader looks
beside the package first and then at the checkout's top level (a development or editable install).

HTML templates are autoescaped, so customer-controlled text (an inquiry's subject, a caller's
name) can never inject markup. Text templates are not HTML: every value they print is made one
printable line instead (monitor.publish.printable), so a subject holding CR, LF or an escape
sequence can neither forge a line of the mail nor reach a terminal that shows it. StrictUndefined
makes a misspelt variable an error instead of an empty string in someone's inbox.

Compiled templates are kept in Jinja2's bytecode cache (a folder of the user's own in the
temporary directory): compiling the digest's templates is most of what rendering it costs, some
60 ms of each `digest` command. An entry is used only for the same template source, the same
Jinja2 and Python, and the same compile-time options (the file names carry a hash of them), and
a cache that cannot be read or written is passed by: the template is compiled as without one.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import jinja2
from jinja2 import (
    BytecodeCache,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    pass_context,
    select_autoescape,
)
from jinja2.bccache import Bucket
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


class _Cache(FileSystemBytecodeCache):
    """Jinja2's cache of compiled templates on disk, passed by when it fails: a digest or an
    alert is never lost to a full disk, a read-only folder or a damaged entry."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 (a damaged entry: compiled again and rewritten)
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def bytecode_cache(directory: str | None = None) -> BytecodeCache | None:
    """The cache of compiled templates in `directory` (default: Jinja2's folder for this user in
    the temporary directory); None when there is no safe folder to keep it in."""
    # What compiled code depends on besides the template's source (which the cache checks, as
    # it checks Python's version): Jinja2's version and the environment's options, which this
    # module sets; an entry compiled before either changed is never used.
    fingerprint = hashlib.sha1(jinja2.__version__.encode() + Path(__file__).read_bytes())
    version = fingerprint.hexdigest()[:12]
    try:
        return _Cache(directory, f"support-monitor-{version}-%s.cache")
    except (OSError, RuntimeError):  # RuntimeError: a folder another user owns
        return None


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
        bytecode_cache=bytecode_cache(),
    )


def render(name: str, **context: object) -> str:
    return environment().get_template(name).render(**context)
