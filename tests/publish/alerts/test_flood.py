"""A flood of late inquiries is one alert per source, and an evaluation costs what it shows:
a real database and a real HTTP receiver, time pinned.

More than `PER_INQUIRY` of a source's open inquiries overdue (or due soon) fire one alert for
the source, naming how many and the oldest; it ends when they are down to half the limit, and
the inquiries left are alerted on one by one again. The evaluation reads counts and indexes,
so with a hundred times the backlog it reads about as much."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from monitor.config import Settings
from monitor.measure.events import MessageEvent, Side
from monitor.publish.alerts.rules import PER_INQUIRY
from monitor.publish.alerts.run import run_once
from monitor.store.tables import ALERT_STATES
from tests.publish.alerts.test_run import MIN, setup, store
from tests.sinks import HttpSink
from tests.store.test_backlog import vm_steps

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def ask(engine: Engine, settings: Settings, names: range, at: datetime) -> None:
    """One chat question per name, a second apart from `at` (reply target: 1 hour)."""
    questions = [
        MessageEvent(f"m{n}", f"conv-{n:05}", at + i * SECOND, Side.CUSTOMER, subject=f"Order {n}")
        for i, n in enumerate(names)
    ]
    store(engine, settings, "chat", *questions)


def answer(engine: Engine, settings: Settings, names: range, at: datetime) -> None:
    replies = [MessageEvent(f"r{n}", f"conv-{n:05}", at, Side.AGENT) for n in names]
    store(engine, settings, "chat", *replies)


def posts(sink: HttpSink) -> list[tuple[str, str, str | None, int]]:
    """(rule, status, subject, count) of each webhook post."""
    bodies = [r.json() for r in sink.requests]
    return [(b["rule"], b["status"], b["subject"], b["count"]) for b in bodies]


def stored(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(ALERT_STATES.c.rule, ALERT_STATES.c.subject, ALERT_STATES.c.state)
        )
        return sorted((row.rule, row.subject, row.state) for row in rows)


def test_a_flood_of_overdue_inquiries_is_one_alert_naming_how_many_and_the_oldest(
    tmp_path: Path, database_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, database_url, http=http_sink, include_customer=False)
    flood = PER_INQUIRY + 50
    ask(engine, settings, range(flood), now)
    ask(engine, settings, range(1_000, 1_003), now + 5 * HOUR)  # not due yet: not counted
    outcome = run_once(engine, settings, now + 6 * HOUR)
    assert outcome.firing == 1 and outcome.deliveries["sent"] == 1
    (body,) = [r.json() for r in http_sink.requests]
    assert (body["rule"], body["severity"], body["status"]) == (
        "reply_overdue",
        "critical",
        "firing",
    )
    assert (body["source"], body["subject"], body["value"], body["unit"]) == (
        "chat",
        "chat",
        flood,
        "inquiries",
    )
    assert body["summary"] == (
        f"{flood} inquiries in chat are past their reply target; the oldest open 6h 00m "
        f"(one alert for all beyond {PER_INQUIRY})"
    )
    details = body["details"]
    assert (details["count"], details["per_inquiry_limit"]) == (flood, PER_INQUIRY)
    listed = details["inquiries"]
    assert len(listed) == 10 and listed[0]["opened_at"] == "2026-11-20T12:00:00Z"
    # A webhook names no customer: each inquiry by its opaque id, no subject.
    assert all(set(i) == {"subject", "channel", "opened_at", "due_at"} for i in listed)
    assert not any("conv-" in i["subject"] or "Order" in str(i) for i in listed)
    # Later: nothing new to tell, one stored state, not one per inquiry.
    again = run_once(engine, settings, now + 6 * HOUR + MIN)
    assert again.firing == 1 and again.deliveries["sent"] == 0 and again.changes[0].kind == "keep"
    assert stored(engine) == [("reply_overdue", "chat", "firing")]


def test_a_backlog_past_the_limit_becomes_one_alert_and_back_under_half_of_it(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    """150 overdue: 150 alerts (one notification). 250: the 150 are absorbed, untold, into one
    alert for the source. 130 (answered 120): still one alert, nothing to tell. 90: it ends
    and the 90 left are alerted on one by one again."""
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    ask(engine, settings, range(150), now)
    run_once(engine, settings, now + 2 * HOUR)
    assert posts(http_sink) == [("reply_overdue", "firing", None, 150)]
    ask(engine, settings, range(150, 250), now + HOUR)
    run_once(engine, settings, now + 2 * HOUR + 5 * MIN)
    assert posts(http_sink)[1:] == [("reply_overdue", "firing", "chat", 1)]
    assert stored(engine) == [("reply_overdue", "chat", "firing")]
    answer(engine, settings, range(120), now + 3 * HOUR)
    assert run_once(engine, settings, now + 3 * HOUR + MIN).deliveries["sent"] == 0
    answer(engine, settings, range(120, 160), now + 4 * HOUR)
    outcome = run_once(engine, settings, now + 4 * HOUR + MIN)
    assert outcome.firing == 90
    assert posts(http_sink)[2:] == [
        ("reply_overdue", "firing", None, 90),
        ("reply_overdue", "resolved", "chat", 1),
    ]
    ended = http_sink.requests[3].json()
    assert (
        ended["summary"]
        == f"Inquiries past their reply target in chat are down to {PER_INQUIRY // 2} or fewer"
    )
    assert {a["subject"] for a in http_sink.requests[2].json()["alerts"][:3]} == {
        f"chat/conv-{n:05}" for n in range(160, 163)
    }


def test_a_flood_due_soon_warns_once_and_is_covered_when_it_becomes_overdue(
    tmp_path: Path, sqlite_url: str, http_sink: HttpSink, now: datetime
) -> None:
    settings, engine = setup(tmp_path, sqlite_url, http=http_sink)
    ask(engine, settings, range(PER_INQUIRY + 1), now)
    run_once(engine, settings, now + 50 * MIN)  # due within the quarter-hour margin
    run_once(engine, settings, now + 51 * MIN)
    run_once(engine, settings, now + 64 * MIN)  # all overdue now
    assert posts(http_sink) == [
        ("reply_due_soon", "firing", "chat", 1),
        ("reply_overdue", "firing", "chat", 1),
    ]
    soon = http_sink.requests[0].json()
    assert soon["summary"] == (
        f"{PER_INQUIRY + 1} inquiries in chat breach their reply target within 15m 00s; "
        f"the next in 10m 00s (one alert for all beyond {PER_INQUIRY})"
    )
    assert soon["details"]["inquiries"][0]["inquiry_subject"] == "Order 0"


def test_an_evaluation_costs_the_same_with_a_hundred_times_the_backlog(
    tmp_path: Path, now: datetime
) -> None:
    """30 overdue inquiries, then 3,000 (and as many answered): the first evaluation and the
    next ones read about as much (reading every open inquiry and every alert state, as before,
    read 100 times more), and the flood is one stored alert state."""

    def cost(count: int) -> tuple[int, int, int]:
        folder = tmp_path / str(count)
        folder.mkdir()
        settings, engine = setup(folder, f"sqlite:///{folder}/monitor.db")
        ask(engine, settings, range(count), now)
        ask(engine, settings, range(10_000, 10_000 + count), now)
        answer(engine, settings, range(10_000, 10_000 + count), now + count * SECOND + MIN)
        at = now + 2 * HOUR
        with vm_steps(engine) as first:
            run_once(engine, settings, at)
        with vm_steps(engine) as steady:
            run_once(engine, settings, at + MIN)
        return first(), steady(), len(stored(engine))

    small, large = cost(30), cost(3_000)
    assert large[0] <= small[0] * 1.5 + 20, (small, large)
    assert large[1] <= small[1] * 1.5 + 20, (small, large)
    assert (small[2], large[2]) == (30, 1)
