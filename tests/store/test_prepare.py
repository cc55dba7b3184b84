"""Opening a database of the current schema version reads its version and changes nothing: every
command opens the database, so this is a part of each one's start-up."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect

from monitor.store.database import make_engine, prepare, set_meta, transaction
from monitor.store.schema import METADATA, SCHEMA_VERSION


def _statements(engine: Any) -> list[str]:
    said: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        said.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", note)
    return said


def test_a_database_of_this_version_is_opened_by_reading_its_version(database_url: str) -> None:
    prepare(make_engine(database_url))  # created
    engine = make_engine(database_url)
    said = _statements(engine)
    prepare(engine)
    # Whether the table of the version exists, then the version: no table or index is looked up
    # or created (before, every table was checked and every index created "if not exists").
    assert len(said) <= 3, said
    assert not [s for s in said if s.upper().startswith(("CREATE", "ALTER", "DROP", "INSERT"))]
    assert any("schema_version" in s or "meta" in s for s in said)


def test_an_older_database_is_still_upgraded_and_given_every_table(database_url: str) -> None:
    engine = make_engine(database_url)
    prepare(engine)
    with transaction(engine) as conn:
        set_meta(conn, "schema_version", str(SCHEMA_VERSION - 1))
        conn.exec_driver_sql("DROP TABLE source_lease")
    prepare(engine)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= set(METADATA.tables)
        version = conn.exec_driver_sql(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).scalar()
    assert version == str(SCHEMA_VERSION)
