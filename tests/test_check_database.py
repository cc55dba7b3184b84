"""`check` says "ok" for the database only when every other command could use it: reachable,
of a schema this version understands, and writable."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text, update

from monitor.cli import main
from monitor.store.database import make_engine, prepare
from monitor.store.tables import META
from tests.servers import PostgresServer, free_port


def write_config(folder: Path, url: str) -> Path:
    """A config of `url` and one small chat log (something to monitor), the metrics on a free
    port (`check` tries to listen there)."""
    (folder / "chat.jsonl").write_text(
        '{"conversation": "c1", "at": "2026-11-19T09:00:00+00:00", "author_role": "customer"}\n'
    )
    config = folder / "support-monitor.yaml"
    source = {"name": "web", "kind": "chat_jsonl", "path": "chat.jsonl"}
    listen = f"127.0.0.1:{free_port()}"
    config.write_text(
        yaml.safe_dump({"database": url, "sources": [source], "metrics": {"listen": listen}})
    )
    return config


def check(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    config = write_config(tmp_path, url)
    status = main(["--config", str(config), "check"])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if " database: " in x]
    return status, line


def test_check_fails_on_a_database_of_a_newer_schema_as_every_other_command_does(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(sqlite_url)
    prepare(engine)
    with engine.begin() as conn:
        conn.execute(update(META).where(META.c.key == "schema_version").values(value="99"))
    status, line = check(tmp_path, sqlite_url, capsys)
    assert status == 1
    assert line.startswith("FAIL  database: ") and "schema v99, newer than" in line
    assert main(["--config", str(tmp_path / "support-monitor.yaml"), "poll"]) == 1


@pytest.mark.postgres
def test_check_fails_on_a_read_only_database(
    tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replica or a read-only database: nothing could be stored, so check must say so.
    (On PostgreSQL: the suite runs as root, whom a SQLite file's permission bits do not stop.)"""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    engine = make_engine(url, tmp_path)
    prepare(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    engine.dispose()
    status, line = check(tmp_path, url, capsys)
    assert status == 1
    assert line.startswith("FAIL  database: ") and "cannot be written" in line
    assert "read-only transaction" in line


def test_check_says_ok_for_a_writable_database_of_this_schema(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prepare(make_engine(database_url, tmp_path))
    status, line = check(tmp_path, database_url, capsys)
    assert status == 0 and line.startswith("ok    database: ") and "(schema v" in line
