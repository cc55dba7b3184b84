"""Bulk writes and lookups (monitor.store.bulk), and the call tallies ingest computes per batch.

insert_rows and select_in skip SQLAlchemy's per-value work on SQLite (rows as tuples, times
converted a column at a time, IN lists as one JSON parameter): these tests hold them to
what SQLAlchemy itself stores and finds, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, Engine, select
from sqlalchemy.dialects import sqlite
from sqlmodel import SQLModel

from monitor.config_file import settings_from_mapping
from monitor.measure.events import CallEvent, CallOutcome, from_micros, micros
from monitor.store.batches import CALL_COLUMNS, MESSAGE_COLUMNS, StoredMessage
from monitor.store.bulk import _sqlite_insert, insert_rows, json_array, select_in
from monitor.store.database import CHUNK, make_engine, prepare
from monitor.store.instants import Instant, instants
from monitor.store.tables import CALLS, MESSAGES
from monitor.store.tallies import (
    CALL_VERDICTS,
    CALLS_TOTAL,
    HOLD,
    HOLD_BREACHES,
    Key,
    fmt_le,
    labels_text,
    layout_for,
    tally_calls,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PLUS_FIVE = timezone(timedelta(hours=5, minutes=30))


def store(database_url: str) -> Engine:
    engine = make_engine(database_url)
    prepare(engine)
    return engine


def call(source: str, n: int, entered: datetime, **extra: Any) -> tuple[Any, ...]:
    row = {
        "source": source,
        "external_id": f"c{n}",
        "queue": "support",
        "entered_at": entered,
        "answered_at": None,
        "left_at": entered + timedelta(seconds=30, microseconds=n),
        "wait_seconds": 30,  # an int: stored as a float, as SQLAlchemy does
        "talk_seconds": None,
        "outcome": "abandoned",
        "caller": None,
        "short_abandon": False,
        "agent": None,
        "ended_by": None,
        "caller_key": None,
        **extra,
    }
    return tuple(row[c] for c in CALL_COLUMNS)


def stored(engine: Engine, source: str) -> list[tuple[Any, ...]]:
    """The rows of `source` as the database holds them (times as integers on SQLite)."""
    columns = ", ".join(c for c in CALL_COLUMNS if c != "source")
    with engine.connect() as conn:
        sql = f"SELECT {columns} FROM call WHERE source = '{source}' ORDER BY external_id"
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


def test_bulk_inserted_rows_are_stored_as_sqlalchemy_stores_them(database_url: str) -> None:
    engine = store(database_url)
    moments = [
        T0,
        T0 + timedelta(microseconds=120),
        datetime(2026, 3, 29, 2, 30, 15, 999_999, tzinfo=PLUS_FIVE),  # stored in UTC
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
    ]
    # A flag set, a key, who answered.
    flags = {"short_abandon": True, "caller_key": "tel:079460000", "agent": "PJSIP/1001"}

    def calls(source: str) -> list[tuple[Any, ...]]:
        return [
            call(source, n, at, talk_seconds=n * 1.5, **(flags if n % 2 else {}))
            for n, at in enumerate(moments)
        ]

    ours, theirs = calls("ours"), calls("theirs")
    with engine.begin() as conn:
        insert_rows(conn, CALLS, CALL_COLUMNS, ours, ignore_conflicts=["source", "external_id"])
        conn.execute(CALLS.insert(), [dict(zip(CALL_COLUMNS, r, strict=True)) for r in theirs])
    assert stored(engine, "ours") == stored(engine, "theirs")
    with engine.connect() as conn:
        back = conn.execute(select(CALLS.c.entered_at).where(CALLS.c.source == "ours"))
        assert sorted(back.scalars()) == sorted(m.astimezone(UTC) for m in moments)


def test_bulk_inserted_columns_may_come_in_any_order(database_url: str) -> None:
    engine = store(database_url)
    shuffled = ("outcome", "external_id", "entered_at", "source", "queue")
    with engine.begin() as conn:
        insert_rows(conn, CALLS, shuffled, [("answered", "c1", T0, "ours", "sales")])
        row = conn.execute(select(CALLS)).mappings().one()
    assert (row["outcome"], row["external_id"], row["queue"]) == ("answered", "c1", "sales")
    assert row["entered_at"] == T0


def test_rows_whose_key_is_stored_are_skipped_and_the_rest_inserted(database_url: str) -> None:
    engine = store(database_url)
    keys = ["source", "external_id"]
    with engine.begin() as conn:
        insert_rows(conn, CALLS, CALL_COLUMNS, [call("s", 1, T0)], ignore_conflicts=keys)
        again = [call("s", 1, T0, outcome="answered"), call("s", 2, T0)]
        insert_rows(conn, CALLS, CALL_COLUMNS, again, ignore_conflicts=keys)
        rows = conn.execute(select(CALLS.c.external_id, CALLS.c.outcome)).all()
    assert sorted(rows) == [("c1", "abandoned"), ("c2", "abandoned")]


def test_a_naive_time_is_refused_as_sqlalchemy_refuses_it(sqlite_url: str) -> None:
    engine = store(sqlite_url)
    with pytest.raises(ValueError, match="timezone"), engine.begin() as conn:
        insert_rows(conn, CALLS, CALL_COLUMNS, [call("s", 1, T0.replace(tzinfo=None))])


def test_booleans_are_stored_as_sqlalchemy_stores_them(database_url: str) -> None:
    engine = store(database_url)
    columns = ("source", "external_id", "conversation", "at", "side", "kind")
    columns += ("automatic", "internal", "channel")
    rows = [
        ("s", f"m{n}", "c", T0, "customer", "message", n % 2 == 0, n == 1, "chat") for n in (0, 1)
    ]
    with engine.begin() as conn:
        insert_rows(conn, MESSAGES, columns, rows)
        back = conn.execute(select(MESSAGES.c.automatic, MESSAGES.c.internal)).all()
    assert sorted(back) == [(False, True), (True, False)]


def test_nulls_and_flags_are_bound_without_the_sqlite_modules_protocol_lookup(
    sqlite_url: str,
) -> None:
    # With an adapter registered, sqlite3 binds a None or a bool without looking up (and
    # failing to find) `__conform__`/`__adapt__`, an exception built and dropped per value. The
    # stored values are those sqlite3 binds without one: NULL, and a bool's 0 or 1.
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
    assert sqlite3.adapters[(bool, sqlite3.PrepareProtocol)] is int
    engine = store(sqlite_url)
    with engine.begin() as conn:
        insert_rows(conn, CALLS, CALL_COLUMNS, [call("q", 1, T0, short_abandon=True)])
        back = conn.exec_driver_sql(
            "SELECT typeof(answered_at), typeof(caller), typeof(short_abandon), short_abandon"
            " FROM call"
        ).one()
    assert tuple(back) == ("null", "null", "integer", 1)


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, PLUS_FIVE, timezone(timedelta(hours=-11))]),
    )
)
def test_the_fast_time_column_is_the_types_own_and_reads_back_the_same_instant(
    moment: datetime,
) -> None:
    # insert_rows converts a column of times with `instants`, which also takes a CallEvent's
    # microseconds as they are: all three must be what the column type itself binds.
    dialect = sqlite.dialect()
    bind = CALLS.c.entered_at.type.bind_processor(dialect)
    result = CALLS.c.entered_at.type.result_processor(dialect, None)
    assert instants([moment, None, micros(moment)]) == [bind(moment), None, bind(moment)]
    assert result(bind(moment)) == moment
    assert from_micros(micros(moment)) == moment


def test_a_call_event_is_its_row_after_the_source() -> None:
    # The store's row of a call is (source,) + event + (caller key,): the fields must be the
    # columns, in order.
    assert [f.replace("_us", "_at") for f in CallEvent._fields] == list(CALL_COLUMNS[1:-1])
    assert CALL_COLUMNS[-1] == "caller_key"


def test_a_stored_message_is_its_row_after_the_source() -> None:
    # A new message's row is (source,) + its StoredMessage (what pairing reads): the fields
    # must be the message columns, in order.
    assert list(StoredMessage._fields) == list(MESSAGE_COLUMNS[1:])


def test_a_call_from_epochs_equals_the_call_from_datetimes() -> None:
    entered = 1_795_165_200.25
    from_times = CallEvent(
        "c1",
        "sales",
        datetime.fromtimestamp(entered, UTC),
        CallOutcome.ANSWERED,
        answered_at=datetime.fromtimestamp(entered + 30, UTC),
        left_at=datetime.fromtimestamp(entered + 90, UTC),
        talk_seconds=60.0,
    )
    from_epochs = CallEvent.from_epochs(
        "c1", "sales", entered, CallOutcome.ANSWERED, entered + 30, entered + 90, None, 60.0
    )
    assert from_epochs == from_times
    assert from_epochs.wait_seconds == 30.0
    assert from_epochs.left_at == datetime(2026, 11, 20, 9, 1, 30, 250_000, tzinfo=UTC)


def test_a_naive_call_time_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="entered_at must be timezone-aware"):
        CallEvent("c1", "sales", T0.replace(tzinfo=None), CallOutcome.WAITING)


def test_every_time_column_is_an_instant() -> None:
    # A datetime field declared without sa_type=Instant would be stored as text on SQLite,
    # where comparing it with the integers of every other time column silently goes wrong.
    times = [
        column
        for table in SQLModel.metadata.sorted_tables
        for column in table.c
        if isinstance(getattr(column.type, "impl", column.type), DateTime)
    ]
    assert len(times) > 20
    assert [str(c) for c in times if not isinstance(c.type, Instant)] == []


def test_time_columns_take_the_fast_path_on_sqlite() -> None:
    _, _, converters = _sqlite_insert(CALLS, CALL_COLUMNS, ())
    fast = {CALL_COLUMNS[i] for i, convert in converters if convert is instants}
    assert fast == {"entered_at", "answered_at", "left_at"}


def test_select_in_finds_the_stored_rows_among_more_values_than_a_chunk(
    database_url: str,
) -> None:
    engine = store(database_url)
    rows = [call("s", n, T0) for n in range(CHUNK * 2 + 5)]
    with engine.begin() as conn:
        insert_rows(conn, CALLS, CALL_COLUMNS, rows)
        insert_rows(conn, CALLS, CALL_COLUMNS, [call("other", 3, T0)])
        wanted = [f"c{n}" for n in range(0, CHUNK * 3, 2)]  # half of them absent
        found = select_in(conn, CALLS, {"source": "s"}, "external_id", wanted, ["external_id"])
        whole = select_in(conn, CALLS, {"source": "other"}, "external_id", ["c3", "c4"])
        nothing = select_in(conn, CALLS, {"source": "s"}, "external_id", [])
    assert sorted(r["external_id"] for r in found) == sorted(
        f"c{n}" for n in range(0, CHUNK * 2 + 5, 2)
    )
    assert [(r["source"], r["external_id"], r["entered_at"]) for r in whole] == [
        ("other", "c3", T0)
    ]
    assert nothing == []


# -- the call tallies of a batch ---------------------------------------------------------------

SETTINGS = settings_from_mapping(
    {
        "targets": {"hold_warn": "5m", "hold_max": "13m"},
        "sources": [{"name": "s", "kind": "asterisk_queue_log", "path": "q"}],
    },
    Path("."),
)


def one_at_a_time(calls: list[tuple[str, str, str, float | None, bool]]) -> Counter[Key]:
    """The tallies as the metrics' documentation words them, a call at a time: an unknown
    call (or one without a wait) is counted, but has no hold to bucket or breach. Its verdict:
    within when a person answered within hold_warn, late when it waited longer or was never
    answered; none for a short abandon (the source said so: `short_abandon` is off here), an
    unknown one or an answered one of unknown wait."""
    layout, targets = layout_for(SETTINGS), SETTINGS.targets_for(SETTINGS.sources[0])
    out: Counter[Key] = Counter()
    for source, queue, outcome, wait, short in calls:
        if outcome == "waiting":
            continue
        out[(CALLS_TOTAL, source, labels_text(queue=queue, outcome=outcome), "")] += 1
        verdict = None
        if outcome in ("answered", "transferred") and wait is not None:
            verdict = "within" if wait <= targets.hold_warn.total_seconds() else "late"
        elif outcome in ("abandoned", "timeout", "exit_empty") and not (
            outcome == "abandoned" and short
        ):
            verdict = "late"
        if verdict is not None:
            out[(CALL_VERDICTS, source, labels_text(queue=queue, verdict=verdict), "")] += 1
        if outcome == "unknown" or wait is None:
            continue
        value = wait
        bucket = next((b for b in layout.buckets[HOLD] if value <= b), math.inf)
        out[(HOLD, source, labels_text(queue=queue), fmt_le(bucket))] += 1
        out[(HOLD, source, labels_text(queue=queue), "_sum")] += value  # type: ignore[assignment]
        for name, limit in (("warn", targets.hold_warn), ("max", targets.hold_max)):
            if value > limit.total_seconds():
                key = (HOLD_BREACHES, source, labels_text(queue=queue, threshold=name), "")
                out[key] += 1
    return out


WAITS = st.one_of(
    st.none(),
    st.sampled_from([0.0, 10.0, 300.0, 300.5, 780.0, 3600.0, 1e7, -1.0, math.inf, math.nan]),
    st.floats(min_value=0, max_value=5000),
)


@given(
    st.lists(
        st.tuples(
            st.just("s"),
            st.sampled_from(["sales", "support"]),
            st.sampled_from(
                ["answered", "transferred", "abandoned", "waiting", "timeout", "exit_empty"]
                + ["unknown"]
            ),
            WAITS,
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_the_tallies_of_a_batch_are_those_of_its_calls_one_at_a_time(
    calls: list[tuple[str, str, str, float | None, bool]],
) -> None:
    got = tally_calls(calls, layout_for(SETTINGS), {"s": SETTINGS.targets_for(SETTINGS.sources[0])})
    expected = one_at_a_time(calls)
    assert got.keys() - {k for k, v in expected.items() if v == 0} <= expected.keys()
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[key])
        else:
            assert got[key] == pytest.approx(value), key


_IDS = st.text(alphabet=st.sampled_from('<>@.-_"\\\x01\x7f é~abc09'), max_size=12)


# Stored keys never hold NUL, which SQLite's text ends at, nor a lone surrogate, which is no
# UTF-8 (monitor.measure.events.storable_key replaces both).
_ANY = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8
)


@given(values=st.lists(_IDS | _ANY, min_size=1, max_size=20))
def test_the_json_array_of_ids_holds_exactly_the_ids(values: list[str]) -> None:
    # Ids go to SQLite as one JSON array: joined directly when nothing needs escaping, else
    # by json. Either way json_each must read back exactly the ids (quotes, backslashes,
    # control and non-ASCII characters included).
    assert json.loads(json_array(values)) == values
    with sqlite3.connect(":memory:") as db:
        found = [r[0] for r in db.execute("SELECT value FROM json_each(?)", (json_array(values),))]
    assert found == values


def test_the_json_array_of_numbers_is_json() -> None:
    assert json.loads(json_array([3, 1, 2])) == [3, 1, 2]
