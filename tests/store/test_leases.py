"""Several instances share the sources through lease rows; SQLite allows one instance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.store import leases
from monitor.store.database import StoreError, make_engine, prepare

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def setup(tmp_path: Path, url: str) -> tuple[Settings, Engine]:
    (tmp_path / "chat.jsonl").touch()
    settings = settings_from_mapping(
        {"sources": [{"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}]}, tmp_path
    )
    engine = make_engine(url, tmp_path)
    prepare(engine)
    leases.sync(engine, settings, NOW)
    return settings, engine


def test_only_one_instance_holds_a_source_and_it_is_not_due_again_before_its_interval(
    tmp_path: Path, database_url: str
) -> None:
    _, engine = setup(tmp_path, database_url)
    assert leases.claim(engine, "chat", "a", NOW) is True
    assert leases.claim(engine, "chat", "b", NOW) is False
    leases.release(engine, "chat", "a", NOW + timedelta(minutes=5))
    assert leases.claim(engine, "chat", "b", NOW + timedelta(minutes=4)) is False
    assert leases.claim(engine, "chat", "b", NOW + timedelta(minutes=5)) is True


def test_a_crashed_owners_source_is_taken_over_when_its_lease_expires(
    tmp_path: Path, database_url: str
) -> None:
    _, engine = setup(tmp_path, database_url)
    assert leases.claim(engine, "chat", "crashed", NOW)
    assert not leases.claim(engine, "chat", "b", NOW + leases.LEASE - timedelta(seconds=1))
    assert leases.claim(engine, "chat", "b", NOW + leases.LEASE + timedelta(seconds=1))
    # The old owner can neither renew nor release what it lost.
    assert leases.renew(engine, "chat", "crashed", NOW + leases.LEASE) is False
    leases.release(engine, "chat", "crashed", NOW)
    assert not leases.claim(engine, "chat", "c", NOW + leases.LEASE + timedelta(seconds=2))


def test_renewing_keeps_a_long_poll_from_being_taken_over(
    tmp_path: Path, database_url: str
) -> None:
    _, engine = setup(tmp_path, database_url)
    assert leases.claim(engine, "chat", "a", NOW)
    assert leases.renew(engine, "chat", "a", NOW + timedelta(seconds=50))
    assert not leases.claim(engine, "chat", "b", NOW + timedelta(seconds=90))


def test_a_second_instance_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/monitor.db", tmp_path)
    with leases.instance_lock(engine):
        with pytest.raises(StoreError, match="SQLite allows one instance"):
            with leases.instance_lock(make_engine(f"sqlite:///{tmp_path}/monitor.db")):
                pass
    with leases.instance_lock(engine):  # released with its holder
        pass
