"""A source's cursor read early, from a SQLite file, before the store is opened (a poll hands it
to its reading child meanwhile): the store's own cursor where it can be read so, and nothing
where it cannot, never waiting, never creating a file, never opening what is not a file."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, update
from sqlalchemy.engine import make_url

from monitor.store.cursors import peek_cursor, plain_sqlite_path, stored_cursor
from monitor.store.database import make_engine, prepare
from monitor.store.schema import STATES

CURSOR = {"v": 1, "folders": {"INBOX": {"uidvalidity": 7, "last_uid": 41}}}


def store_with_cursor(tmp_path: Path) -> str:
    url = "sqlite:///monitor.db"
    engine = make_engine(url, tmp_path)
    prepare(engine)
    with engine.begin() as conn:
        conn.execute(insert(STATES), [{"source": "inbox", "cursor": json.dumps(CURSOR)}])
    assert stored_cursor(engine, "inbox") == CURSOR
    engine.dispose()
    return url


def test_the_cursor_read_early_is_the_one_the_store_holds(tmp_path: Path) -> None:
    url = store_with_cursor(tmp_path)
    assert peek_cursor(url, tmp_path, "inbox") == (CURSOR,)
    assert peek_cursor(f"sqlite:///{tmp_path / 'monitor.db'}", Path("/elsewhere"), "inbox") == (
        CURSOR,
    )
    assert peek_cursor(url, tmp_path, "another-source") == (None,)  # never polled: no cursor


def test_a_database_closed_cleanly_is_read_without_leaving_files_beside_it(
    tmp_path: Path,
) -> None:
    # The -wal and -shm files a reader would leave behind change how a full disk shows when
    # the store opens next (a missing -shm that cannot grow says the disk may be full).
    url = store_with_cursor(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert before == ["monitor.db"]
    assert peek_cursor(url, tmp_path, "inbox") == (CURSOR,)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_cursor_in_the_write_ahead_log_of_an_open_database_is_read(tmp_path: Path) -> None:
    """While another process has the database open, what it committed may be in its -wal file
    only: the early reading sees it as the store will."""
    url = store_with_cursor(tmp_path)
    engine = make_engine(url, tmp_path)
    moved = {"v": 1, "folders": {"INBOX": {"uidvalidity": 7, "last_uid": 99}}}
    with engine.begin() as conn:
        conn.execute(update(STATES).values(cursor=json.dumps(moved)))
    try:
        assert (tmp_path / "monitor.db-wal").stat().st_size > 0  # not checkpointed yet
        assert peek_cursor(url, tmp_path, "inbox") == (moved,)
    finally:
        engine.dispose()


def test_a_database_not_made_yet_holds_no_cursor_and_is_not_created(tmp_path: Path) -> None:
    assert peek_cursor("sqlite:///new/monitor.db", tmp_path, "inbox") == (None,)
    assert list(tmp_path.iterdir()) == []


def test_what_is_not_a_plain_sqlite_file_is_left_to_the_store(tmp_path: Path) -> None:
    store_with_cursor(tmp_path)
    for url in (
        "postgresql+psycopg://monitor:secret@db.example.com/monitor",
        "sqlite:///monitor.db?timeout=5",  # a query may ask SQLite for something else
        "sqlite:///file:monitor.db",
        "sqlite:///:memory:",
        "sqlite://",
        "mysql:///monitor.db",
    ):
        assert peek_cursor(url, tmp_path, "inbox") is None, url


def test_a_fifo_where_the_database_should_be_is_not_opened(tmp_path: Path) -> None:
    # Opening a FIFO for reading waits for a writer: the poll would hang before it began.
    os.mkfifo(tmp_path / "monitor.db")
    assert peek_cursor("sqlite:///monitor.db", tmp_path, "inbox") is None


def test_a_file_that_is_no_database_or_has_no_cursors_is_left_to_the_store(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.db").write_text("not a database\n" * 100)
    assert peek_cursor("sqlite:///notes.db", tmp_path, "inbox") is None
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    assert peek_cursor("sqlite:///other.db", tmp_path, "inbox") is None


def test_a_database_locked_by_another_process_is_not_waited_for(tmp_path: Path) -> None:
    url = store_with_cursor(tmp_path)
    lock = sqlite3.connect(tmp_path / "monitor.db", isolation_level=None)
    try:
        lock.execute("PRAGMA locking_mode=EXCLUSIVE")
        lock.execute("BEGIN EXCLUSIVE")
        assert peek_cursor(url, tmp_path, "inbox") is None  # at once: the store will wait
    finally:
        lock.close()


NAMES = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1, max_size=12),
    min_size=1,
    max_size=3,
).map("/".join)


@settings(max_examples=200)
@given(name=NAMES, absolute=st.booleans(), encode=st.booleans(), driver=st.booleans())
def test_the_file_read_early_is_the_one_sqlalchemy_names(
    name: str, absolute: bool, encode: bool, driver: bool
) -> None:
    """Where the early reading takes a URL, it reads the file the store opens (SQLAlchemy's
    parsing, made relative to the config's folder as the store does)."""
    base = Path("/srv/monitor")
    written = quote(name, safe="/") if encode else name
    url = f"sqlite{'+pysqlite' if driver else ''}:///{'/' if absolute else ''}{written}"
    ours = plain_sqlite_path(url, base)
    if ours is None:
        return
    database = make_url(url).database
    assert database is not None and make_url(url).query == {}
    theirs = Path(database)
    assert ours == (theirs if theirs.is_absolute() else base / theirs)
