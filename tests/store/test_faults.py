"""The database misbehaving during a poll: locked, full, unreachable (issue #9).

Each fault is real: another connection holding SQLite's write lock, a small tmpfs filled to the
last byte under the SQLite file, a PostgreSQL server stopped under a running `run` process.
Afterwards the store is consistent and the next poll stores everything exactly once.
"""

from __future__ import annotations

import errno
import json
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, event, func, select

from monitor.config import Settings
from monitor.config_file import load_settings
from monitor.store import leases
from monitor.store.database import StoreError, make_engine, prepare
from monitor.store.ingest import poll_source
from monitor.store.tables import MESSAGES, STATES
from tests.servers import (
    ComponentMissing,
    PostgresServer,
    _run,
    component_required,
    free_port,
    start_postgres,
)
from tests.test_service import Service

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BUSY_MS = 200  # the test's busy timeout; monitor.store.database waits 10 s, too long for a test


def chat_lines(first: int, count: int) -> str:
    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    lines = []
    for n in range(first, first + count):
        role = ("customer", "agent", "customer", "bot")[n % 4]
        at = start + timedelta(seconds=7 * n)
        lines.append(
            json.dumps({"conversation": f"c{n // 4}", "at": at.isoformat(), "author_role": role})
        )
    return "".join(f"{line}\n" for line in lines)


def write_config(folder: Path, database: str, **extra: Any) -> Path:
    config = {
        "database": database,
        "sources": [{"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl", **extra}],
    }
    path = folder / "support-monitor.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def stored(engine: Engine) -> tuple[int, int | None]:
    """(messages stored, lines the cursor says were consumed)."""
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(MESSAGES)).scalar_one()
        raw = conn.execute(select(STATES.c.cursor).where(STATES.c.source == "chat")).scalar()
    if not raw:
        return count, None
    (entry,) = json.loads(raw)["files"].values()
    return count, entry["line"]


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def poll(engine: Engine, settings: Settings) -> str:
    result = poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert result.ok, result.error
    return result.summary()


# --- SQLite locked --------------------------------------------------------------------------


