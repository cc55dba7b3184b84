"""Ingest on a real database: re-derivation across polls, calls, health, schema versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, inspect, select, text

from connectors.base import Batch, ConnectorError
from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.measure.events import (
    CallEvent,
    CallOutcome,
    Channel,
    MessageEvent,
    Side,
    callback_conversation,
)
from monitor.store.database import StoreError, make_engine, prepare, set_meta
from monitor.store.ingest import (
    measuring,
    poll_source,
    read_ahead,
    reconcile,
    rederive,
    store_batch,
)
from monitor.store.tables import (
    CALLS,
    INQUIRIES,
    MESSAGES,
    META,
    SCHEMA_VERSION,
    STATES,
    TALLIES,
    WAITING_CALL,
)
from monitor.store.tallies import layout_for, measurements_current, recount

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def line(conversation: str, minutes: float, role: str, **extra: Any) -> str:
    at = T0 + timedelta(minutes=minutes)
    return (
        json.dumps(
            {"conversation": conversation, "at": at.isoformat(), "author_role": role, **extra}
        )
        + "\n"
    )


def chat_setup(tmp_path: Path, database_url: str, **source: Any) -> tuple[Path, Settings, Engine]:
    path = tmp_path / "chat.jsonl"
    path.touch()
    settings = settings_from_mapping(
        {"sources": [{"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl", **source}]},
        tmp_path,
    )
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    return path, settings, engine


def poll(engine: Engine, settings: Settings) -> Any:
    return poll_source(engine, settings, settings.sources[0], now=NOW, clock=lambda: NOW)


def inquiries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(INQUIRIES).order_by(INQUIRIES.c.opened_at)))


def tallies(engine: Engine) -> dict[tuple[str, str, str, str], float]:
    with engine.connect() as conn:
        rows = conn.execute(select(TALLIES)).mappings()
        return {(r["metric"], r["source"], r["labels"], r["le"]): r["value"] for r in rows}


def tally(engine: Engine, metric: str, le: str = "") -> float:
    with engine.connect() as conn:
        rows = conn.execute(
            select(TALLIES.c.value).where(TALLIES.c.metric == metric, TALLIES.c.le == le)
        )
        return float(sum(r[0] for r in rows))


def test_a_reply_arriving_in_a_later_poll_closes_the_inquiry(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = chat_setup(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer") + line("c1", 0.1, "bot"))
    poll(engine, settings)
    (inquiry,) = inquiries(engine)
    assert inquiry.status == "open" and tally(engine, "support_response_seconds", "+Inf") == 0
    with path.open("a") as handle:
        handle.write(line("c1", 1.5, "agent"))
    poll(engine, settings)
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds) == ("answered", 90)
    assert tally(engine, "support_inquiries_total") == 1
    assert (
        tally(engine, "support_response_seconds", "120") == 1
    )  # the 2 min chat target is a bucket
    assert tally(engine, "support_response_seconds", "_sum") == 90


def test_a_missed_chat_is_counted_once(tmp_path: Path, database_url: str) -> None:
    path, settings, engine = chat_setup(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer") + line("c1", 4, "customer", event="ended"))
    poll(engine, settings)
    poll(engine, settings)
    assert [i.status for i in inquiries(engine)] == ["missed"]
    assert tally(engine, "support_chats_missed_total") == 1


def test_health_is_recorded_for_success_and_failure(tmp_path: Path, database_url: str) -> None:
    path, settings, engine = chat_setup(tmp_path, database_url)
    assert poll(engine, settings).ok
    path.unlink()
    failed = poll(engine, settings)
    assert not failed.ok and "chat.jsonl" in (failed.error or "")
    with engine.connect() as conn:
        state = conn.execute(select(STATES)).one()
    assert (
        state.last_success_at == NOW
        and state.consecutive_failures == 1
        and state.poll_errors_total == 1
    )
    assert state.last_error == failed.error


def test_health_keeps_when_the_last_good_poll_began_and_when_failing_began(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = chat_setup(tmp_path, database_url)
    source = settings.sources[0]
    started = NOW - timedelta(seconds=40)
    assert poll_source(engine, settings, source, now=started, clock=lambda: NOW).ok
    path.unlink()
    for minute in (1, 2):
        poll_source(engine, settings, source, now=NOW + timedelta(minutes=minute))
    with engine.connect() as conn:
        state = conn.execute(select(STATES)).one()
    assert (state.read_from, state.last_success_at) == (started, NOW)
    assert state.failing_since == NOW + timedelta(minutes=1)  # the first of the failed polls
    path.write_text("")
    poll_source(engine, settings, source, now=NOW + timedelta(minutes=3))
    with engine.connect() as conn:
        state = conn.execute(select(STATES)).one()
    assert state.read_from == NOW + timedelta(minutes=3) and state.failing_since is None


def test_a_version_6_database_gets_when_each_source_was_last_read_from(
    tmp_path: Path, database_url: str
) -> None:
    """A v6 database (no source_state.read_from or failing_since): a source whose last poll
    succeeded was read from that poll's start; a failing one is not known to be read yet."""
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    with engine.begin() as conn:
        for column in ("read_from", "failing_since"):
            conn.execute(text(f"ALTER TABLE source_state DROP COLUMN {column}"))
        rows = [("good", 0, T0), ("bad", 3, T0)]
        for source, failures, success in rows:
            conn.execute(
                text(
                    "INSERT INTO source_state (source, last_attempt_at, last_success_at,"
                    " consecutive_failures, poll_errors_total, records_rejected_total)"
                    " VALUES (:source, :attempt, :success, :failures, 0, 0)"
                ),
                {
                    "source": source,
                    "attempt": _stored(engine, NOW),
                    "success": _stored(engine, success),
                    "failures": failures,
                },
            )
        set_meta(conn, "schema_version", "6")
    prepare(engine)
    with engine.connect() as conn:
        read = dict(conn.execute(select(STATES.c.source, STATES.c.read_from)).all())
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
    assert read == {"good": NOW, "bad": None}


