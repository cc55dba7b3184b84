"""A source's stored cursor: where its next poll starts.

Apart from ingest, which saves it with each batch, so that a poll reads it before the rest of
the store is imported: `poll` hands it to the source's reading child, which connects and logs
in meanwhile (monitor.store.reader_process).

`peek_cursor` reads it before even SQLAlchemy is imported (a fifth of a second on a small
machine, which the child then spends reading), from a SQLite file named plainly in the URL,
with the standard library's sqlite3. It is an early reading, not the store's word: the poll
reads the cursor again through the store once that is open, and starts the reading over from
that one if they differ.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from connectors.base import Cursor

# The URLs `peek_cursor` reads: a file named after the third slash, nothing after it (a query
# may ask SQLite for something else, as `?uri=true` does), as SQLAlchemy's default SQLite
# driver takes them. Any other URL is read through the store alone.
_PLAIN_SQLITE = ("sqlite:///", "sqlite+pysqlite:///")


def stored_cursor(engine: Engine, source: str) -> Cursor | None:
    """The cursor `source`'s next poll starts from (None: from the beginning)."""
    from sqlalchemy import select

    from monitor.store.database import transaction
    from monitor.store.schema import STATES

    with transaction(engine) as conn:
        raw = conn.execute(
            select(STATES.c.cursor).where(STATES.c.source == source)
        ).scalar_one_or_none()
    return json.loads(raw) if raw else None


def plain_sqlite_path(url: str, base_dir: Path) -> Path | None:
    """The file a plain SQLite URL names, as the store opens it (a relative path is relative to
    `base_dir`, the config's folder); None for any other URL."""
    prefix = next((p for p in _PLAIN_SQLITE if url.startswith(p)), None)
    if prefix is None or "?" in url or "#" in url:
        return None
    name = unquote(url[len(prefix) :])
    if name in ("", ":memory:") or name.startswith("file:") or "\0" in name:
        return None
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def peek_cursor(url: str, base_dir: Path, source: str) -> tuple[Cursor | None] | None:
    """`source`'s stored cursor as a 1-tuple, read without the store, or None where it cannot
    be read so: not a plain SQLite file URL, a path that is not a regular file, a file that
    does not open read-only at once or has no cursor table. A file that does not exist yet
    holds no cursor: `(None,)`. The store's own reading (`stored_cursor`) is the word that
    counts."""
    path = plain_sqlite_path(url, base_dir)
    if path is None:
        return None
    try:
        if not path.exists():
            return (None,)
        if not path.is_file():  # a FIFO or a device: never opened here
            return None
        # Read-only, never created, and no waiting on a lock: a writer (a poll or an import
        # storing) does not keep readers of a WAL database out anyway. A database closed
        # cleanly has no -wal file beside it and all it holds is in the file itself: it is read
        # as it is, without the -wal and -shm files a reader would otherwise leave behind.
        closed = not path.with_name(f"{path.name}-wal").exists()
        uri = f"{path.as_uri()}?mode=ro{'&immutable=1' if closed else ''}"
        connection = sqlite3.connect(uri, uri=True, timeout=0)
        with closing(connection):
            row = connection.execute(
                "SELECT cursor FROM source_state WHERE source = ?", (source,)
            ).fetchone()
        raw = row[0] if row is not None else None
        return (json.loads(raw) if raw else None,)
    except (OSError, ValueError, RecursionError, sqlite3.Error):
        return None