def test_a_poll_while_another_process_holds_the_sqlite_lock_fails_in_one_line_and_stores_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "chat.jsonl").write_text(chat_lines(0, 40))
    settings = load_settings(write_config(tmp_path, "sqlite:///monitor.db"))
    engine = make_engine(settings.file.database, tmp_path)
    # A real SQLite setting, shortened so the lock outlasts it without a 10 s wait.
    event.listen(
        engine, "connect", lambda dbapi, _record: dbapi.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    )
    prepare(engine)

    holder = sqlite3.connect(tmp_path / "monitor.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. a backup script or a sqlite3 shell left open
    try:
        with pytest.raises(StoreError) as failed:
            poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
        assert len(str(failed.value).splitlines()) == 1
        assert "database is locked" in str(failed.value)
        assert holder.execute(f"SELECT count(*) FROM {MESSAGES.name}").fetchone() == (0,)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert stored(engine) == (0, None)
    assert poll(engine, settings) == "chat: 40 new messages, 0 calls, 0 rejected in 1 batches"
    assert stored(engine) == (40, 40)


# --- disk full --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs of our own (we run as root in CI): a disk that really fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        why = f"cannot mount a tmpfs (needs root): {done.stderr.strip() or done.returncode}"
        if component_required():
            pytest.fail(f"{why} (CI=true: real components are required)", pytrace=False)
        pytest.skip(why)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the file system has no byte left."""
    filler = folder / "filler"
    # Unbuffered: a short write leaves nothing in a buffer that closing would try to flush
    # (and fail on, depending on how many bytes the database happened to leave free).
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def cli_poll(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), "poll"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_disk_full_mid_poll_fails_in_one_line_keeps_the_database_whole_and_the_next_poll_completes(
    tmp_path: Path, small_disk: Path
) -> None:
    log = tmp_path / "chat.jsonl"
    log.write_text(chat_lines(0, 20))
    database = small_disk / "monitor.db"
    config = write_config(tmp_path, f"sqlite:///{database}")
    settings = load_settings(config)
    engine = make_engine(settings.file.database, tmp_path)  # stays open, as `run` would
    prepare(engine)
    poll(engine, settings)

    filler = fill(small_disk)
    with log.open("a") as handle:
        handle.write(chat_lines(20, 3000))
    with pytest.raises(StoreError) as failed:
        poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)
    assert str(failed.value) == f"database sqlite:///{database}: database or disk is full"
    full = cli_poll(config)
    assert (full.returncode, full.stdout) == (1, "")
    assert full.stderr.splitlines() == [f"error: {failed.value}"]
    assert integrity(database) == "ok"
    assert stored(engine) == (20, 20)  # the cursor still matches the rows: nothing half-stored

    filler.unlink()
    freed = cli_poll(config)
    assert freed.returncode == 0, freed.stderr
    assert freed.stdout == "chat: 3000 new messages, 0 calls, 0 rejected in 1 batches\n"
    assert integrity(database) == "ok"
    assert stored(engine) == (3020, 3020)


def test_disk_full_before_a_poll_starts_says_the_disk_may_be_full_rather_than_io_error(
    tmp_path: Path, small_disk: Path
) -> None:
    (tmp_path / "chat.jsonl").write_text(chat_lines(0, 20))
    database = small_disk / "monitor.db"
    config = write_config(tmp_path, f"sqlite:///{database}")
    assert cli_poll(config).returncode == 0  # on exit SQLite removes its -wal and -shm files

    filler = fill(small_disk)
    full = cli_poll(config)
    assert (full.returncode, full.stdout) == (1, "")
    assert full.stderr.splitlines() == [
        f"error: database sqlite:///{database}: disk I/O error "
        "(cannot grow the -shm file beside the database: is the disk full?)"
    ]
    # Read without the -shm file (which cannot be created yet): the file itself is whole.
    with sqlite3.connect(f"file:{database}?immutable=1", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    filler.unlink()
    assert cli_poll(config).returncode == 0
    engine = make_engine(f"sqlite:///{database}")
    assert stored(engine) == (20, 20)


# --- PostgreSQL unreachable -------------------------------------------------------------------


def pg_ctl(server: PostgresServer, *args: str) -> None:
    _run([str(server.bindir / "pg_ctl"), "-D", str(server.datadir), *args], server.root, "pg_ctl")


def halt(server: PostgresServer) -> None:
    """Stop the server but keep its data, as an outage or a restart for an upgrade would."""
    pg_ctl(server, "-m", "fast", "-w", "stop")


def resume(server: PostgresServer) -> None:
    """Start it again on the same port with the options `start_postgres` used."""
    options = (
        f"-p {server.port} -k {server.root} -c listen_addresses={server.host}"
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl(server, "-l", str(server.logfile), "-w", "-t", "60", "-o", options, "start")


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A cluster of this test's own: stopping it must not disturb the session's server."""
    try:
        server: PostgresServer | None = start_postgres()
    except ComponentMissing:
        server = None
    if server is None:
        why = "PostgreSQL not installed: apt-get install postgresql"
        if component_required():
            pytest.fail(f"{why} (CI=true: real components are required)", pytrace=False)
        pytest.skip(why)
    try:
        yield server
    finally:
        server.stop()


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.postgres
def test_run_rides_out_a_postgres_outage_logging_one_line_per_failed_poll(
    tmp_path: Path, private_postgres: PostgresServer
) -> None:
    log = tmp_path / "chat.jsonl"
    log.write_text(chat_lines(0, 6))
    port = free_port()
    database = private_postgres.create_database("faults")
    config = write_config(tmp_path, database, every="1s")
    settings = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**settings, "metrics": {"listen": f"127.0.0.1:{port}"}}))
    running = Service(config)
    try:
        running.wait_for("poll chat: 6 new messages")
        halt(private_postgres)
        with log.open("a") as handle:
            handle.write(chat_lines(6, 4))
        failures = [
            running.wait_for("poll chat: database"),
            running.wait_for("poll chat: database"),
        ]
        assert all("ERROR" in line and str(private_postgres.port) in line for line in failures)
        status, body = healthz(port)
        assert (status, body["status"]) == (503, "database unavailable")

        resume(private_postgres)
        running.wait_for("poll chat: 4 new messages")
        status, body = healthz(port)
        assert (status, body["status"]) == (200, "ok")
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=30) == 0
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
    running.read_all()
    # Every log line is one record (time, level, logger): no traceback, no continuation lines.
    assert running.log and all(line[:4].isdigit() for line in running.log), "".join(running.log)
    engine = make_engine(database)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MESSAGES)).scalar_one() == 10
    engine.dispose()


def test_an_instance_whose_lease_release_failed_in_an_outage_polls_the_source_again_at_once(
    tmp_path: Path,
) -> None:
    settings = load_settings(write_config(tmp_path, "sqlite:///monitor.db"))
    engine = make_engine(settings.file.database, tmp_path)
    prepare(engine)
    leases.sync(engine, settings, NOW)
    assert leases.claim(engine, "chat", "me", NOW)
    # The poll ended as the database went away: the release never happened.
    later = NOW + timedelta(seconds=5)
    assert leases.claim(engine, "chat", "other", later) is False
    assert leases.claim(engine, "chat", "me", later) is True
