"""The database: engine set-up, schema version, and the idempotent writes ingest relies on.

SQLite (a file in WAL mode) is the default and needs no server; PostgreSQL is chosen by URL. The
two differ only in the dialect's `insert` used for ON CONFLICT, so everything above this module
is written once.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    String,
    Table,
    create_engine,
    event,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from monitor.config import masked_url
from monitor.errors import StoreError as StoreError  # where it is raised, and imported from
from monitor.measure.events import callback_conversation
from monitor.store.instants import Instant
from monitor.store.schema import (
    ALERT_STATES,
    CALLS,
    INQUIRIES,
    MESSAGES,
    META,
    METADATA,
    SCHEMA_VERSION,
)

logger = logging.getLogger(__name__)

# SQLite's limit on bound parameters is 32766 since 3.32, but older builds allow 999: stay far
# below both so a large batch never fails on a parameter count.
CHUNK = 400


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the exporter read while a poll writes; NORMAL is durable at each checkpoint and
    # safe against corruption in WAL mode; the busy timeout rides out a concurrent writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A checkpoint every 10,000 pages (40 MB of WAL) instead of 1,000: an import commits a
    # batch at a time, and each checkpoint copied the same hot index pages back again (a fifth
    # of the cost of storing a million-line queue_log's calls). The WAL file is cut back to
    # 64 MB after a checkpoint, so a big import leaves no big file behind.
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.execute("PRAGMA journal_size_limit=67108864")
    # 32 MB of page cache instead of SQLite's 2 MB: storing a batch writes into indexes keyed
    # by caller numbers and conversations, in no order, whose pages a million-line import
    # read back from the file again and again (1.3 s of system time of its ~11 s of CPU). The
    # cache is filled only as pages are read, so a small database costs no more.
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, base_dir: Path | None = None, *, create_folder: bool = True) -> Engine:
    """An engine for `url`; a relative SQLite path is relative to `base_dir` (the config's).
    A SQLite file's missing folder is created, unless `create_folder` is false (`check`, which
    changes nothing, says instead whether it could be)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"database: {masked_url(url)} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StoreError("database: an in-memory SQLite database cannot be shared; use a file")
        path = Path(database)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            if create_folder:
                path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = (exc.strerror or str(exc)).lower()
            raise StoreError(f"database: cannot create the folder {path.parent}: {why}") from None
        engine = create_engine(parsed.set(database=str(path)), connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise StoreError(f"database: unsupported backend {parsed.get_backend_name()!r}")


def describe(engine: Engine) -> str:
    """The URL without its user name and password, for messages."""
    return masked_url(engine.url)


def prepare(engine: Engine) -> None:
    """Create the schema on an empty database, or check the version of an existing one.

    A database written by a newer version is refused rather than half-understood; an older one
    is migrated step by step inside one transaction (MIGRATIONS). A database of this version is
    left as it is after reading its version: it was created, or upgraded, to this version with
    every table in that same transaction (so a new table needs a schema step too), and every
    command opens the database, so this is a part of each one's start-up."""
    if engine.dialect.name == "postgresql":
        _postgresql_partial_indexes()
    try:
        with engine.begin() as conn:
            serialize(conn)
            has_meta = inspect(conn).has_table("meta")
            if not has_meta:
                METADATA.create_all(conn)
                conn.execute(
                    insert_ignore(conn, META),
                    [{"key": "schema_version", "value": str(SCHEMA_VERSION)}],
                )
                return
            version = schema_version(conn, engine)
            if version == SCHEMA_VERSION:
                return
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](conn)
            set_meta(conn, "schema_version", str(SCHEMA_VERSION))
            # Tables added without a migration step (thread_link, purged_tally) are created here.
            METADATA.create_all(conn)
    except SQLAlchemyError as exc:
        # SQLite says "unable to open database file" for a folder it may not write in.
        problem = sqlite_access(engine) or _first_line(exc)
        raise StoreError(f"database {describe(engine)}: {problem}") from None


def _postgresql_partial_indexes() -> None:
    """Give PostgreSQL the WHERE of each partial index, declared for SQLite only in
    monitor.store.tables (so that SQLite processes never load the PostgreSQL dialect)."""
    for table in METADATA.tables.values():
        for index in table.indexes:
            where = index.dialect_options["sqlite"]["where"]
            if where is not None:
                index.dialect_options["postgresql"]["where"] = where


