"""The table forms of queue_log: Asterisk's realtime table, or a CSV export of it.

Asterisk's realtime queue_log (main/logger.c) has the columns `time`, `callid`, `queuename`,
`agent`, `event` and either `data1..data5` (split parameters) or one `data` column with the
parameters still joined by `|`; FreePBX tables have both, and `data1..5` win when they hold
anything. The alembic schema adds an `id`. `time` is the server's local wall-clock time
(`%F %T.%6q`) unless `queue_log_realtime_use_gmt=yes`, so a naive time is read in the zone given.

Other tables and exports name these otherwise, and some move values out of the parameters into
columns of their own: `columns:` (through `connectors.tabular`) maps our keys (`time`, `callid`,
`queue`, `agent`, `event`, `data`, `data1`..`data5`, `id`) to the file's names, and `wait`,
`talk` and `caller` to columns holding the hold time, the talk time and the caller's number;
these are put back where Asterisk writes them in each verb's parameters (`NAMED`), so a record
reads the same whatever form it came in. The `htime_ttime` preset is one such layout.

- `CsvRows` parses the lines of a CSV export (a header row names the columns; a file may repeat
  it; `fields:` names them for an export without one; `delimiter: "|"` reads psql's console
  tables, rulers skipped);
- `TableRows` reads the table with SQLAlchemy, in (time, id) order, from a position
  `{"time": ..., "id": ..., "same": n}`: the last time read, the last id at that time, and (for
  tables without an id) how many rows at that time were read already.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from connectors.base import ConnectorError
from connectors.csv_rows import RowError
from connectors.phone.queue_log_calls import Record
from connectors.tabular import ColumnRef, Fields, Keys, Layout, Preset, Row

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.exc import SQLAlchemyError

DATA = tuple(f"data{n}" for n in range(1, 6))
KEYS = Keys(
    names=(
        "id",
        "time",
        "callid",
        "queue",
        "agent",
        "event",
        "data",
        *DATA,
        "wait",
        "talk",
        "caller",
    ),
    times=frozenset({"time"}),
    required=("time", "callid", "queue", "agent", "event"),
    defaults={
        "id": "id",
        "time": "time",
        "callid": "callid",
        "queue": "queuename",
        "agent": "agent",
        "event": "event",
        "data": "data",
        **{name: name for name in DATA},
    },
)
DEFAULT_TIME_FORMATS = ("epoch", "iso")
# Where Asterisk's app_queue.c writes the hold time, talk time and caller id in each verb's
# parameters (0 = data1). ATTENDEDTRANSFER has a variable count and is read from the right.
NAMED: dict[str, dict[str, int]] = {
    "ENTERQUEUE": {"caller": 1},  # url | callerid | position
    "CONNECT": {"wait": 0},  # holdtime | bridged uniqueid | ringtime
    "COMPLETECALLER": {"wait": 0, "talk": 1},  # holdtime | calltime | origposition
    "COMPLETEAGENT": {"wait": 0, "talk": 1},
    "BLINDTRANSFER": {"wait": 2, "talk": 3},  # extension | context | holdtime | calltime | ...
    "TRANSFER": {"wait": 2, "talk": 3},
    "ABANDON": {"wait": 2},  # position | origposition | waittime
    "EXITWITHTIMEOUT": {"wait": 2},
    "EXITEMPTY": {"wait": 2},
    "WITHDRAW": {"wait": 2},
    "EXITWITHKEY": {"wait": 3},  # key | position | origposition | waittime
}
PRESETS: dict[str, Preset] = {
    # A queue_log table dumped with columns of its own (a real export, 2018): `type` holds the
    # member, `param1` the caller's number (the dialled number on outbound-dial verbs), `htime`
    # and `ttime` the hold and talk seconds (on RINGNOANSWER, `htime` is the ring time in ms),
    # `date_time` the epoch and `time` the local wall-clock time (not read).
    "htime_ttime": Preset(
        source="queue_log table with param1..3, htime and ttime columns",
        columns={
            "id": "uid",
            "time": "date_time",
            "callid": "callid",
            "queue": "queue_name",
            "agent": "type",
            "event": "event",
            "data1": "param1",
            "data2": "param2",
            "data3": "param3",
            "wait": "htime",
            "talk": "ttime",
            "caller": "param1",
        },
    ),
}


class QueueLogColumns:
    """How a form's records become `Record`s: the layouts of its column names (cached), and
    the named values put back into each verb's parameters."""

    def __init__(
        self,
        wanted: Mapping[str, ColumnRef],
        optional: frozenset[str],
        zone: ZoneInfo,
        formats: Sequence[str],
        *,
        delimiter: str = ",",
        verbs: Mapping[str, str] | None = None,
    ) -> None:
        self.wanted = wanted
        self.optional = optional
        self.zone = zone
        self.formats = formats
        self.delimiter = delimiter
        self.verbs = {k.upper(): v.upper() for k, v in (verbs or {}).items()}
        self.layouts: dict[tuple[str, ...], Layout] = {}

    def layout(self, names: Sequence[str]) -> Layout:
        found = self.layouts.get(tuple(names))
        if found is None:
            found = Layout(
                names, self.wanted, self.optional, self.zone, self.formats, delimiter=self.delimiter
            )
            if found.problem is None and not any(found.has(n) for n in ("data", *DATA)):
                found.problem = "the header has no data or data1..data5 column"
            self.layouts[tuple(names)] = found
        return found

    def record(self, row: Row) -> Record:
        """One row as a Record; RowError when unusable."""
        at = row.time("time").timestamp()
        callid, event = row.text("callid"), row.text("event")
        if not callid or not event:
            raise RowError("missing callid" if not callid else "missing event")
        data = [row.text(name) for name in DATA if row.has(name)]
        joined = row.text("data")
        if not any(data) and joined:
            data = joined.split("|")
        verb = event.upper()
        verb = self.verbs.get(verb, verb)
        if verb == "ATTENDEDTRANSFER" and (row.has("wait") or row.has("talk")):
            # method | method data | holdtime | calltime | origposition, read from the right
            data = [*data[:2], *[""] * (2 - len(data[:2]))]
            data += [_seconds(row, "wait"), _seconds(row, "talk"), "0"]
        else:
            for key, index in NAMED.get(verb, {}).items():
                value = row.text(key) if key == "caller" else _seconds(row, key)
                if value:
                    data += [""] * (index + 1 - len(data))
                    data[index] = value
        return Record(at, callid, row.text("queue") or "NONE", row.text("agent"), event, data)


