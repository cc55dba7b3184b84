"""The table forms of queue_log: Asterisk's realtime table, or a CSV export of it.

Asterisk's realtime queue_log (main/logger.c) has the columns `time`, `callid`, `queuename`,
`agent`, `event` and either `data1..data5` (split parameters) or one `data` column with the
parameters still joined by `|`; FreePBX tables have both, and `data1..5` win when they hold
anything. The alembic schema adds an `id`. `time` is the server's local wall-clock time
(`%F %T.%6q`) unless `queue_log_realtime_use_gmt=yes`, so a naive time is read in the zone given.

- `CsvRows` parses the lines of a CSV export (header row first; a file may repeat the header);
- `TableRows` reads the table with SQLAlchemy, in (time, id) order, from a position
  `{"time": ..., "id": ..., "same": n}`: the last time read, the last id at that time, and (for
  tables without an id) how many rows at that time were read already.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import MetaData, Table, and_, create_engine, func, or_, select
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from connectors.base import ConnectorError
from connectors.csv_rows import RowError, parse_time, split_line, text
from connectors.phone.queue_log_calls import Record

REQUIRED = ("time", "callid", "queuename", "agent", "event")
DATA = tuple(f"data{n}" for n in range(1, 6))
_TIME_FORMATS = ("epoch", "iso")


def record(row: dict[str, Any], zone: ZoneInfo) -> Record:
    """A table row (or CSV row) by column name as a Record; RowError when unusable."""
    at = _time(row.get("time"), zone)
    fields = {name: text(str(row.get(name) or ""), name) for name in REQUIRED[1:]}
    if not fields["callid"] or not fields["event"]:
        raise RowError("missing callid" if not fields["callid"] else "missing event")
    split = [text(str(row.get(name) or ""), name) for name in DATA if name in row]
    joined = text(str(row.get("data") or ""), "data")
    if not any(split) and joined:
        split = joined.split("|")
    return Record(
        at.timestamp(),
        fields["callid"],
        fields["queuename"] or "NONE",
        fields["agent"],
        fields["event"],
        split,
    )


def _time(value: Any, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):  # beyond the platform's or the calendar's
            raise RowError("time is out of range") from None
    if value is None:
        raise RowError("missing time")
    return parse_time(str(value), "time", zone, _TIME_FORMATS)


class CsvRows:
    """Lines of a CSV export of the queue_log table; the header names the columns."""

    def __init__(self, zone: ZoneInfo, header: list[str] | None) -> None:
        self.zone = zone
        self.header = header

    def parse(self, data: bytes) -> Record | None:
        fields = split_line(data)
        if fields is None:
            return None
        names = [f.strip().lower() for f in fields]
        if "callid" in names and "event" in names:
            missing = [n for n in REQUIRED if n not in names]
            if missing or not ("data" in names or "data1" in names):
                raise RowError(f"the header has no {(missing or ['data'])[0]} column")
            self.header = names
            return None
        if self.header is None:
            raise RowError("a row before the header (time, callid, queuename, agent, event)")
        if len(fields) != len(self.header):
            raise RowError(f"expected {len(self.header)} columns, got {len(fields)}")
        return record(dict(zip(self.header, fields, strict=True)), self.zone)


class TableRows:
    """The realtime queue_log table of the Asterisk database (read only)."""

    def __init__(self, url: str, table: str, zone: ZoneInfo, *, batch: int) -> None:
        self.url = url
        self.name = table
        self.zone = zone
        self.batch = batch

    def check(self) -> str:
        engine = self._engine()
        try:
            with engine.connect() as conn:
                table = self._reflect(conn)
                count = conn.execute(select(func.count()).select_from(table)).scalar_one()
        except SQLAlchemyError as exc:
            raise _error(exc, self.name) from None
        finally:
            engine.dispose()
        return f"table {self.name}, {count} rows"

    def read(self, position: Any) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], Any]]:
        """Batches of (location, row) pairs after `position`, each with its new position; a
        row becomes a `Record` by `record` (in the connector, where each row is isolated)."""
        position = _position(position)
        engine = self._engine()
        try:
            with engine.connect() as conn:
                table = self._reflect(conn)
                while True:
                    rows = conn.execute(self._query(table, position)).mappings().all()
                    if not rows:
                        return
                    found: list[tuple[str, dict[str, Any]]] = []
                    for row in rows:
                        position = self._advance(position, row)
                        found.append((self._location(row), dict(row)))
                    yield found, dict(position)
                    if len(rows) < self.batch:
                        return
        except SQLAlchemyError as exc:
            raise _error(exc, self.name) from None
        finally:
            engine.dispose()

    def _engine(self) -> Any:
        try:
            return create_engine(self.url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            # ImportError: a dialect whose driver is not installed (mysql needs PyMySQL).
            raise ConnectorError(f"cannot use table_url: {exc}", permanent=True) from None

    def _reflect(self, conn: Any) -> Table:
        try:
            table = Table(self.name, MetaData(), autoload_with=conn)
        except NoSuchTableError:
            raise ConnectorError(f"no table {self.name!r} in table_url", permanent=True) from None
        names = {c.name.lower() for c in table.columns}
        missing = [n for n in REQUIRED if n not in names]
        if missing or not ({"data", "data1"} & names):
            wanted = (missing or ["data or data1..data5"])[0]
            raise ConnectorError(f"table {self.name!r} has no {wanted} column", permanent=True)
        return table

    def _query(self, table: Table, position: dict[str, Any]) -> Any:
        time = table.c.time
        has_id = "id" in table.c
        order = [time, table.c.id] if has_id else [time, table.c.callid, table.c.event]
        query = select(table).order_by(*order).limit(self.batch)
        last = _restore(position.get("time"))
        if last is None:
            return query
        if has_id and position.get("id") is not None:
            return query.where(or_(time > last, and_(time == last, table.c.id > position["id"])))
        # Without an id, rows at the last time are skipped by count.
        return query.where(time >= last).offset(int(position.get("same", 0)))

    def _advance(self, position: dict[str, Any], row: Any) -> dict[str, Any]:
        stored = _store(row["time"])
        same = position.get("same", 0) + 1 if stored == position.get("time") else 1
        has_id = "id" in row
        return {"time": stored, "id": row["id"] if has_id else None, "same": same}

    def _location(self, row: Any) -> str:
        if "id" in row and row["id"] is not None:
            return f"{self.name} id {row['id']}"
        return f"{self.name} time {row['time']}"


def _position(position: Any) -> dict[str, Any]:
    if position is None:
        return {}
    if not isinstance(position, dict):
        raise ConnectorError("stored cursor is unusable: not a table position", permanent=True)
    return dict(position)


def _store(value: Any) -> Any:
    # A JSON-safe copy of the column value that `_restore` turns back into a comparable one.
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, dict) and "datetime" in value:
        return datetime.fromisoformat(value["datetime"])
    return value


def _error(exc: SQLAlchemyError, table: str) -> ConnectorError:
    # The first line of the driver's message only: never the URL (it may hold a password).
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return ConnectorError(f"cannot read table {table!r}: {reason}")