def schema_version(conn: Connection, engine: Engine) -> int:
    """The stored schema version; StoreError when it is newer than this version knows."""
    found = conn.execute(
        select(META.c.value).where(META.c.key == "schema_version")
    ).scalar_one_or_none()
    version = int(found) if found is not None else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database {describe(engine)} has schema v{version}, newer than this "
            f"support-monitor (v{SCHEMA_VERSION}): upgrade support-monitor"
        )
    return version


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


def _waiting_index(conn: Connection) -> None:
    """v2: the index of calls by outcome becomes an index of the waiting calls only."""
    conn.execute(text("DROP INDEX IF EXISTS ix_call_outcome"))
    next(i for i in CALLS.indexes if i.name == "ix_call_waiting").create(conn, checkfirst=True)


# SQLAlchemy's text of a time on SQLite, "2026-11-20 09:00:00.000000" (always six decimals), as
# microseconds since the Unix epoch (strftime('%s') reads the whole seconds in UTC); any other
# value (NULL) stays as it is.
_TEXT_AS_MICROS = (
    "CASE WHEN typeof({c}) = 'text' THEN"
    " CAST(strftime('%s', substr({c}, 1, 19)) AS INTEGER) * 1000000"
    " + CAST(substr({c}, 21, 6) AS INTEGER) ELSE {c} END"
)


def _integer_times(conn: Connection) -> None:
    """v3: on SQLite a time is stored as integer microseconds instead of text
    (monitor.store.instants).

    Done in SQL, one UPDATE per table for all its times, so a big database is converted in one
    pass over each table and without reading it into Python. The columns keep their declared
    type (DATETIME: numeric affinity, so an integer is stored as one) where a new database says
    BIGINT; SQLite treats both alike. PostgreSQL's `timestamptz` columns do not change."""
    if conn.dialect.name != "sqlite":
        return
    present = set(inspect(conn).get_table_names())  # later tables are created after the steps
    for table in METADATA.sorted_tables:
        times = [f'"{c.name}"' for c in table.c if isinstance(c.type, Instant)]
        if table.name in present and times:
            assignments = ", ".join(f"{c} = {_TEXT_AS_MICROS.format(c=c)}" for c in times)
            texts = " OR ".join(f"typeof({c}) = 'text'" for c in times)
            conn.execute(text(f'UPDATE "{table.name}" SET {assignments} WHERE {texts}'))


