"""How a time is stored: `Instant`, the type of every datetime column.

On PostgreSQL a `timestamp with time zone`. On SQLite, which has no time type, an INTEGER: whole
microseconds since the Unix epoch (UTC), instead of SQLAlchemy's default text
("2026-11-20 09:00:00.000000"). The integer is exact, compares and sorts as the time does, and
is 8 bytes instead of 26 in the row and in every index that holds it. Most of all, storing a
time costs nothing to make: a call's times are held as these very integers
(`CallEvent.entered_us`), so a million-line queue_log import no longer formats three million
strings (a tenth of its time), and SQLite's own insert is cheaper by a tenth.

Both ways, Python sees aware UTC datetimes: a naive one is refused, as everywhere in the store.
Schema v3 turned the text of older SQLite databases into these integers (monitor.store.database).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from monitor.measure.events import EPOCH, MICROSECOND, from_micros, micros, require_utc


class Instant(TypeDecorator[datetime]):
    """An aware datetime; in UTC microseconds on SQLite, `timestamptz` elsewhere."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return super().load_dialect_impl(dialect)  # `impl`

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        # Both refuse a naive datetime, naming it.
        return micros(value) if dialect.name == "sqlite" else require_utc(value, "time")

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_micros(value)
        moment: datetime = value.astimezone(UTC)  # PostgreSQL answers in the session's zone
        return moment


def instants(values: Sequence[Any]) -> list[int | None]:
    """A column of times as SQLite stores them, for monitor.store.bulk: aware datetimes become
    microseconds, and microseconds (a CallEvent's times) stay as they are."""
    # A UTC time (nearly every one) is converted inline: two Python calls per value cost more
    # than the subtraction; any other, naive or not, takes `micros` (which refuses a naive one).
    return [
        v
        if v is None or v.__class__ is int
        else (v - EPOCH) // MICROSECOND
        if v.tzinfo is UTC
        else micros(v)
        for v in values
    ]