def test_a_version_7_database_keeps_its_calls_and_stores_where_the_system_ended_them(
    tmp_path: Path, database_url: str
) -> None:
    """A v7 database (no call.ended_by) holding a call the system ended: the upgrade adds the
    column and keeps the call, with no destination (it was read without one); a call stored
    after keeps where the system ended it, bounded and printable."""
    _, settings, engine = chat_setup(tmp_path, database_url)
    before = CallEvent("k1", "support", T0, CallOutcome.EXIT_EMPTY, left_at=T0 + timedelta(9))
    with engine.begin() as conn:  # as version 7 left it
        store_batch(conn, measuring(settings, settings.sources[0]), [before])
        conn.execute(text('ALTER TABLE "call" DROP COLUMN ended_by'))
        set_meta(conn, "schema_version", "7")
    prepare(engine)
    after = CallEvent(
        "k2", "support", T0, CallOutcome.EXIT_EMPTY, left_at=T0, ended_by="3CX EndCall\x1b[2J"
    )
    with engine.begin() as conn:
        store_batch(conn, measuring(settings, settings.sources[0]), [after])
    with engine.connect() as conn:
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
        stored = conn.execute(select(CALLS.c.external_id, CALLS.c.ended_by)).all()
    assert sorted(stored) == [("k1", None), ("k2", "3CX EndCall??2J")]


def test_a_version_9_database_gets_one_index_of_messages_by_conversation(
    tmp_path: Path, database_url: str
) -> None:
    """A v9 database (messages in two indexes by conversation, one led by the source) holding
    an open callback inquiry: the upgrade replaces both by one (conversation, source, side),
    keeps the messages, and a callback stored after closes the inquiry as before."""
    settings, engine = two_phone_sources(tmp_path, database_url)
    answering, pbx = (measuring(settings, s) for s in settings.sources)
    number = "+44 20 7946 0958"
    with engine.begin() as conn:  # as version 9 left it
        store_batch(conn, answering, [phone_message("m1", number, 0, Side.CUSTOMER)])
        conn.execute(text("DROP INDEX ix_message_conversation"))
        conn.execute(text("CREATE INDEX ix_message_conversation ON message (source, conversation)"))
        conn.execute(text("CREATE INDEX ix_message_callbacks ON message (conversation, side)"))
        set_meta(conn, "schema_version", "9")
    prepare(engine)
    with engine.begin() as conn:
        store_batch(conn, pbx, [phone_message("o1", number, 30, Side.AGENT)])
    with engine.connect() as conn:
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
        indexes = {
            i["name"]: i["column_names"]
            for i in inspect(conn).get_indexes("message")
            if i["name"] and i["name"].startswith("ix_")
        }
    assert indexes == {"ix_message_conversation": ["conversation", "source", "side"]}
    (inquiry,) = inquiries(engine)
    assert (inquiry.source, inquiry.opened_by, inquiry.status, inquiry.closed_by) == (
        "answering",
        "m1",
        "answered",
        "o1",
    )