def _references(conn: Connection) -> None:
    """v4: `message.refers` (what a reply answers; the missed call a callback request stands
    for), `call.short_abandon` (the source called it a short abandon) and `call.caller_key`
    (an answered caller's callback conversation) with its index, `ix_call_got_through`.

    The callback requests stored before get their call: the call of `missed:<key>` is `<key>`
    (queue_log) or `call:<key>` (CDR, call logs) in the same source. The answered calls stored
    before get their caller's key, computed as ingest computes it (monitor.measure.events)."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())

    def has(table: str, column: str) -> bool:
        return table in present and column in {c["name"] for c in inspector.get_columns(table)}

    if "message" in present and not has("message", "refers"):
        conn.execute(text("ALTER TABLE message ADD COLUMN refers VARCHAR"))
        if "call" in present:
            conn.execute(
                text(
                    'UPDATE message SET refers = (SELECT c.external_id FROM "call" c'
                    " WHERE c.source = message.source AND c.external_id IN"
                    " (substr(message.external_id, 8), 'call:' || substr(message.external_id, 8))"
                    " LIMIT 1) WHERE message.external_id LIKE 'missed:%'"
                )
            )
    if "call" not in present:
        return
    if not has("call", "short_abandon"):
        false = "0" if conn.dialect.name == "sqlite" else "false"
        conn.execute(
            text(f'ALTER TABLE "call" ADD COLUMN short_abandon BOOLEAN NOT NULL DEFAULT {false}')
        )
    if not has("call", "caller_key"):
        conn.execute(text('ALTER TABLE "call" ADD COLUMN caller_key VARCHAR'))
        # A part at a time, by id: a big history is converted in bounded memory.
        page = text(
            'SELECT id, caller FROM "call" WHERE id > :after AND caller IS NOT NULL'
            " AND outcome IN ('answered', 'transferred') ORDER BY id LIMIT 10000"
        )
        after = 0
        while rows := conn.execute(page, {"after": after}).all():
            after = rows[-1][0]
            keys = [{"key": callback_conversation(caller), "id": id_} for id_, caller in rows]
            if keys := [k for k in keys if k["key"] is not None]:
                conn.execute(text('UPDATE "call" SET caller_key = :key WHERE id = :id'), keys)
    next(i for i in CALLS.indexes if i.name == "ix_call_got_through").create(conn, checkfirst=True)


def _responders(conn: Connection) -> None:
    """v5: who answered, kept with every agent-side message (`message.agent`), answered call
    (`call.agent`) and answered inquiry (`inquiry.agent`, with the reply that answered it,
    `inquiry.closed_by`), and why a message never pairs (`message.left_out`).

    Columns only: what was stored before has no responder (its sources did not say then), and
    the inquiries get their reply when start-up redoes the measurements (the measurement rules
    changed with this version: monitor.store.tallies.RULES)."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    wanted = {
        "message": ("agent", "left_out"),
        "call": ("agent",),
        "inquiry": ("closed_by", "agent"),
    }
    for table, columns in wanted.items():
        if table not in present:
            continue  # created whole, with these columns, after the steps
        have = {c["name"] for c in inspector.get_columns(table)}
        for column in columns:
            if column not in have:
                conn.execute(text(f'ALTER TABLE "{table}" ADD COLUMN {column} VARCHAR'))


