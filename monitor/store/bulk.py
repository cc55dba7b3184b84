"""Bulk writes and lookups for ingest, without SQLAlchemy's per-row and per-value work.

- `insert_rows`: many rows as tuples. On SQLite the statement is compiled by SQLAlchemy once and
  the tuples go to the driver with only the values that need it converted, exactly as the column
  types would (times by `instants`, held to the type's own processor by a test);
  SQLAlchemy's executemany would build a parameter dict and call a type processor for every
  value, which costs more than SQLite's insert itself.
- `in_values` / `value_parts` / `select_in`: `column IN values` as a statement made once and
  run with one parameter: on SQLite a JSON array that json_each unpacks (no parameter per value,
  no limit on their number), elsewhere expanding lists of CHUNK values.

Other databases take SQLAlchemy's usual path: the same rows and results on both.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Boolean, Connection, String, Table, bindparam, func, select
from sqlalchemy.dialects import sqlite

from monitor.store.database import chunks, insert_ignore
from monitor.store.instants import Instant, instants

Converter = Callable[[Any], Any]
ColumnConverter = Callable[[Sequence[Any]], Sequence[Any]]

# The sqlite3 module binds an int, float or str as it is, but for any other value (None, a
# bool) it first looks for an adapter: with none registered, it asks the value's type and the
# protocol for `__conform__`/`__adapt__`, which builds and throws away an AttributeError with
# its formatted message, for every NULL and flag of every row (about a tenth of the storing
# process's instructions in a queue_log import, whose rows are half NULLs). An adapter found
# at once costs a dictionary lookup and a C call, and stores the same: NULL for None
# (`{}.get(None)` is None), 0 or 1 for a bool (as sqlite3 binds a bool, an int).
sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))
sqlite3.register_adapter(bool, int)


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    ignore_conflicts: Sequence[str] | None = None,
    as_stored: bool = False,
) -> int:
    """INSERT many rows, given as tuples in `columns` order; with `ignore_conflicts`, rows whose
    key (those columns) is already stored are skipped (ON CONFLICT DO NOTHING). Return how
    many were stored, as the driver counts them (exact on SQLite; -1 where it cannot tell).

    This is ingest's hot path. SQLAlchemy's executemany builds a parameter dict per row and runs
    a type processor per value, which costs several times SQLite's own insert. On SQLite the
    statement is compiled by SQLAlchemy once and the tuples go to the driver with only the values
    that need it converted, exactly as the column types would (`_sqlite_converter`; a test
    holds them equal to SQLAlchemy's own processors). Other databases take the usual path.

    `as_stored`: on SQLite the rows already hold every value as SQLite stores it (a
    CallEvent's times are integer microseconds), so not one is converted."""
    if not rows:
        return 0
    if conn.dialect.name != "sqlite":
        stmt = insert_ignore(conn, table, ignore_conflicts) if ignore_conflicts else table.insert()
        return int(
            conn.execute(stmt, [dict(zip(columns, row, strict=True)) for row in rows]).rowcount
        )
    sql, order, converters = _sqlite_insert(table, tuple(columns), tuple(ignore_conflicts or ()))
    if order is None and (as_stored or not converters):
        return int(conn.exec_driver_sql(sql, [tuple(row) for row in rows]).rowcount)
    # Column by column: one comprehension per converted column, and zip (C) builds the tuples
    # the driver wants, instead of a Python loop over every value of every row.
    values: list[Sequence[Any]] = list(zip(*rows, strict=True))
    if order is not None:
        values = [values[i] for i in order]
    for index, convert in converters:
        values[index] = convert(values[index])  # a whole column at a time; None stays None
    return int(conn.exec_driver_sql(sql, list(zip(*values, strict=True))).rowcount)


_SqliteInsert = tuple[str, list[int] | None, list[tuple[int, ColumnConverter]]]
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


def _sqlite_converter(column_type: Any, dialect: Any) -> ColumnConverter | None:
    if isinstance(column_type, Instant):
        return instants  # a test holds it to the type's own processor
    if isinstance(column_type, Boolean):
        # A bool is an int: sqlite3 stores it as the 0 or 1 the type's processor would make
        # (a test holds them equal), without a Python call per value of every flag column.
        return None
    processor: Converter | None = column_type.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return None
    return functools.partial(_each, processor)


def _each(processor: Converter, values: Sequence[Any]) -> list[Any]:
    return list(map(processor, values))  # processors take None too


def in_values(conn: Connection, column: Any) -> Any:
    """`column IN :values` for this connection, to make a statement once and run it with
    {"values": part} for each part of `value_parts(conn, values)`.

    On SQLite the values travel as a single JSON array parameter that SQLite's json_each
    unpacks: nothing is built or bound per value (an IN of bound parameters costs SQLAlchemy
    several function calls per value, and SQLite limits their number), so one part holds them
    all. Elsewhere, and on an SQLite without JSON, an expanding IN of CHUNK values a part."""
    return member(column, as_json=json_values(conn))


@functools.lru_cache(maxsize=64)
def member(column: Any, *, as_json: bool) -> Any:
    """in_values, knowing whether the values go as JSON (`json_values`)."""
    if as_json:
        array = func.json_each(bindparam("values", type_=String)).table_valued("value")
        return column.in_(select(array.c.value).scalar_subquery())
    return column.in_(bindparam("values", expanding=True))


def value_parts(conn: Connection, values: Sequence[str | int]) -> Iterator[Any]:
    """The parameter of `in_values` for each query that together cover `values`."""
    if not values:
        return
    if json_values(conn):
        yield json_array(values)
        return
    for part in chunks(values):
        yield list(part)


def json_array(values: Collection[str | int]) -> str:
    """`values` as a JSON array (what json_each unpacks). Ingest sends thousands of ids a
    batch: when no string needs an escape (printable ASCII without a quote or a backslash:
    Message-IDs, conversation keys), the array is their join, a few scans of one string in C,
    instead of json's escaping of each (a test holds the two to the same values)."""
    try:
        joined = '","'.join(values)  # type: ignore[arg-type]  # integers: TypeError
    except TypeError:
        return json.dumps(list(values))
    if (
        joined.isascii()
        and joined.isprintable()
        and "\\" not in joined
        and joined.count('"') == 2 * (len(values) - 1)  # the separators' quotes only
    ):
        return f'["{joined}"]'
    return json.dumps(list(values))


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
    times to convert)."""
    rows: list[Any] = []
    query = _select_in(
        json_values(conn),
        table,
        tuple(sorted(where)),
        column,
        None if fields is None else tuple(fields),
    )
    params = {f"where_{key}": value for key, value in where.items()}
    # Sorted: the same statements whatever the order of the set, and SQLite probes its index in
    # order (fewer instructions than the same ids unsorted, measured).
    for part in value_parts(conn, sorted(set(values))):
        rows.extend(conn.execute(query, {**params, "values": part}).mappings().all())
    return rows


@functools.lru_cache(maxsize=64)
def _select_in(
    as_json: bool,
    table: Table,
    where: tuple[str, ...],
    column: str,
    fields: tuple[str, ...] | None,
) -> Any:
    selected = [table.c[f] for f in fields] if fields is not None else [table]
    among = member(table.c[column], as_json=as_json)
    return select(*selected).where(among, *(table.c[k] == bindparam(f"where_{k}") for k in where))