def _stored(engine: Engine, moment: datetime) -> Any:
    """A time as the database stores it (microseconds on SQLite), for raw SQL."""
    if engine.dialect.name == "sqlite":
        return int(moment.timestamp() * 1_000_000)
    return moment


def test_rejected_records_are_counted_and_located(tmp_path: Path, database_url: str) -> None:
    path, settings, engine = chat_setup(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer") + "{not json\n" + line("c1", 1, "agent"))
    result = poll(engine, settings)
    assert result.messages == 2 and result.rejected == 1
    assert str(result.rejections[0]).startswith("chat.jsonl:2: ")
    with engine.connect() as conn:
        assert conn.execute(select(STATES.c.records_rejected_total)).scalar_one() == 1


def call(external_id: str, outcome: CallOutcome, wait: float, **extra: Any) -> CallEvent:
    entered = T0
    left = None if outcome is CallOutcome.WAITING else entered + timedelta(seconds=wait)
    answered = left if outcome is CallOutcome.ANSWERED else None
    return CallEvent(
        external_id, "sales", entered, outcome, answered_at=answered, left_at=left, **extra
    )


def test_a_waiting_call_is_replaced_by_its_outcome_and_counted_once(
    tmp_path: Path, database_url: str
) -> None:
    _, settings, engine = chat_setup(tmp_path, database_url)
    ctx = measuring(settings, settings.sources[0])
    with engine.begin() as conn:
        store_batch(conn, ctx, [call("c1", CallOutcome.WAITING, 0)])
    assert tally(engine, "support_calls_total") == 0
    for _ in range(2):  # the log is read twice: the finished call counts once
        with engine.begin() as conn:
            store_batch(conn, ctx, [call("c1", CallOutcome.ANSWERED, 400)])
    with engine.connect() as conn:
        (row,) = conn.execute(select(CALLS)).all()
    assert (row.outcome, row.wait_seconds) == ("answered", 400)
    assert tally(engine, "support_calls_total") == 1
    assert tally(engine, "support_hold_breaches_total") == 1  # over 5 minutes, under 13
    with engine.begin() as conn:  # a finished call never changes again
        store_batch(conn, ctx, [call("c1", CallOutcome.ABANDONED, 900)])
    assert tally(engine, "support_calls_total") == 1


def test_a_batch_of_stored_and_new_calls_stores_and_counts_only_the_new_ones(
    tmp_path: Path, database_url: str
) -> None:
    # A file read again gives calls stored before among new ones: only the new ones are stored
    # and counted (on SQLite they are told apart after the insert, by the row count and ids).
    _, settings, engine = chat_setup(tmp_path, database_url)
    ctx = measuring(settings, settings.sources[0])
    first = [call(f"c{n}", CallOutcome.ANSWERED, 30 * n) for n in range(4)]
    with engine.begin() as conn:
        assert store_batch(conn, ctx, [*first, call("w", CallOutcome.WAITING, 0)]) == (0, 5)
    again = [call(f"c{n}", CallOutcome.ABANDONED, 30 * n) for n in range(2, 6)]
    with engine.begin() as conn:
        stored = store_batch(conn, ctx, [*again, call("w", CallOutcome.TIMEOUT, 700)])
    assert stored == (0, 3)  # c4, c5 and the waiting call's end
    with engine.connect() as conn:
        rows = {r[0]: r[1] for r in conn.execute(select(CALLS.c.external_id, CALLS.c.outcome))}
    assert rows == {
        **{f"c{n}": "answered" for n in range(4)},
        "c4": "abandoned",
        "c5": "abandoned",
        "w": "timeout",
    }
    assert tally(engine, "support_calls_total") == 7
    counted = tallies(engine)
    with engine.begin() as conn:
        recount(conn, settings, layout_for(settings))
    assert tallies(engine) == counted


def test_changing_the_reply_target_redoes_the_measurements(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = chat_setup(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer") + line("c1", 5, "agent"))
    poll(engine, settings)
    assert measurements_current(engine, settings) is False
    assert reconcile(engine, settings) is True  # first time: records what it was measured with
    assert measurements_current(engine, settings) is True  # commands skip reconciling
    assert tally(engine, "support_response_breaches_total") == 1  # 5 min > the 2 min chat target
    relaxed = settings_from_mapping(
        {
            "sources": [
                {
                    "name": "chat",
                    "kind": "chat_jsonl",
                    "path": "chat.jsonl",
                    "targets": {"reply_within": "10m"},
                }
            ]
        },
        tmp_path,
    )
    assert measurements_current(engine, relaxed) is False
    assert reconcile(engine, relaxed) is True
    assert tally(engine, "support_response_breaches_total") == 0
    assert inquiries(engine)[0].breached is False
    assert reconcile(engine, relaxed) is False


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path, database_url: str) -> None:
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    with engine.begin() as conn:
        set_meta(conn, "schema_version", "99")
    with pytest.raises(StoreError, match="newer than this support-monitor"):
        prepare(engine)


def test_preparing_twice_keeps_the_data(tmp_path: Path, database_url: str) -> None:
    path, settings, engine = chat_setup(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer"))
    poll(engine, settings)
    prepare(engine)
    assert len(inquiries(engine)) == 1
    with engine.connect() as conn:
        assert conn.execute(
            select(META.c.value).where(META.c.key == "schema_version")
        ).scalar_one() == str(SCHEMA_VERSION)


def test_a_version_1_database_gets_the_index_of_waiting_calls(
    tmp_path: Path, database_url: str
) -> None:
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    with engine.begin() as conn:  # as version 1 left it: every call indexed by outcome
        conn.execute(text("DROP INDEX ix_call_waiting"))
        conn.execute(text("CREATE INDEX ix_call_outcome ON call (outcome, source)"))
        set_meta(conn, "schema_version", "1")
    prepare(engine)
    with engine.connect() as conn:
        names = {i["name"] for i in inspect(conn).get_indexes("call")}
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
    assert "ix_call_waiting" in names
    assert "ix_call_outcome" not in names


def test_a_version_2_database_gets_its_times_as_integers_and_reads_the_same(
    sqlite_url: str,
) -> None:
    engine = make_engine(sqlite_url)
    prepare(engine)
    entered = datetime(2026, 11, 20, 9, 0, 0, 250_001, tzinfo=UTC)
    left = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)  # before the epoch
    at = datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC)
    call = {"source": "q", "external_id": "c1", "queue": "support", "outcome": "abandoned"}
    message = {"source": "m", "external_id": "m1", "conversation": "c", "side": "customer"}
    message |= {"kind": "message", "automatic": False, "internal": False, "channel": "email"}
    with engine.begin() as conn:
        conn.execute(CALLS.insert(), [call | {"entered_at": entered, "left_at": left}])
        conn.execute(MESSAGES.insert(), [message | {"at": at}])
        # As version 2 stored times: SQLAlchemy's text, in UTC, always with six decimals.
        for table, column, moment in [("call", "entered_at", entered), ("call", "left_at", left)]:
            as_text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
            conn.execute(text(f"UPDATE {table} SET {column} = :t"), {"t": as_text})
        conn.execute(text("UPDATE message SET at = '2026-11-21 23:59:59.000000'"))
        set_meta(conn, "schema_version", "2")
    prepare(engine)
    with engine.connect() as conn:
        kinds = conn.execute(
            text("SELECT typeof(entered_at), typeof(answered_at), typeof(left_at) FROM call")
        ).one()
        assert tuple(kinds) == ("integer", "null", "integer")
        times = conn.execute(select(CALLS.c.entered_at, CALLS.c.left_at)).one()
        assert tuple(times) == (entered, left)
        assert conn.execute(select(MESSAGES.c.at)).scalar_one() == at


def test_a_version_3_database_gets_what_messages_refer_to_and_its_callbacks_their_calls(
    tmp_path: Path, database_url: str
) -> None:
    """A v3 database (no message.refers, call.short_abandon or call.caller_key) holding a
    queue_log's and a call log's missed calls, their callback requests and an answered call:
    the upgrade adds the columns, finds each request's call (so `short_abandon` can leave it
    out when measured) and keys the answered call by its caller's number."""
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    entered = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    calls = [
        {"source": "q", "external_id": "k1@support@1795165200", "outcome": "abandoned"},
        {"source": "csv", "external_id": "call:77", "outcome": "abandoned"},
        {"source": "q", "external_id": "k2@support@1795169000", "outcome": "answered"},
    ]
    requests = [("q", "missed:k1@support@1795165200"), ("csv", "missed:77"), ("q", "out:9")]
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE message DROP COLUMN refers"))
        conn.execute(text("DROP INDEX ix_call_got_through"))
        for column in ("short_abandon", "caller_key"):
            conn.execute(text(f'ALTER TABLE "call" DROP COLUMN {column}'))
        conn.execute(
            text(
                'INSERT INTO "call" (source, external_id, queue, entered_at, wait_seconds,'
                " outcome, caller) VALUES (:source, :external_id, 'support', :entered, 3,"
                " :outcome, '+44 20 7946 0000')"
            ),
            [c | {"entered": entered} for c in calls],
        )
        conn.execute(
            text(
                "INSERT INTO message (source, external_id, conversation, at, side, kind,"
                " automatic, internal, channel) VALUES (:source, :external_id, 'tel:079460000',"
                " :at, 'customer', 'message', false, false, 'voicemail')"
            ),
            [{"source": s, "external_id": e, "at": entered} for s, e in requests],
        )
        set_meta(conn, "schema_version", "3")
    prepare(engine)
    with engine.connect() as conn:
        refers = dict(conn.execute(select(MESSAGES.c.external_id, MESSAGES.c.refers)).all())
        short = conn.execute(select(CALLS.c.short_abandon)).scalars().all()
        keys = dict(conn.execute(select(CALLS.c.external_id, CALLS.c.caller_key)).all())
        indexes = {i["name"] for i in inspect(conn).get_indexes("call")}
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
    assert refers == {
        "missed:k1@support@1795165200": "k1@support@1795165200",
        "missed:77": "call:77",
        "out:9": None,
    }
    assert short == [False, False, False]
    # The caller of the answered call got through: its number's key, indexed.
    assert keys == {
        "k1@support@1795165200": None,
        "call:77": None,
        "k2@support@1795169000": "tel:079460000",
    }
    assert "ix_call_got_through" in indexes


def test_a_version_4_database_keeps_its_rows_and_learns_who_answered_from_then_on(
    tmp_path: Path, database_url: str
) -> None:
    """A v4 database (no message.agent or left_out, call.agent, inquiry.closed_by or agent),
    written by a poll of a chat and a queue_log: the upgrade adds the columns and keeps every
    row; the first start measures the stored inquiries again (the rules changed), so each
    learns the reply that answered it; what is stored before names nobody, what is read after
    names its responder."""
    path, settings, engine = chat_setup(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer") + line("c1", 5, "agent", author="Ann"))
    poll(engine, settings)
    reconcile(engine, settings)
    call = CallEvent("k1", "support", T0, CallOutcome.ANSWERED, wait_seconds=4, agent="PJSIP/1")
    with engine.begin() as conn:  # as version 4 left them
        store_batch(conn, measuring(settings, settings.sources[0]), [call])
        for table, column in [
            ("message", "agent"),
            ("message", "left_out"),
            ("call", "agent"),
            ("inquiry", "closed_by"),
            ("inquiry", "agent"),
        ]:
            conn.execute(text(f'ALTER TABLE "{table}" DROP COLUMN {column}'))
        set_meta(conn, "schema_version", "4")
        set_meta(conn, "measure_signature", "measured under the rules of version 4")
    prepare(engine)
    with engine.connect() as conn:
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
        stored = conn.execute(select(MESSAGES.c.external_id, MESSAGES.c.agent)).all()
        assert [a for _, a in stored] == [None, None]
        assert conn.execute(select(CALLS.c.external_id, CALLS.c.agent)).all() == [("k1", None)]
    (before,) = inquiries(engine)
    assert (before.status, before.response_seconds, before.closed_by) == ("answered", 300, None)
    assert reconcile(engine, settings) is True
    (after,) = inquiries(engine)
    reply = next(e for e, _ in stored if e != after.opened_by)
    assert (after.response_seconds, after.closed_by, after.agent) == (300, reply, None)
    path.write_text(
        path.read_text() + line("c1", 10, "customer") + line("c1", 12, "agent", author="Bo")
    )
    poll(engine, settings)
    assert [i.agent for i in inquiries(engine)] == [None, "Bo"]


def test_waiting_calls_are_looked_up_by_their_partial_index(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    prepare(engine)
    query = select(CALLS).where(WAITING_CALL, CALLS.c.source == "queue")
    with engine.connect() as conn:
        compiled = query.compile(conn)
        plan = conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())
        ).all()
    assert "ix_call_waiting" in str(plan)


def test_every_sqlite_connection_caches_32_megabytes_of_pages(tmp_path: Path) -> None:
    # An import writes into indexes keyed by numbers and conversations in no order: with
    # SQLite's 2 MB it read the same pages back from the file again and again.
    engine = make_engine(f"sqlite:///{tmp_path / 'cache.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -32768


def test_an_in_memory_sqlite_database_is_refused() -> None:
    with pytest.raises(StoreError, match="in-memory"):
        make_engine("sqlite://")


def two_phone_sources(tmp_path: Path, database_url: str) -> tuple[Settings, Engine]:
    (tmp_path / "a.jsonl").touch()
    (tmp_path / "b.jsonl").touch()
    entries = [
        {"name": "answering", "kind": "chat_jsonl", "path": "a.jsonl"},
        {"name": "pbx", "kind": "chat_jsonl", "path": "b.jsonl"},
    ]
    settings = settings_from_mapping(
        {"targets": {"reply_within": "24h"}, "sources": entries}, tmp_path
    )
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    return settings, engine


def phone_message(external_id: str, number: str, minutes: float, side: Side) -> MessageEvent:
    conversation = callback_conversation(number)
    assert conversation is not None
    channel = Channel.ANSWERING_SERVICE if side is Side.CUSTOMER else Channel.PHONE
    at = T0 + timedelta(minutes=minutes)
    return MessageEvent(external_id, conversation, at, side, channel=channel, customer=number)


def test_an_outbound_call_in_another_source_closes_a_callback_inquiry(
    tmp_path: Path, database_url: str
) -> None:
    settings, engine = two_phone_sources(tmp_path, database_url)
    answering, pbx = (measuring(settings, s) for s in settings.sources)
    with engine.begin() as conn:
        store_batch(conn, answering, [phone_message("m1", "+44 20 7946 0958", 0, Side.CUSTOMER)])
        # An outbound call to another number, and one before the message, close nothing.
        store_batch(conn, pbx, [phone_message("o0", "020 7946 0000", 30, Side.AGENT)])
    (inquiry,) = inquiries(engine)
    assert (inquiry.source, inquiry.status, inquiry.channel) == (
        "answering",
        "open",
        "answering_service",
    )
    with engine.begin() as conn:  # the same number written the national way
        store_batch(conn, pbx, [phone_message("o1", "020 7946 0958", 45, Side.AGENT)])
    (inquiry,) = inquiries(engine)
    assert (inquiry.status, inquiry.response_seconds) == ("answered", 45 * 60)
    assert tally(engine, "support_response_seconds", "3600") == 1  # 45 min: the 1 h bucket
    with engine.begin() as conn:  # re-reading the call log changes nothing
        store_batch(conn, pbx, [phone_message("o1", "020 7946 0958", 45, Side.AGENT)])
    assert tally(engine, "support_response_seconds", "3600") == 1  # 45 min: the 1 h bucket


def test_short_or_hidden_numbers_have_no_callback_conversation() -> None:
    assert callback_conversation("anonymous") is None
    assert callback_conversation("2001") is None
    assert callback_conversation(None) is None
    assert callback_conversation("+1 (555) 010-9999") == callback_conversation("555 010 9999")


def test_inquiries_of_new_and_stored_conversations_equal_a_rebuild_from_the_store(
    tmp_path: Path, database_url: str
) -> None:
    # A batch derives the inquiries of conversations new to the store from the messages at
    # hand, and those of stored ones from the store: both must give what a rebuild gives.
    settings, engine = two_phone_sources(tmp_path, database_url)
    answering, pbx = (measuring(settings, s) for s in settings.sources)
    first, second, third = "+44 20 7946 0001", "+44 20 7946 0002", "+44 20 7946 0003"
    with engine.begin() as conn:
        store_batch(conn, pbx, [phone_message("o1", third, 50, Side.AGENT)])  # before: none
        store_batch(
            conn,
            answering,
            [
                phone_message("m1", first, 0, Side.CUSTOMER),
                phone_message("m2", first, 5, Side.CUSTOMER),  # same inquiry, still open
                phone_message("m3", third, 40, Side.CUSTOMER),  # answered by o1 (pbx)
            ],
        )
        store_batch(
            conn,
            answering,
            [
                phone_message("m4", first, 60, Side.AGENT),  # a stored conversation: closes
                phone_message("m5", second, 61, Side.CUSTOMER),  # a new one, in the same batch
                phone_message("m1", first, 0, Side.CUSTOMER),  # read again: nothing changes
            ],
        )
        store_batch(conn, pbx, [phone_message("o2", second, 70, Side.AGENT)])

    def measured() -> list[tuple[Any, ...]]:
        return sorted(
            (i.source, i.conversation, i.opened_by, i.status, i.response_seconds, i.kind)
            for i in inquiries(engine)
        )

    def counted() -> dict[tuple[str, str, str, str], float]:
        with engine.connect() as conn:
            rows = conn.execute(select(TALLIES)).mappings()
            return {(r["metric"], r["source"], r["labels"], r["le"]): r["value"] for r in rows}

    incremental, tallied = measured(), counted()
    assert [(c, status) for _, c, _, status, _, _ in incremental] == [
        (callback_conversation(first), "answered"),
        (callback_conversation(second), "answered"),
        (callback_conversation(third), "answered"),
    ]
    with engine.begin() as conn:  # rebuild every inquiry and tally from the stored messages
        conn.execute(delete(INQUIRIES))
        for ctx in (answering, pbx):
            conversations = conn.execute(
                select(MESSAGES.c.conversation).where(MESSAGES.c.source == ctx.source).distinct()
            ).scalars()
            rederive(conn, ctx, list(conversations))
        recount(conn, settings, layout_for(settings))
    assert measured() == incremental
    assert counted() == pytest.approx(tallied)


def test_reading_ahead_keeps_the_order_raises_the_sources_error_in_turn_and_closes_it() -> None:
    closed: list[str] = []

    def source() -> Iterator[Batch]:
        try:
            for n in range(3):
                yield Batch([], {"n": n})
            raise ConnectorError("connection lost")
        finally:
            closed.append("closed")

    seen: list[int] = []
    with pytest.raises(ConnectorError, match="connection lost"), read_ahead(source()) as taken:
        for batch in taken:
            seen.append(batch.cursor["n"])
    assert seen == [0, 1, 2] and closed == ["closed"]


def test_reading_ahead_stopped_early_closes_the_source() -> None:
    closed: list[str] = []

    def endless() -> Iterator[Batch]:
        try:
            n = 0
            while True:
                yield Batch([], {"n": n})
                n += 1
        finally:
            closed.append("closed")

    with read_ahead(endless()) as taken:
        first = next(iter(taken))
    assert first.cursor == {"n": 0} and closed == ["closed"]


def test_the_partial_call_indexes_are_partial_on_both_databases(
    tmp_path: Path, database_url: str
) -> None:
    # Their WHERE is declared for SQLite in the tables (so SQLite processes never load the
    # PostgreSQL dialect) and given to PostgreSQL when its schema is prepared.
    engine = make_engine(database_url, tmp_path)
    prepare(engine)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'call'"
        else:
            query = "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'call'"
        definitions = dict(conn.execute(text(query)).all())
    assert "WHERE" in definitions["ix_call_waiting"].upper()
    assert "WHERE" in definitions["ix_call_got_through"].upper()