def _verdicts(conn: Connection) -> None:
    """v6: `inquiry.verdict` (`within` or `late`, once given, never taken back) with the index of
    the open inquiries still without one (`ix_inquiry_unsettled`), and the tallies of
    `support_response_verdicts_total` for the inquiries closed before.

    A closed inquiry's verdict is `within` when it was answered in time, else `late` (answered
    late, or missed); an open one gets its `late` at the next scrape after its due time. Without
    the tallies, the first rebuild of a stored inquiry would take back a verdict that was never
    counted (a counter below zero). Done in SQL, a pass over the inquiries. Rows that retention
    deleted before had no verdict: the counter starts from what is kept."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    if "inquiry" not in present:
        return
    if "verdict" not in {c["name"] for c in inspector.get_columns("inquiry")}:
        conn.execute(text("ALTER TABLE inquiry ADD COLUMN verdict VARCHAR"))
    conn.execute(
        text(
            "UPDATE inquiry SET verdict = CASE WHEN status = 'answered' AND NOT breached"
            " THEN 'within' ELSE 'late' END"
            " WHERE verdict IS NULL AND status IN ('answered', 'missed')"
        )
    )
    index = next(i for i in INQUIRIES.indexes if i.name == "ix_inquiry_unsettled")
    index.create(conn, checkfirst=True)
    if "tally" in present:
        # Counted afresh from the verdicts (none were tallied before): the step can be redone.
        conn.execute(text("DELETE FROM tally WHERE metric = 'support_response_verdicts_total'"))
        conn.execute(
            text(
                "INSERT INTO tally (metric, source, labels, le, value)"
                " SELECT 'support_response_verdicts_total', source,"
                " 'channel=' || channel || ',verdict=' || verdict, '', COUNT(*)"
                " FROM inquiry WHERE verdict IS NOT NULL GROUP BY source, channel, verdict"
            )
        )


def _read_from(conn: Connection) -> None:
    """v7: `source_state.read_from` (when the last successful poll began) and
    `source_state.failing_since` (when the current run of failed polls began).

    A source whose last poll succeeded began that poll at its `last_attempt_at`, so it gets it
    as `read_from`; a failing source's `read_from` and `failing_since` are not known and stay
    empty until its next successful poll (its figures show as not read until then, which is
    what they are)."""
    inspector = inspect(conn)
    if "source_state" not in inspector.get_table_names():
        return
    present = {c["name"] for c in inspector.get_columns("source_state")}
    kind = "BIGINT" if conn.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    for column in ("read_from", "failing_since"):
        if column not in present:
            conn.execute(text(f"ALTER TABLE source_state ADD COLUMN {column} {kind}"))
    conn.execute(
        text(
            "UPDATE source_state SET read_from = last_attempt_at"
            " WHERE consecutive_failures = 0 AND last_success_at IS NOT NULL"
            " AND read_from IS NULL"
        )
    )


def _open_backlog(conn: Connection) -> None:
    """v8: the open backlog by index and aggregate (monitor.store.backlog): the indexes of open
    inquiries alone (`ix_inquiry_open`, `ix_inquiry_open_due`) replace `ix_inquiry_status`
    (every inquiry by status), `ix_alert_firing` holds the firing alert states, and the open
    inquiries per source and channel are counted into their tally
    (monitor.store.tallies.OPEN_NOW), which ingest keeps from then on. Counted afresh: the step
    can be redone."""
    present = set(inspect(conn).get_table_names())
    if "inquiry" in present:
        conn.execute(text("DROP INDEX IF EXISTS ix_inquiry_status"))
        for index in INQUIRIES.indexes:
            if index.name in ("ix_inquiry_open", "ix_inquiry_open_due"):
                index.create(conn, checkfirst=True)
    if "alert_state" in present:
        index = next(i for i in ALERT_STATES.indexes if i.name == "ix_alert_firing")
        index.create(conn, checkfirst=True)
    if "tally" in present and "inquiry" in present:
        conn.execute(text("DELETE FROM tally WHERE metric = 'support_open_inquiries'"))
        conn.execute(
            text(
                "INSERT INTO tally (metric, source, labels, le, value)"
                " SELECT 'support_open_inquiries', source, 'channel=' || channel, '', COUNT(*)"
                " FROM inquiry WHERE status = 'open' GROUP BY source, channel"
            )
        )


def _system_destinations(conn: Connection) -> None:
    """v9: `call.ended_by`, where the phone system ended a call no person took (3CX `EndCall`,
    a dialplan's hang-up, an empty queue), for the report's and the digest's count of those
    calls per destination.

    A column only: the calls stored before were read without it, so theirs stays empty (shown
    as "not recorded"); a file read again gives its calls none either, as they are stored."""
    inspector = inspect(conn)
    if "call" not in inspector.get_table_names():
        return  # created whole, with the column, after the steps
    if "ended_by" not in {c["name"] for c in inspector.get_columns("call")}:
        conn.execute(text('ALTER TABLE "call" ADD COLUMN ended_by VARCHAR'))


def _one_conversation_index(conn: Connection) -> None:
    """v10: one index of messages by conversation (conversation, source, side) replaces the
    two that each stored message was written into, (source, conversation) and
    `ix_message_callbacks` (conversation, side): it serves the look-ups of both."""
    if "message" not in inspect(conn).get_table_names():
        return  # created whole, with the index, after the steps
    conn.execute(text("DROP INDEX IF EXISTS ix_message_callbacks"))
    conn.execute(text("DROP INDEX IF EXISTS ix_message_conversation"))
    index = next(i for i in MESSAGES.indexes if i.name == "ix_message_conversation")
    index.create(conn)


# Ordered schema migrations: MIGRATIONS[n] upgrades a version n-1 database to version n.
MIGRATIONS: dict[int, Any] = {
    2: _waiting_index,
    3: _integer_times,
    4: _references,
    5: _responders,
    6: _verdicts,
    7: _read_from,
    8: _open_backlog,
    9: _system_destinations,
    10: _one_conversation_index,
}


def _dialect(name: str) -> Any:
    """The dialect module with `insert` (ON CONFLICT) for `name`. PostgreSQL's is imported
    only when it is used: it costs a SQLite poll about a tenth of a second of start-up."""
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    from sqlalchemy.dialects import sqlite

    return sqlite


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
    return _dialect(dialect).insert(table).on_conflict_do_nothing(index_elements=keys)


@functools.lru_cache(maxsize=64)
def _insert_add(dialect: str, table: Table, keys: tuple[str, ...], column: str) -> Any:
    stmt = _dialect(dialect).insert(table)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={column: table.c[column] + stmt.excluded[column]}
    )


def set_meta(conn: Connection, key: str, value: str) -> None:
    stmt = _dialect(conn.dialect.name).insert(META).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def get_meta(conn: Connection, key: str) -> str | None:
    table = META
    return conn.execute(select(table.c.value).where(table.c.key == key)).scalar_one_or_none()


def add_to_meta(conn: Connection, key: str, amount: int = 1) -> None:
    """Add `amount` to the integer kept under `key` (0 when absent), in one statement, so two
    instances adding at once both count."""
    conn.execute(insert_ignore(conn, META, ["key"]), [{"key": key, "value": "0"}])
    total = (META.c.value.cast(BigInteger) + amount).cast(String)
    conn.execute(update(META).where(META.c.key == key).values(value=total))


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


def verify(engine: Engine) -> str:
    """What `check` says of the database: reachable, of a schema this version can use, and
    writable, as every other command needs it; StoreError (one line) when it is not. Nothing
    is changed: the test write is rolled back, and a new database is not created."""
    if engine.dialect.name == "sqlite":
        problem = sqlite_access(engine)
        if problem is not None:
            raise StoreError(f"database {describe(engine)}: {problem}")
        path = Path(engine.url.database or "")
        if not path.exists():  # connecting would create it: say what the first use creates
            folder = "" if path.parent.is_dir() else f"the folder {path.parent} and "
            return f"{describe(engine)} (new: {folder}the tables are created on first use)"
    try:
        with engine.connect() as conn:
            has_meta = inspect(conn).has_table("meta")
            if not has_meta:
                _check_creatable(conn, engine)
                conn.rollback()
                return f"{describe(engine)} (empty: the tables are created on first use)"
            version = schema_version(conn, engine)
            # A write that changes nothing, rolled back: a read-only file, role, replica or
            # transaction fails here rather than at the first poll.
            conn.execute(
                update(META).where(META.c.key == "schema_version").values(value=META.c.value)
            )
            conn.rollback()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"database {describe(engine)} cannot be written: {_first_line(exc)}"
        ) from None
    upgrade = f", upgraded to v{SCHEMA_VERSION} on first use" if version < SCHEMA_VERSION else ""
    return f"{describe(engine)} (schema v{version}{upgrade})"


def sqlite_access(engine: Engine) -> str | None:
    """Why the SQLite file of `engine` cannot be created or written, in a few words naming the
    path ("permission denied: ..."); None when it can, or for another database. The folder must
    be writable as well as the file (SQLite keeps its journal beside the database); a missing
    folder must be creatable. Tried by doing (a temporary folder made and removed, a file
    opened for writing and closed unwritten), not by reading permission bits, which say
    nothing of a read-only mount."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    path = Path(engine.url.database)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest folder that exists: the rest would be created
    create = "" if folder == path.parent else f"cannot create the folder {path.parent}: "
    if not folder.is_dir():
        return f"{create}{folder} is not a folder"
    try:
        with tempfile.TemporaryDirectory(prefix=".support-monitor-check-", dir=folder):
            pass
    except PermissionError:
        return f"{create}permission denied: cannot write in {folder}"
    except OSError as exc:
        return f"{create}cannot write in {folder} ({exc.strerror or exc})"
    if path.exists():
        try:
            with path.open("r+b"):
                pass
        except PermissionError:
            return f"permission denied: cannot write {path}"
        except OSError as exc:
            return f"cannot write {path} ({exc.strerror or exc})"
    return None


def _check_creatable(conn: Connection, engine: Engine) -> None:
    """An empty database: can its tables be created?"""
    if conn.dialect.name == "sqlite":
        path = Path(engine.url.database or "")
        if not os.access(path.parent if not path.exists() else path, os.W_OK):
            raise StoreError(f"database {describe(engine)} cannot be written: permission denied")
        if conn.execute(text("PRAGMA query_only")).scalar():
            raise StoreError(f"database {describe(engine)} cannot be written: read-only")
        return
    conn.execute(text("CREATE TEMPORARY TABLE support_monitor_check (x INTEGER)"))
    allowed = conn.execute(text("SELECT has_schema_privilege(current_schema(), 'CREATE')")).scalar()
    if not allowed:
        raise StoreError(f"database {describe(engine)}: no right to create tables in its schema")
