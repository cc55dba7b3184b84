"""The SLO metrics as /metrics serves them: the verdict counters equal the verdicts of the stored
inquiries and calls after polls, a restart and re-polls, read 0 before the first, count a
customer still waiting as late once the target passes (with no poll in between) and never go
down when that customer is answered; the calendar gauge says open or closed at pinned
times (a weekday, the evening, a bank holiday, a closed date, an extra opening, both sides of a
DST change, a shift across midnight) for every configured calendar."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, delete, select

from monitor.config import Settings
from monitor.config_file import settings_from_mapping
from monitor.measure.events import CallEvent, CallOutcome
from monitor.publish.exporter import exposition
from monitor.store import tallies
from monitor.store.database import make_engine, prepare
from monitor.store.ingest import measuring, poll_source, reconcile, store_batch
from monitor.store.tables import INQUIRIES, TALLIES

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def chat_line(conversation: str, at: float, role: str, **extra: Any) -> str:
    record = {"conversation": conversation, "at": minutes(at).isoformat(), "author_role": role}
    return json.dumps(record | extra) + "\n"


def make_settings(tmp_path: Path) -> Settings:
    (tmp_path / "chat.jsonl").touch()
    (tmp_path / "calls.csv").write_text("Start\n")
    return settings_from_mapping(
        {
            "sources": [
                {"name": "web-chat", "kind": "chat_jsonl", "path": "chat.jsonl"},
                {
                    "name": "phones",
                    "kind": "call_csv",
                    "path": "calls.csv",
                    "columns": {"entered": "Start"},
                    "targets": {"hold_warn": "4m"},
                },
            ]
        },
        tmp_path,
    )


def open_store(tmp_path: Path, settings: Settings, url: str) -> Engine:
    engine = make_engine(url, tmp_path)
    prepare(engine)
    reconcile(engine, settings)
    return engine


def poll(engine: Engine, settings: Settings, at: float) -> None:
    now = minutes(at)
    for source in settings.sources:
        assert poll_source(engine, settings, source, now=now, clock=lambda: now).ok


def scrape(engine: Engine, settings: Settings, at: datetime) -> dict[tuple[str, ...], float]:
    """The verdict samples at `at`: (metric, source, channel or queue, verdict) -> value."""
    text = exposition(engine, settings, lambda: at).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("verdicts_total"):
                labels = sample.labels
                where = labels.get("channel", labels.get("queue", ""))
                key = (sample.name, labels["source"], where, labels["verdict"])
                found[key] = sample.value
    return found


def chat(found: dict[tuple[str, ...], float]) -> dict[str, float]:
    return {
        verdict: found[("support_response_verdicts_total", "web-chat", "chat", verdict)]
        for verdict in ("within", "late")
    }


def calls(found: dict[tuple[str, ...], float], queue: str) -> dict[str, float]:
    return {
        verdict: found[("support_call_verdicts_total", "phones", queue, verdict)]
        for verdict in ("within", "late")
    }


def store_calls(engine: Engine, settings: Settings, events: list[CallEvent]) -> None:
    with engine.begin() as conn:
        store_batch(conn, measuring(settings, settings.source("phones")), events)


def call(external_id: str, outcome: CallOutcome, wait: float, queue: str = "sales") -> CallEvent:
    left = minutes(10) + timedelta(seconds=wait)
    answered = left if outcome in (CallOutcome.ANSWERED, CallOutcome.TRANSFERRED) else None
    return CallEvent(
        external_id, queue, minutes(10), outcome, answered_at=answered, left_at=left, caller="0"
    )


def by_hand(engine: Engine, at: datetime) -> dict[str, int]:
    """The chat source's verdicts from its stored inquiries at `at`: within when answered in
    time; late when answered late, missed, or still open past the target — or when a scrape
    had already called it late while it was open (the verdict it holds)."""
    counted = {"within": 0, "late": 0}
    with engine.connect() as conn:
        for row in conn.execute(select(INQUIRIES)).mappings():
            if row["verdict"] is not None:
                counted[row["verdict"]] += 1
            elif row["status"] == "answered":
                counted["late" if row["breached"] else "within"] += 1
            elif row["status"] == "missed" or row["due_at"] < at:
                counted["late"] += 1
    return counted


def test_the_verdicts_equal_the_store_across_polls_a_restart_and_re_polls(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path)
    log = tmp_path / "chat.jsonl"
    engine = open_store(tmp_path, settings, database_url)
    # Before anything: both verdicts of every source read 0 (an error ratio of 0, not "no data").
    empty = scrape(engine, settings, minutes(0))
    assert chat(empty) == {"within": 0, "late": 0}
    assert calls(empty, "") == {"within": 0, "late": 0}  # the phone source as a whole
    assert ("support_response_verdicts_total", "phones", "voicemail", "late") in empty

    log.write_text(
        chat_line("c1", 0, "customer")
        + chat_line("c1", 1, "agent")  # answered in time: within
        + chat_line("c2", 0, "customer")
        + chat_line("c2", 5, "agent")  # answered after the 2-minute target: late
        + chat_line("c3", 10, "customer")  # open, due at 12
        + chat_line("c4", 10, "customer")
        + chat_line("c4", 11, "customer", event="ended")  # missed: late
    )
    poll(engine, settings, 11)
    store_calls(
        engine,
        settings,
        [
            call("k1", CallOutcome.ANSWERED, 15),  # within hold_warn (4 min): within
            call("k2", CallOutcome.ABANDONED, 30),  # never answered: late
            call("k3", CallOutcome.ANSWERED, 300),  # after hold_warn: late
            call("k4", CallOutcome.UNKNOWN, 900),  # no known end: no verdict
            call("k5", CallOutcome.TRANSFERRED, 60, queue="billing"),  # answered: within
        ],
    )
    seen = [scrape(engine, settings, minutes(11))]
    assert chat(seen[-1]) == by_hand(engine, minutes(11)) == {"within": 1, "late": 2}
    assert calls(seen[-1], "sales") == {"within": 1, "late": 2}
    assert calls(seen[-1], "billing") == {"within": 1, "late": 0}

    # No poll: c3's target passes, and the next scrape counts it late.
    seen.append(scrape(engine, settings, minutes(13)))
    assert chat(seen[-1]) == by_hand(engine, minutes(13)) == {"within": 1, "late": 3}

    # c3 answered at last (late, so no change); a follow-up answered in time (within).
    with log.open("a") as handle:
        handle.write(chat_line("c3", 20, "agent") + chat_line("c3", 21, "customer"))
        handle.write(chat_line("c3", 22, "agent"))
    poll(engine, settings, 23)
    seen.append(scrape(engine, settings, minutes(23)))
    assert chat(seen[-1]) == by_hand(engine, minutes(23)) == {"within": 2, "late": 3}
    before_restart = seen[-1]
    engine.dispose()

    engine = open_store(tmp_path, settings, database_url)  # a restart: same database
    seen.append(scrape(engine, settings, minutes(23)))
    assert seen[-1] == before_restart
    poll(engine, settings, 24)  # re-polls, a log written again and calls read again add nothing
    log.write_text(log.read_text())
    poll(engine, settings, 25)
    store_calls(engine, settings, [call("k1", CallOutcome.ANSWERED, 15)])
    seen.append(scrape(engine, settings, minutes(25)))
    assert seen[-1] == before_restart
    assert chat(seen[-1]) == by_hand(engine, minutes(25))
    # Never down, verdict by verdict, from one scrape to the next.
    for earlier, later in zip(seen, seen[1:], strict=False):
        assert all(later[key] >= value for key, value in earlier.items())


def test_a_late_open_inquiry_answered_later_never_makes_the_counter_go_down(
    tmp_path: Path, database_url: str
) -> None:
    """Sent in time, read late: the reply of 1.5 minutes reaches the store after a scrape has
    counted the inquiry late at 3 minutes. The verdict given stands: late stays 1, within 0."""
    settings = make_settings(tmp_path)
    log = tmp_path / "chat.jsonl"
    engine = open_store(tmp_path, settings, database_url)
    log.write_text(chat_line("c1", 0, "customer"))
    poll(engine, settings, 0.5)
    assert chat(scrape(engine, settings, minutes(1))) == {"within": 0, "late": 0}
    assert chat(scrape(engine, settings, minutes(3))) == {"within": 0, "late": 1}
    with log.open("a") as handle:
        handle.write(chat_line("c1", 1.5, "agent"))
    poll(engine, settings, 4)
    assert chat(scrape(engine, settings, minutes(4))) == {"within": 0, "late": 1}


def test_calls_stored_before_the_verdicts_get_theirs_at_the_first_start(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of the code before the verdict counters: its calls were measured under the
    measurement rules before them and have no verdict tallies (no schema upgrade can count
    them: it does not know each source's hold_warn). The first start redoes the measurements and
    counts them, before the counters are first served, so they never jump later."""
    settings = make_settings(tmp_path)
    with monkeypatch.context() as old:
        old.setattr(
            tallies, "RULES", 3
        )  # what the code before the verdicts stored its signature with
        engine = open_store(tmp_path, settings, database_url)
        store_calls(
            engine,
            settings,
            [call("k1", CallOutcome.ANSWERED, 15), call("k2", CallOutcome.ABANDONED, 30)],
        )
        with engine.begin() as conn:  # as that code left it: no verdict tallies
            conn.execute(delete(TALLIES).where(TALLIES.c.metric.like("%verdicts_total")))
        engine.dispose()
    engine = open_store(tmp_path, settings, database_url)  # the first start of this code
    assert calls(scrape(engine, settings, minutes(11)), "sales") == {"within": 1, "late": 1}


