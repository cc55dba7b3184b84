"""The database: engine set-up, schema version, and the idempotent writes ingest relies on.

SQLite (a file in WAL mode) is the default and needs no server; PostgreSQL is chosen by URL. The
two differ only in the dialect's `insert` used for ON CONFLICT, so everything above this module
is written once.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import SQLModel

from monitor.models import META, SCHEMA_VERSION

logger = logging.getLogger(__name__)

# SQLite's limit on bound parameters is 32766 since 3.32, but older builds allow 999: stay far
# below both so a large batch never fails on a parameter count.
CHUNK = 400


class StoreError(Exception):
    """The database cannot be used (unreachable, locked, newer schema). One readable line."""

    permanent = False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the exporter read while a poll writes; NORMAL is durable at each checkpoint and
    # safe against corruption in WAL mode; the busy timeout rides out a concurrent writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, base_dir: Path | None = None) -> Engine:
    """An engine for `url`; a relative SQLite path is relative to `base_dir` (the config's)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"database: {url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StoreError("database: an in-memory SQLite database cannot be shared; use a file")
        path = Path(database)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"database: cannot create {path.parent} ({exc.strerror})") from None
        engine = create_engine(parsed.set(database=str(path)), connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise StoreError(f"database: unsupported backend {parsed.get_backend_name()!r}")


def describe(engine: Engine) -> str:
    """The URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


def prepare(engine: Engine) -> None:
    """Create the schema on an empty database, or check the version of an existing one.

    A database written by a newer version is refused rather than half-understood; an older one
    is migrated step by step inside one transaction (none exist yet: version 1 is the first)."""
    try:
        with engine.begin() as conn:
            serialize(conn)
            has_meta = inspect(conn).has_table("meta")
            if not has_meta:
                SQLModel.metadata.create_all(conn)
                conn.execute(
                    insert_ignore(conn, META),
                    [{"key": "schema_version", "value": str(SCHEMA_VERSION)}],
                )
                return
            found = conn.execute(
                select(META.c.value).where(META.c.key == "schema_version")
            ).scalar_one_or_none()
            version = int(found) if found is not None else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database {describe(engine)} has schema v{version}, newer than this "
                    f"support-monitor (v{SCHEMA_VERSION}): upgrade support-monitor"
                )
            if version < SCHEMA_VERSION:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[step](conn)
                set_meta(conn, "schema_version", str(SCHEMA_VERSION))
            # Tables added in this version without a migration step (none yet) are created here.
            SQLModel.metadata.create_all(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"database {describe(engine)}: {_first_line(exc)}") from None


# Any constant: the key of the transaction-level advisory lock that serialises schema changes.
_SCHEMA_LOCK = 0x5350_4D4F


def serialize(conn: Connection) -> None:
    """Make concurrent instances take turns for the rest of this transaction.

    Several instances starting together on PostgreSQL would otherwise race to CREATE the same
    tables or redo the same measurements. A transaction-level advisory lock is released by
    COMMIT/ROLLBACK, so it cannot leak through the pool; SQLite serialises writers anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text_ = str(orig or exc)
    line = text_.strip().splitlines()[0] if text_.strip() else type(exc).__name__
    # A full disk met while creating the WAL's -shm file is reported as a bare "disk I/O error".
    if getattr(orig, "sqlite_errorname", None) == "SQLITE_IOERR_SHMSIZE":
        line += " (cannot grow the -shm file beside the database: is the disk full?)"
    return line


def error_line(exc: SQLAlchemyError) -> str:
    return _first_line(exc)


# Ordered schema migrations: MIGRATIONS[n] upgrades a version n-1 database to version n.
MIGRATIONS: dict[int, Any] = {}


def insert_ignore(conn: Connection, table: Table, keys: Sequence[str] | None = None) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for this connection's dialect."""
    return _insert_ignore(conn.dialect.name, table, None if keys is None else tuple(keys))


def insert_add(conn: Connection, table: Table, keys: Sequence[str], column: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE SET column = column + excluded.column (a delta upsert)."""
    return _insert_add(conn.dialect.name, table, tuple(keys), column)


# The statements are made once: every batch runs them, and building one (and its cache key) costs
# SQLAlchemy more than running it.
@functools.lru_cache(maxsize=64)
def _insert_ignore(dialect: str, table: Table, keys: tuple[str, ...] | None) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=keys)


@functools.lru_cache(maxsize=64)
def _insert_add(dialect: str, table: Table, keys: tuple[str, ...], column: str) -> Any:
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={column: table.c[column] + stmt.excluded[column]}
    )


Converter = Callable[[Any], Any]


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    ignore_conflicts: Sequence[str] | None = None,
) -> None:
    """INSERT many rows, given as tuples in `columns` order; with `ignore_conflicts`, rows whose
    key (those columns) is already stored are skipped (ON CONFLICT DO NOTHING).

    This is ingest's hot path. SQLAlchemy's executemany builds a parameter dict per row and runs
    a type processor per value, which costs several times SQLite's own insert. On SQLite the
    statement is compiled by SQLAlchemy once and the tuples go to the driver with only the values
    that need it converted, exactly as the column types would (`_sqlite_converters`; a test
    holds them equal to SQLAlchemy's own processors). Other databases take the usual path."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        stmt = insert_ignore(conn, table, ignore_conflicts) if ignore_conflicts else table.insert()
        conn.execute(stmt, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    sql, order, converters = _sqlite_insert(table, tuple(columns), tuple(ignore_conflicts or ()))
    if order is None and not converters:
        conn.exec_driver_sql(sql, [tuple(row) for row in rows])
        return
    # Column by column: one comprehension per converted column, and zip (C) builds the tuples
    # the driver wants, instead of a Python loop over every value of every row.
    values = list(zip(*rows, strict=True))
    if order is not None:
        values = [values[i] for i in order]
    for index, convert in converters:
        values[index] = tuple(map(convert, values[index]))  # converters take None too
    conn.exec_driver_sql(sql, list(zip(*values, strict=True)))


_SqliteInsert = tuple[str, list[int] | None, list[tuple[int, Converter]]]
_SQLITE_INSERTS: dict[tuple[Table, tuple[str, ...], tuple[str, ...]], _SqliteInsert] = {}


def _sqlite_insert(table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> _SqliteInsert:
    """The SQL with qmark parameters, the order they take the given columns in (None: as
    given) and the value converters by parameter position; made once per statement."""
    cache_key = (table, columns, keys)
    found = _SQLITE_INSERTS.get(cache_key)
    if found is None:
        dialect = sqlite.dialect()
        stmt = sqlite.insert(table)
        if keys:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        names = list(compiled.positiontup or ())
        if sorted(names) != sorted(columns):
            raise ValueError(f"insert_rows: {table.name} has no columns {columns}")
        order = [columns.index(name) for name in names]
        converters = [
            (i, c)
            for i, name in enumerate(names)
            if (c := _sqlite_converter(table.c[name].type, dialect)) is not None
        ]
        identity = order == list(range(len(order)))
        found = _SQLITE_INSERTS[cache_key] = (
            str(compiled),
            None if identity else order,
            converters,
        )
    return found


# Values a datetime column's own processor must turn into what `sqlite_datetime` makes of them.
_PROBES = (
    datetime(2026, 11, 20, 9, 0, 0, 120, tzinfo=UTC),
    datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
)


def _sqlite_converter(column_type: Any, dialect: Any) -> Converter | None:
    processor: Converter | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    if processor is not None and all(_same(processor, sqlite_datetime, probe) for probe in _PROBES):
        return sqlite_datetime  # the same strings, without the per-value % formatting
    return processor


def _same(processor: Converter, fast: Converter, probe: datetime) -> bool:
    try:
        return bool(processor(probe) == fast(probe))
    except (TypeError, ValueError, AttributeError):
        return False


_DAYS: dict[int, str] = {}  # "2026-11-20" by day ordinal: the part shared by a day's values


def sqlite_datetime(value: datetime | None) -> str | None:
    """An aware datetime as sqlmodel's UTC type stores it in SQLite: in UTC, as
    '2026-11-20 09:00:00.000000' (SQLAlchemy's format; None stays None, as with its processor).
    A million calls are three million of these: the date part is formatted once per day."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.utcoffset() is None:
            raise ValueError("Datetime values must have timezone information")
        value = value.astimezone(UTC)
    day = _DAYS.get(value.toordinal())
    if day is None:
        if len(_DAYS) > 100_000:
            _DAYS.clear()
        day = _DAYS[value.toordinal()] = "%04d-%02d-%02d" % (value.year, value.month, value.day)  # noqa: UP031
    # %-formatting: faster here than an f-string with format specs, or isoformat.
    return "%s %02d:%02d:%02d.%06d" % (  # noqa: UP031
        day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def set_meta(conn: Connection, key: str, value: str) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = META
    stmt = dialect.insert(table).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def get_meta(conn: Connection, key: str) -> str | None:
    table = META
    return conn.execute(select(table.c.value).where(table.c.key == key)).scalar_one_or_none()


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def in_values(conn: Connection, column: Any) -> Any:
    """`column IN :values` for this connection, to make a statement once and run it with
    {"values": part} for each part of `value_parts(conn, values)`.

    On SQLite the values travel as a single JSON array parameter that SQLite's json_each
    unpacks: nothing is built or bound per value (an IN of bound parameters costs SQLAlchemy
    several function calls per value, and SQLite limits their number), so one part holds them
    all. Elsewhere, and on an SQLite without JSON, an expanding IN of CHUNK values a part."""
    return member(column, json_values=json_values(conn))


@functools.lru_cache(maxsize=64)
def member(column: Any, *, json_values: bool) -> Any:
    """in_values for a connection of which `json_values` is known."""
    if json_values:
        array = func.json_each(bindparam("values", type_=String)).table_valued("value")
        return column.in_(select(array.c.value).scalar_subquery())
    return column.in_(bindparam("values", expanding=True))


def value_parts(conn: Connection, values: Sequence[str | int]) -> Iterator[Any]:
    """The parameter of `in_values` for each query that together cover `values`."""
    if not values:
        return
    if json_values(conn):
        yield json.dumps(list(values))
        return
    for part in chunks(values):
        yield list(part)


def json_values(conn: Connection) -> bool:
    """Whether `value_parts` sends the values as one JSON array (SQLite with JSON)."""
    return conn.dialect.name == "sqlite" and _sqlite_has_json()


@functools.cache
def _sqlite_has_json() -> bool:
    try:
        with sqlite3.connect(":memory:") as probe:
            return bool(probe.execute("SELECT value FROM json_each('[1]')").fetchall())
    except sqlite3.Error:
        return False


def select_in(
    conn: Connection,
    table: Table,
    where: Mapping[str, Any],
    column: str,
    values: Iterable[Any],
    fields: Sequence[str] | None = None,
) -> list[Any]:
    """Rows of `table` matching `where` (column = value) whose `column` is in `values`
    (strings or integers); only `fields` of each when given (cheaper than whole rows: no
    datetimes to parse)."""
    rows: list[Any] = []
    query = _select_in(
        json_values(conn),
        table,
        tuple(sorted(where)),
        column,
        None if fields is None else tuple(fields),
    )
    params = {f"where_{key}": value for key, value in where.items()}
    for part in value_parts(conn, sorted(set(values))):
        rows.extend(conn.execute(query, {**params, "values": part}).mappings().all())
    return rows


@functools.lru_cache(maxsize=64)
def _select_in(
    json_values: bool,
    table: Table,
    where: tuple[str, ...],
    column: str,
    fields: tuple[str, ...] | None,
) -> Any:
    selected = [table.c[f] for f in fields] if fields is not None else [table]
    among = member(table.c[column], json_values=json_values)
    return select(*selected).where(among, *(table.c[k] == bindparam(f"where_{k}") for k in where))


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; SQLAlchemy errors become a one-line StoreError."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(f"database {describe(engine)}: {_first_line(exc)}") from exc


def ping(engine: Engine) -> None:
    with transaction(engine) as conn:
        conn.execute(text("SELECT 1"))
