"""Shared fixtures: real servers, database URLs, pinned time.

Real components (PostgreSQL, promtool, Dovecot) are started privately by the suite on
loopback; nothing needs to be running beforehand. The rule for a component that is not
installed:

- in CI (environment variable ``CI`` is ``true`` or ``1``) it is a **failure**, so a broken CI
  image can never pass by skipping;
- elsewhere it is a **skip** that names the package to install.

Tests pin time with the ``now`` fixture and never read the clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest

from tests.browser import find_chromium
from tests.mailboxes import Mailbox
from tests.servers import (
    ComponentMissing,
    DovecotServer,
    PostgresServer,
    component_required,
    find_promtool,
    start_dovecot,
    start_postgres,
)
from tests.sinks import HttpSink, SmtpSink


def _missing(message: str) -> NoReturn:
    """Fail in CI, skip elsewhere."""
    if component_required():
        pytest.fail(f"{message} (CI=true: real components are required)", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the real components they use, so `-m "not postgres"` works."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "postgres_server" in names:
            item.add_marker(pytest.mark.postgres)
        if "promtool" in names:
            item.add_marker(pytest.mark.promtool)
        if "chromium" in names:
            item.add_marker(pytest.mark.chromium)
        if "dovecot" in names:
            item.add_marker(pytest.mark.dovecot)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole session, stopped and removed at the end."""
    try:
        server: PostgresServer | None = start_postgres()
    except ComponentMissing:
        server = None  # report outside the except block, without a chained traceback
    if server is None:
        _missing("PostgreSQL not installed: apt-get install postgresql")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A private Dovecot IMAP server (TLS with a throwaway CA) for the whole session."""
    try:
        server: DovecotServer | None = start_dovecot()
    except ComponentMissing:
        server = None
    if server is None:
        _missing("Dovecot not installed: apt-get install dovecot-imapd openssl")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
    """A fresh, empty mailbox (a new user) on the session's Dovecot."""
    return Mailbox(dovecot, dovecot.new_user())


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, once on SQLite and once on PostgreSQL (a fresh database per test)."""
    if request.param == "sqlite":
        # A file, not :memory:, because scrapes run in another thread.
        return f"sqlite:///{tmp_path}/monitor.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database file, for tests that do not need both databases."""
    return f"sqlite:///{tmp_path}/monitor.db"


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool."""
    path = find_promtool()
    if path is None:
        _missing("promtool not installed: apt-get install prometheus")
    return path


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of headless Chromium, for looking at the digest as a reader does."""
    path = find_chromium()
    if path is None:
        _missing("chromium not installed: apt-get install chromium")
    return path


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """A real HTTP server on loopback that keeps the bodies POSTed to it."""
    sink = HttpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def now() -> datetime:
    """The pinned current time of the tests."""
    return datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
