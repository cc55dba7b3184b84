"""The fixtures that start real components work."""

from __future__ import annotations

import subprocess

from imapclient.imapclient import SENT
from prometheus_client import CollectorRegistry, Counter, generate_latest
from sqlalchemy import create_engine, inspect, text

from tests.servers import DovecotServer


def test_postgres_fixture_gives_a_fresh_empty_database(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
            assert inspect(conn).get_table_names() == []
            if engine.dialect.name == "postgresql":
                name = conn.execute(text("select current_database()")).scalar_one()
                assert name.startswith("t_")
    finally:
        engine.dispose()


def test_promtool_accepts_a_clean_exposition(promtool: str) -> None:
    registry = CollectorRegistry()
    counter = Counter(
        "fixture_check_events", "Events counted by the fixture check.", registry=registry
    )
    counter.inc()
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode(errors="replace")


def test_dovecot_fixture_serves_verified_tls_and_a_fresh_mailbox_per_test(
    dovecot: DovecotServer,
) -> None:
    user = dovecot.new_user()
    client = dovecot.connect(user)  # verifies the certificate against the throwaway CA
    try:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
        assert client.find_special_folder(SENT) == "Sent"
    finally:
        client.logout()
    assert dovecot.new_user() != user
