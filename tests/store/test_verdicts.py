"""Verdicts on a real database: an inquiry is counted once, `within` or `late`, when its verdict
is known; an open one is `late` from the first scrape after its due time (time, not a poll,
makes it so), and the counter never goes down when it is answered, the store is rebuilt, the
targets change, the process restarts or the source is read again; it always equals a recount
of the stored rows and the verdicts the stored inquiries hold."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, select, text

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.measure.events import MessageEvent, MessageKind, Side
from monitor.store.database import make_engine, prepare, set_meta
from monitor.store.ingest import measuring, poll_source, reconcile, rederive, store_batch
from monitor.store.tables import INQUIRIES, META, SCHEMA_VERSION, TALLIES, UNSETTLED_INQUIRY
from monitor.store.tallies import VERDICTS, layout_for, recount
from monitor.store.verdicts import settle
from tests.store.chat_site import chat_site

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def line(conversation: str, minutes: float, role: str, **extra: Any) -> str:
    record = {"conversation": conversation, "at": at(minutes).isoformat(), "author_role": role}
    return json.dumps(record | extra) + "\n"


def poll(engine: Engine, settings: Settings, minutes: float) -> None:
    now = at(minutes)
    assert poll_source(engine, settings, settings.sources[0], now=now, clock=lambda: now).ok


def verdicts(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(TALLIES.c.labels, TALLIES.c.value).where(TALLIES.c.metric == VERDICTS)
        ).all()
    out = {"within": 0.0, "late": 0.0}
    for labels, value in rows:
        out[labels.rsplit("verdict=", 1)[1]] += value
    return out


def scrape(engine: Engine, minutes: float) -> dict[str, float]:
    """What a scrape at T0 + `minutes` counts: it first settles what time has made late."""
    settle(engine, at(minutes))
    return verdicts(engine)


def by_hand(engine: Engine, now: datetime) -> dict[str, int]:
    """The verdicts of the stored inquiries at `now`, as the metrics' documentation words them:
    within when answered in time, late when answered late, missed or still open past its due
    time; but a verdict given before stands (`inquiry.verdict`: the one a scrape gave an
    inquiry still open, or the one of a reply judged under other targets)."""
    counted = {"within": 0, "late": 0}
    with engine.connect() as conn:
        for row in conn.execute(select(INQUIRIES)).mappings():
            if row["verdict"] is not None:
                counted[row["verdict"]] += 1
            elif row["status"] == "answered":
                counted["late" if row["breached"] else "within"] += 1
            elif row["status"] == "missed" or (row["due_at"] and row["due_at"] < now):
                counted["late"] += 1
    return counted


def assert_tallies_are_a_recount(engine: Engine, settings: Settings) -> None:
    """The stored tallies equal a recount. A bucket counted down to 0 by a remeasured inquiry
    keeps its row where a recount writes none: both read as 0, so rows of 0 are left aside."""

    def rows() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            found = (tuple(r)[1:] for r in conn.execute(select(TALLIES)))
            return sorted(r for r in found if r[-1] != 0)

    before = rows()
    with engine.begin() as conn:
        recount(conn, settings, layout_for(settings))
    assert rows() == before


def test_an_open_chat_is_late_from_the_first_scrape_past_its_due_time_and_stays_late(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = chat_site(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer"))
    poll(engine, settings, 0.5)
    assert scrape(engine, 1) == {"within": 0, "late": 0}  # due at 2 min: no verdict yet
    # No poll in between: time alone gives the verdict.
    assert scrape(engine, 2.5) == {"within": 0, "late": 1}
    assert scrape(engine, 3) == {"within": 0, "late": 1}  # counted once
    # The reply, sent at 1.5 min but read at 4 min, after /metrics had said `late`: a counter
    # that went down would read as a restart in Prometheus, so the verdict given stands.
    with path.open("a") as handle:
        handle.write(line("c1", 1.5, "agent"))
    poll(engine, settings, 4)
    (row,) = _inquiries(engine)
    assert (row["status"], row["breached"], row["verdict"]) == ("answered", False, "late")
    assert scrape(engine, 4) == {"within": 0, "late": 1}
    assert by_hand(engine, at(4)) == {"within": 0, "late": 1}
    assert_tallies_are_a_recount(engine, settings)


def test_a_reply_read_before_any_scrape_said_late_is_judged_by_its_own_time(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = chat_site(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer"))
    poll(engine, settings, 0.5)
    with path.open("a") as handle:
        handle.write(line("c1", 1.5, "agent"))
    poll(engine, settings, 4)  # read after the due time, but nothing had been shown late
    assert scrape(engine, 4) == {"within": 1, "late": 0}
    assert by_hand(engine, at(4)) == {"within": 1, "late": 0}


def test_a_late_open_inquiry_answered_later_is_counted_late_once(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = chat_site(tmp_path, database_url)
    path.write_text(line("c1", 0, "customer") + line("c2", 0, "customer"))
    poll(engine, settings, 0.5)
    seen = [scrape(engine, 5)]
    with path.open("a") as handle:  # c1 answered late; c2's visitor leaves: missed
        handle.write(line("c1", 6, "agent") + line("c2", 7, "customer", event="ended"))
    poll(engine, settings, 8)
    seen.append(scrape(engine, 8))
    # A follow-up in c1, answered in time, in one poll: a new inquiry, `within`.
    with path.open("a") as handle:
        handle.write(line("c1", 9, "customer") + line("c1", 10, "agent"))
    poll(engine, settings, 11)
    seen.append(scrape(engine, 11))
    assert seen == [
        {"within": 0, "late": 2},
        {"within": 0, "late": 2},
        {"within": 1, "late": 2},
    ]
    assert by_hand(engine, at(11)) == {"within": 1, "late": 2}
    assert_tallies_are_a_recount(engine, settings)


def test_restarts_re_polls_and_redone_measurements_keep_the_verdicts(
    tmp_path: Path, database_url: str
) -> None:
    path, settings, engine = chat_site(tmp_path, database_url)
    path.write_text(
        line("c1", 0, "customer")
        + line("c1", 1, "agent")  # within
        + line("c2", 0, "customer")  # open: late from 2 min
        + line("c3", 0, "customer")
        + line("c3", 5, "agent")  # answered late
    )
    poll(engine, settings, 6)
    first = scrape(engine, 6)
    assert first == {"within": 1, "late": 2}
    engine.dispose()
    engine = make_engine(database_url, tmp_path)  # a restart: same database
    prepare(engine)
    reconcile(engine, settings)
    assert verdicts(engine) == first
    poll(engine, settings, 7)  # a re-poll of a file read before adds nothing
    path.write_text(path.read_text())  # the same file written again (a new inode)
    poll(engine, settings, 8)
    assert scrape(engine, 8) == first
    # A changed reply target redoes the measurements, but not the verdicts given: c3, 5 min,
    # stays late although 10 min is the target now; c2, open, stays late although its new due
    # time has not passed. Prometheus holds the counter's history: changing it now could only
    # make it go down (read as a restart). A new inquiry is judged by the new target.
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
    assert reconcile(engine, relaxed)
    assert scrape(engine, 8) == first
    with path.open("a") as handle:
        handle.write(line("c5", 8, "customer") + line("c5", 13, "agent"))
    poll(engine, relaxed, 14)
    assert scrape(engine, 14) == {"within": 2, "late": 2}
    assert by_hand(engine, at(14)) == {"within": 2, "late": 2}
    assert_tallies_are_a_recount(engine, relaxed)


def test_settling_finds_the_unsettled_inquiries_by_their_partial_index(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    prepare(engine)
    query = select(INQUIRIES.c.id).where(UNSETTLED_INQUIRY, INQUIRIES.c.due_at < T0)
    with engine.connect() as conn:
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = " ".join(
            str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        )
    assert "ix_inquiry_unsettled" in plan


def test_a_version_4_database_gets_the_flag_its_index_and_the_verdicts_of_closed_inquiries(
    tmp_path: Path, database_url: str
) -> None:
    """A v4 database (no inquiry.verdict, no verdict tallies) with inquiries answered in
    time, answered late, missed and open: the upgrade counts the closed ones' verdicts, so a
    rebuild of one afterwards moves the counter by nothing (it would go below zero otherwise);
    the open one gets its verdict at the next scrape."""
    path, settings, engine = chat_site(tmp_path, database_url)
    path.write_text(
        line("c1", 0, "customer")
        + line("c1", 1, "agent")
        + line("c2", 0, "customer")
        + line("c2", 5, "agent")
        + line("c3", 0, "customer")
        + line("c3", 1, "customer", event="ended")
        + line("c4", 0, "customer")
    )
    poll(engine, settings, 6)
    with engine.begin() as conn:  # as version 4 left it
        conn.execute(text("DELETE FROM tally WHERE metric = :m"), {"m": VERDICTS})
        conn.execute(text("DROP INDEX ix_inquiry_unsettled"))
        conn.execute(text("ALTER TABLE inquiry DROP COLUMN verdict"))
        set_meta(conn, "schema_version", "4")
    prepare(engine)
    with engine.connect() as conn:
        version = conn.execute(select(META.c.value).where(META.c.key == "schema_version"))
        assert version.scalar_one() == str(SCHEMA_VERSION)
        assert "ix_inquiry_unsettled" in {i["name"] for i in inspect(conn).get_indexes("inquiry")}
    assert verdicts(engine) == {"within": 1, "late": 2}
    with path.open("a") as handle:  # c1 gets a follow-up: its inquiries are rebuilt
        handle.write(line("c1", 7, "customer"))
    poll(engine, settings, 7.5)
    assert scrape(engine, 8) == {"within": 1, "late": 3}  # c4, open since 0, is late now
    assert_tallies_are_a_recount(engine, settings)


# -- a random life of a chat source ------------------------------------------------------------

SETTINGS = settings_from_mapping(
    {"sources": [{"name": "chat", "kind": "chat_jsonl", "path": "chat.jsonl"}]}, Path(".")
)
STEP = st.tuples(
    st.sampled_from(["ask", "answer", "end", "scrape", "rebuild"]),
    st.integers(min_value=0, max_value=3),  # which conversation
    st.integers(min_value=0, max_value=5),  # minutes the clock moves on
    st.integers(min_value=0, max_value=4),  # how long before the read it happened, minutes
)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=25))
def test_the_counter_never_goes_down_and_always_equals_a_recount(
    steps: list[tuple[str, int, int, int]],
) -> None:
    """Questions, replies (some read late, some dated before what they answer) and chats
    ending, stored as a poll stores them, between scrapes at moving times and rebuilds of the
    stored history: every scrape reads at least what the one before it did, verdict by verdict,
    and the tallies always equal a recount of the rows."""
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/monitor.db")
        prepare(engine)
        ctx = measuring(SETTINGS, SETTINGS.sources[0])
        minutes, last, ids = 0, {"within": 0.0, "late": 0.0}, Counter[str]()
        for action, conversation, later, before in steps:
            minutes += later
            name = f"c{conversation}"
            if action == "scrape":
                now = scrape(engine, minutes)
                assert all(now[v] >= last[v] for v in last), (last, now)
                last = now
                continue
            if action == "rebuild":
                with engine.begin() as conn:
                    conversations = [r[0] for r in conn.execute(select(INQUIRIES.c.conversation))]
                    rederive(conn, ctx, conversations)
                continue
            ids[name] += 1
            side = Side.CUSTOMER if action in ("ask", "end") else Side.AGENT
            kind = MessageKind.ENDED if action == "end" else MessageKind.MESSAGE
            event = MessageEvent(f"{name}-{ids[name]}", name, at(minutes - before), side, kind=kind)
            with engine.begin() as conn:
                store_batch(conn, ctx, [event])
        now = scrape(engine, minutes)
        assert all(now[v] >= last[v] for v in last), (last, now)
        assert now == by_hand(engine, at(minutes))
        assert_tallies_are_a_recount(engine, SETTINGS)
        engine.dispose()


def _inquiries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(INQUIRIES)).mappings())
