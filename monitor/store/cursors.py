"""A source's stored cursor: where its next poll starts.

Apart from ingest, which saves it with each batch, so that a poll reads it with the database
and schema modules alone: `poll` hands it to the source's reading child before the rest of the
store is imported (monitor.store.reader_process).
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, select

from connectors.base import Cursor
from monitor.store.database import transaction
from monitor.store.schema import STATES


def stored_cursor(engine: Engine, source: str) -> Cursor | None:
    """The cursor `source`'s next poll starts from (None: from the beginning)."""
    with transaction(engine) as conn:
        raw = conn.execute(
            select(STATES.c.cursor).where(STATES.c.source == source)
        ).scalar_one_or_none()
    return json.loads(raw) if raw else None