def _seconds(row: Row, key: str) -> str:
    value = row.seconds(key)
    return "" if value is None else f"{value:g}"


class CsvRows:
    """Lines of a CSV export of a queue_log table; a header line names the columns (it may
    come again later), or `fields` does."""

    def __init__(
        self, columns: QueueLogColumns, header: list[str] | None, fields: list[str] | None = None
    ) -> None:
        self.columns = columns
        self.fixed = fields is not None
        self.header = fields if fields is not None else header
        self.split = Fields(columns.delimiter).split
        wanted = columns.wanted
        self.marks = {str(wanted["callid"]).casefold(), str(wanted["event"]).casefold()}

    def parse(self, data: bytes) -> Record | None:
        fields = self.split(data)
        if fields is None:
            return None
        if not self.fixed and self.marks <= {f.strip().casefold() for f in fields}:
            self.header = [f.strip() for f in fields]
            problem = self.columns.layout(self.header).problem
            if problem is not None:  # and every row under it, with the same reason
                raise RowError(problem)
            return None
        if self.header is None:
            raise RowError("a row before the header (time, callid, queuename, agent, event)")
        return self.columns.record(self.columns.layout(self.header).row(fields))


class TableRows:
    """The realtime queue_log table of the Asterisk database (read only). SQLAlchemy is imported
    here, when a table is read: a poll loads every source's settings before it starts reading
    its first source, and a queue_log from a file needs none of it."""

    def __init__(self, url: str, table: str, columns: QueueLogColumns, *, batch: int) -> None:
        self.url = url
        self.name = table
        self.columns = columns
        self.batch = batch

    def check(self) -> str:
        from sqlalchemy import func, select
        from sqlalchemy.exc import SQLAlchemyError

        engine = self._engine()
        try:
            with engine.connect() as conn:
                table, _ = self._reflect(conn)
                count = conn.execute(select(func.count()).select_from(table)).scalar_one()
        except SQLAlchemyError as exc:
            raise _error(exc, self.name) from None
        finally:
            engine.dispose()
        return f"table {self.name}, {count} rows"

    def read(self, position: Any) -> Iterator[tuple[list[tuple[str, Row]], Any]]:
        """Batches of (location, row) pairs after `position`, each with its new position; a
        row becomes a `Record` by `QueueLogColumns.record` (in the connector, where each row is
        isolated)."""
        from sqlalchemy.exc import SQLAlchemyError

        position = _position(position)
        engine = self._engine()
        try:
            with engine.connect() as conn:
                table, layout = self._reflect(conn)
                time_at, id_at = _index(layout, "time"), _index(layout, "id")
                while True:
                    rows = conn.execute(self._query(table, layout, position)).all()
                    if not rows:
                        return
                    found: list[tuple[str, Row]] = []
                    for values in rows:
                        stamp = values[time_at]
                        ident = None if id_at is None else values[id_at]
                        position = _advance(position, stamp, ident)
                        where = f"id {ident}" if ident is not None else f"time {stamp}"
                        found.append((f"{self.name} {where}", Row(tuple(values), layout)))
                    yield found, dict(position)
                    if len(rows) < self.batch:
                        return
        except SQLAlchemyError as exc:
            raise _error(exc, self.name) from None
        finally:
            engine.dispose()

    def _engine(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return create_engine(self.url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            # ImportError: a dialect whose driver is not installed (mysql needs PyMySQL).
            raise ConnectorError(f"cannot use table_url: {exc}", permanent=True) from None

    def _reflect(self, conn: Any) -> tuple[Table, Layout]:
        from sqlalchemy import MetaData, Table
        from sqlalchemy.exc import NoSuchTableError

        try:
            table = Table(self.name, MetaData(), autoload_with=conn)
        except NoSuchTableError:
            raise ConnectorError(f"no table {self.name!r} in table_url", permanent=True) from None
        layout = self.columns.layout([c.name for c in table.columns])
        if layout.problem is not None:
            problem = layout.problem.replace("the header has", f"table {self.name!r} has")
            raise ConnectorError(problem, permanent=True)
        return table, layout

    def _query(self, table: Table, layout: Layout, position: dict[str, Any]) -> Any:
        from sqlalchemy import and_, or_, select

        column = table.columns
        time = column[layout.names[_index(layout, "time")]]
        id_at = _index(layout, "id")
        if id_at is not None:
            order = [time, column[layout.names[id_at]]]
        else:
            order = [time, *(column[layout.names[_index(layout, k)]] for k in ("callid", "event"))]
        query = select(table).order_by(*order).limit(self.batch)
        last = _restore(position.get("time"))
        if last is None:
            return query
        if id_at is not None and position.get("id") is not None:
            ident = column[layout.names[id_at]]
            return query.where(or_(time > last, and_(time == last, ident > position["id"])))
        # Without an id, rows at the last time are skipped by count.
        return query.where(time >= last).offset(int(position.get("same", 0)))


def _index(layout: Layout, key: str) -> Any:
    """The column index of `key` (one column), None when the table has none for it."""
    found = layout.sources.get(key)
    return None if found is None else found[0]


def _advance(position: dict[str, Any], stamp: Any, ident: Any) -> dict[str, Any]:
    stored = _store(stamp)
    same = position.get("same", 0) + 1 if stored == position.get("time") else 1
    return {"time": stored, "id": ident, "same": same}


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