LONDON = {
    "timezone": "Europe/London",
    "hours": {d: ["09:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "GB", "subdivision": "ENG"},
    "closed": ["2026-12-24"],
    "open": {"2026-11-28": ["10:00-16:00"]},
}
NIGHT = {"timezone": "Europe/London", "hours": {"mon": ["22:00-06:00"]}}


@pytest.mark.parametrize(
    ("at", "office", "night"),
    [
        ("2026-11-20T12:00:00", 1, 0),  # a Friday at noon (GMT)
        ("2026-11-20T17:29:59", 1, 0),
        ("2026-11-20T17:30:00", 0, 0),  # closing time itself is closed
        ("2026-11-20T18:00:00", 0, 0),  # the evening
        ("2026-11-21T12:00:00", 0, 0),  # a Saturday
        ("2026-11-28T11:00:00", 1, 0),  # a Saturday opened by `open:`
        ("2026-12-24T12:00:00", 0, 0),  # a date in `closed:`
        ("2026-12-25T12:00:00", 0, 0),  # Christmas Day, a Friday: a bank holiday
        ("2026-03-27T08:30:00", 0, 0),  # Friday before the clocks go forward: 08:30 GMT
        ("2026-03-27T16:45:00", 1, 0),  # 16:45 GMT
        ("2026-03-30T08:30:00", 1, 0),  # Monday after: 09:30 BST, open
        ("2026-03-30T16:45:00", 0, 0),  # 17:45 BST, closed
        ("2026-11-23T23:00:00", 0, 1),  # Monday's night shift
        ("2026-11-24T05:59:00", 0, 1),  # still Monday's shift on Tuesday morning
        ("2026-11-24T07:00:00", 0, 0),
    ],
)
def test_the_calendar_gauge_follows_hours_holidays_exceptions_and_dst(
    tmp_path: Path, at: str, office: int, night: int
) -> None:
    settings = settings_from_mapping(
        {"calendars": {"office": LONDON, "night": NIGHT}, "sources": []}, tmp_path
    )
    engine = make_engine(f"sqlite:///{tmp_path}/monitor.db", tmp_path)
    prepare(engine)
    moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
    text = exposition(engine, settings, lambda: moment).decode()
    gauge = {
        s.labels["calendar"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "support_calendar_open"
        for s in family.samples
    }
    # Every configured calendar, used by a source or not, 1 or 0.
    assert gauge == {"office": office, "night": night}
