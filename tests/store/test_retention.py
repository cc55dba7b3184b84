"""Retention: what is older than `retention` is purged, counters keep their totals, and reading
the same data again stores nothing. Data comes in through the real connectors (chat_jsonl,
asterisk_queue_log) from files written here; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert, select, update

from monitor.cli import main
from monitor.config import Settings
from monitor.config_file import ConfigError, settings_from_mapping
from monitor.publish.deliveries import claim
from monitor.publish.exporter import exposition
from monitor.service import build_scheduler
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import PollResult, poll_source
from monitor.store.retention import horizon, purge
from monitor.store.tables import (
    ALERT_STATES,
    CALLS,
    DELIVERIES,
    INQUIRIES,
    MESSAGES,
    PURGED_TALLIES,
    TALLIES,
    THREAD_LINKS,
)
from monitor.store.tallies import layout_for, recount

OLD = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)  # before the horizon (now - 30d = 2026-10-21)
NEW = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)


def chat(conversation: str, at: datetime, role: str) -> str:
    line = {"conversation": conversation, "at": at.isoformat(), "author_role": role}
    return json.dumps(line) + "\n"


def queue_line(at: datetime, callid: str, event: str, *data: object) -> str:
    fields = [str(int(at.timestamp())), callid, "support", "NONE", event, *map(str, data)]
    return "|".join(fields) + "\n"


def answered_call(at: datetime, callid: str, wait: int = 400) -> str:
    later = at + timedelta(seconds=wait)
    return (
        queue_line(at, callid, "ENTERQUEUE", "", "02079460001", 1)
        + queue_line(later, callid, "CONNECT", wait, "x", 1)
        + queue_line(later + timedelta(seconds=60), callid, "COMPLETECALLER", wait, 60, 1)
    )


CHATS = (
    # answered long ago: purged with its messages
    chat("old", OLD, "customer")
    + chat("old", OLD + timedelta(minutes=5), "agent")
    # never answered: kept, open, with its message
    + chat("unanswered", OLD, "customer")
    # answered long ago, then again yesterday: the old part goes, the follow-up stays
    + chat("long", OLD, "customer")
    + chat("long", OLD + timedelta(minutes=1), "agent")
    + chat("long", NEW, "customer")
    + chat("long", NEW + timedelta(minutes=3), "agent")
    # yesterday: kept
    + chat("recent", NEW, "customer")
    + chat("recent", NEW + timedelta(minutes=1), "agent")
)
CALL_LOG = answered_call(OLD, "1.1") + answered_call(NEW, "2.1", wait=10)


def configure(tmp_path: Path, database_url: str, retention: str | None = "30d") -> Settings:
    sources = [
        {"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"},
        {"name": "phones", "kind": "asterisk_queue_log", "path": "queue_log"},
    ]
    raw: dict[str, Any] = {"database": database_url, "sources": sources}
    if retention is not None:
        raw["retention"] = retention
    return settings_from_mapping(raw, tmp_path)


def write_sources(tmp_path: Path) -> None:
    """(Re)write both files as new files, as a re-export would: they are read from the start."""
    for name, text in (("chat.jsonl", CHATS), ("queue_log", CALL_LOG)):
        fresh = tmp_path / f"{name}.new"
        fresh.write_text(text)
        fresh.replace(tmp_path / name)


def poll_all(engine: Engine, settings: Settings, now: datetime) -> list[PollResult]:
    return [poll_source(engine, settings, s, now=now, clock=lambda: now) for s in settings.sources]


def loaded(
    tmp_path: Path, database_url: str, now: datetime, retention: str | None = "30d"
) -> tuple[Engine, Settings]:
    """A store holding CHATS and CALL_LOG, polled while none of it was older than retention."""
    settings = configure(tmp_path, database_url, retention)
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    write_sources(tmp_path)
    # The old data arrives on time (yesterday's is then in the future, and rejected)...
    poll_all(engine, settings, OLD + timedelta(days=1))
    write_sources(tmp_path)  # ... and is exported again with yesterday's, read today
    poll_all(engine, settings, now)
    return engine, settings


def rows(engine: Engine, table: Any, *columns: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(select(*(table.c[c] for c in columns)))
        return sorted(tuple(r) for r in found)


def monotonic(engine: Engine, settings: Settings, now: datetime) -> dict[tuple[Any, ...], float]:
    """Every counter and histogram sample of the exposition."""
    out = {}
    for family in text_string_to_metric_families(
        exposition(engine, settings, lambda: now).decode()
    ):
        if family.type in ("counter", "histogram"):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def tallies(engine: Engine) -> dict[tuple[str, ...], float]:
    with engine.connect() as conn:
        found = conn.execute(select(TALLIES)).mappings()
        return {(r["metric"], r["source"], r["labels"], r["le"]): r["value"] for r in found}


def test_the_horizon_is_now_minus_retention_and_none_without_it(
    tmp_path: Path, now: datetime
) -> None:
    assert horizon(now, configure(tmp_path, "sqlite:///x.db")) == now - timedelta(days=30)
    assert horizon(now, configure(tmp_path, "sqlite:///x.db", retention=None)) is None


def test_old_answered_inquiries_and_their_messages_go_and_open_ones_stay(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    counts = purge(engine, settings, now)
    assert rows(engine, INQUIRIES, "conversation", "status", "kind") == [
        ("long", "answered", "followup"),
        ("recent", "answered", "first"),
        ("unanswered", "open", "first"),
    ]
    kept = rows(engine, MESSAGES, "conversation", "external_id")
    assert [c for c, e in kept if not e.startswith("retention:")] == [
        "long",
        "long",
        "recent",
        "recent",
        "unanswered",
    ]
    assert (counts["message"], counts["inquiry"], counts["call"]) == (4, 2, 1)


def test_old_calls_go_and_recent_ones_stay(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    purge(engine, settings, now)
    assert rows(engine, CALLS, "entered_at", "outcome") == [(NEW, "answered")]


def test_a_purge_moves_no_counter_or_histogram_in_the_exposition(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    before = monotonic(engine, settings, now)
    purge(engine, settings, now)
    assert monotonic(engine, settings, now) == before
    labels = (("outcome", "answered"), ("queue", "support"), ("source", "phones"))
    assert before[("support_calls_total", labels)] == 2


def test_reading_the_same_data_again_after_a_purge_stores_and_counts_nothing(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    purge(engine, settings, now)
    before = (monotonic(engine, settings, now), rows(engine, MESSAGES, "external_id"))
    write_sources(tmp_path)  # a re-export: every line is read again
    chat_poll, phone_poll = poll_all(engine, settings, now)
    assert chat_poll.messages == 0 and phone_poll.calls == 0
    assert chat_poll.skipped == 5 and "5 skipped (older than retention)" in chat_poll.summary()
    assert (monotonic(engine, settings, now), rows(engine, MESSAGES, "external_id")) == before
    assert purge(engine, settings, now) == dict.fromkeys(purge(engine, settings, now), 0)


def test_a_conversation_cut_in_the_middle_keeps_counting_follow_ups(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    purge(engine, settings, now)
    before = monotonic(engine, settings, now)
    with (tmp_path / "chat.jsonl").open("a") as log:
        log.write(chat("long", now, "customer") + chat("long", now + timedelta(minutes=1), "agent"))
    poll_all(engine, settings, now + timedelta(minutes=2))
    assert rows(engine, INQUIRIES, "conversation", "kind")[:2] == [
        ("long", "followup"),
        ("long", "followup"),
    ]
    after = monotonic(engine, settings, now)
    assert all(after[key] >= value for key, value in before.items())
    labels = (("channel", "chat"), ("source", "chat"), ("stage", "experience"))
    key = ("support_inquiries_total", labels)
    assert after[key] == before[key] + 1


def test_the_tallies_still_equal_a_recount_after_a_purge(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    purge(engine, settings, now, window=2)  # many small transactions
    counted = tallies(engine)
    with engine.begin() as conn:
        recount(conn, settings, layout_for(settings))
    assert tallies(engine) == pytest.approx(counted)


def test_a_dry_run_deletes_nothing_and_counts_what_a_purge_deletes(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)

    def stored() -> list[Any]:
        return [rows(engine, table, "id") for table in (MESSAGES, INQUIRIES, CALLS, PURGED_TALLIES)]

    before = stored()
    would = purge(engine, settings, now, dry_run=True, window=3)
    assert stored() == before
    assert purge(engine, settings, now, window=3) == would
    assert would["message"] == 4


def test_without_retention_nothing_is_purged_or_skipped(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now, retention=None)
    assert sum(purge(engine, settings, now).values()) == 0
    write_sources(tmp_path)
    assert all(r.skipped == 0 for r in poll_all(engine, settings, now))
    assert len(rows(engine, MESSAGES, "id")) == 9 and len(rows(engine, CALLS, "id")) == 2


def test_a_digest_claim_for_a_day_inside_the_horizon_survives(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    with engine.begin() as conn:
        for key, claimed in (
            ("digest:2026-08-31", OLD),  # a day long gone: its claim goes
            ("digest:2026-10-25", OLD),  # inside the horizon: it stops a second send, it stays
            ("digest:2026-11-18", NEW),
            ("alert:hold_max:firing:2026-09-01T09:00:00Z:abc:notify[0]", OLD),
        ):
            claim(
                conn, key=key, purpose=key.split(":")[0], notifier="email", payload={}, now=claimed
            )
        conn.execute(update(DELIVERIES).values(status="sent"))
        claim(conn, key="alert:pending", purpose="alert", notifier="email", payload={}, now=OLD)
    assert purge(engine, settings, now)["delivery"] == 2
    assert [k for (k,) in rows(engine, DELIVERIES, "key")] == [
        "alert:pending",
        "digest:2026-10-25",
        "digest:2026-11-18",
    ]


def test_resolved_alert_states_go_and_firing_ones_stay(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    base = {"severity": "critical", "evaluated_at": OLD, "started_at": OLD}
    with engine.begin() as conn:
        conn.execute(
            insert(ALERT_STATES),
            [
                {**base, "rule": "hold_max", "subject": "a", "state": "ok", "resolved_at": OLD},
                {
                    **base,
                    "rule": "hold_max",
                    "subject": "b",
                    "state": "firing",
                    "resolved_at": None,
                },
                {**base, "rule": "hold_max", "subject": "c", "state": "ok", "resolved_at": NEW},
            ],
        )
    assert purge(engine, settings, now)["alert_state"] == 1
    assert rows(engine, ALERT_STATES, "subject") == [("b",), ("c",)]


def test_thread_links_go_with_the_last_message_of_their_conversation(
    tmp_path: Path, database_url: str, now: datetime
) -> None:
    engine, settings = loaded(tmp_path, database_url, now)
    with engine.begin() as conn:
        links = [("old", "<old@x>"), ("long", "<long@x>")]
        conn.execute(
            insert(THREAD_LINKS),
            [{"source": "chat", "conversation": c, "key": k} for c, k in links],
        )
    assert purge(engine, settings, now)["thread_link"] == 1
    assert rows(engine, THREAD_LINKS, "conversation") == [("long",)]


@pytest.mark.postgres
def test_two_instances_purging_at_once_delete_and_retire_each_row_once(
    tmp_path: Path, postgres_server: Any, now: datetime
) -> None:
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    engine, settings = loaded(tmp_path, url, now)
    before = monotonic(engine, settings, now)
    start, results = threading.Barrier(2), []

    def run() -> None:
        start.wait()
        results.append(purge(engine, settings, now, window=1))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["message"] for r in results) == 4 and sum(r["call"] for r in results) == 1
    assert monotonic(engine, settings, now) == before
    counted = tallies(engine)
    with engine.begin() as conn:
        recount(conn, settings, layout_for(settings))
    assert tallies(engine) == pytest.approx(counted)


def test_a_retention_too_short_or_misspelt_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as short:
        configure(tmp_path, "sqlite:///x.db", retention="3d")
    assert short.value.problems == ["retention: expected at least 14d, got 3d"]
    with pytest.raises(ConfigError) as wrong:
        configure(tmp_path, "sqlite:///x.db", retention="a year")
    assert wrong.value.problems[0].startswith("retention: expected a duration")


def test_run_schedules_the_purge_only_when_retention_is_set(
    tmp_path: Path, sqlite_url: str, now: datetime
) -> None:
    engine = make_engine(sqlite_url, tmp_path)
    prepare(engine)
    for retention, scheduled in (("400d", True), (None, False)):
        settings = configure(tmp_path, sqlite_url, retention)
        scheduler = build_scheduler(engine, settings, threading.Event(), start_at=now)
        job = scheduler.get_job("purge")
        assert (job is not None) == scheduled
        if job is not None:
            assert job.next_run_time == now + timedelta(minutes=5)
            assert job.trigger.interval == timedelta(days=1)


def test_the_purge_command_prints_a_line_per_table_and_a_dry_run_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Times far from any clock: 2001 is older than every horizon, 2999 newer.
    long_ago, far_ahead = datetime(2001, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)
    (tmp_path / "chat.jsonl").write_text(
        chat("a", long_ago, "customer")
        + chat("a", long_ago + timedelta(minutes=1), "agent")
        + chat("b", far_ahead, "customer")
    )
    config = tmp_path / "support-monitor.yaml"
    source = {"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}
    config.write_text(json.dumps({"database": "sqlite:///m.db", "sources": [source]}))
    assert main(["--config", str(config), "poll"]) == 0
    assert main(["--config", str(config), "purge"]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1] == "purge: no `retention` set; everything is kept"
    )
    config.write_text(
        json.dumps({"database": "sqlite:///m.db", "sources": [source], "retention": "400d"})
    )
    assert main(["--config", str(config), "purge", "--dry-run"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert main(["--config", str(config), "purge"]) == 0
    done = capsys.readouterr().out.splitlines()
    assert dry[:7] == done[:7] and len(done) == 8
    assert done[0].split() == ["message", "2"] and done[1].split() == ["inquiry", "1"]
    assert dry[-1].startswith("purge: would delete 3 rows older than ")
    assert done[-1].startswith("purge: deleted 3 rows older than ")
    assert main(["--config", str(config), "purge"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("purge: deleted 0 rows")
